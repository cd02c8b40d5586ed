"""The slices gate: per-slice paired bootstrap, corrected for multiple tests, slices named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from evalkit import Reads, classifier, scored_frame, settings

from retrainer.evaluate import evaluate_candidate
from retrainer.evaluate.slices import adjust_pvalues, slice_labels


def judge(holdout: pd.DataFrame, champion: Reads | None = None, **slices: object) -> object:
    return evaluate_candidate(
        Reads("b"),
        Reads("a") if champion is None else champion,
        holdout,
        model=classifier("a", "b"),
        evaluate=settings(slices={"columns": ["region"], "min_size": 50, **slices}),
        champion_version=2,
        rng=np.random.default_rng(0),
    )


def gate(record: object) -> object:
    return next(g for g in record.gates if g.name == "slices")  # type: ignore[attr-defined]


def test_equal_models_pass_every_slice() -> None:
    rec = judge(scored_frame(0, 1200))
    g = gate(rec)
    assert g.status == "pass" and rec.passed
    assert [r["slice"] for r in g.details] == [
        "region=east",
        "region=north",
        "region=south",
        "region=west",
    ]
    assert all(r["improvement"] == 0 and r["p_value"] == 1 for r in g.details)


def test_worse_on_one_slice_only_blocks_and_names_the_slice() -> None:
    holdout = scored_frame(0, 1200)
    north = holdout["region"] == "north"
    holdout.loc[north, "b"] = np.random.default_rng(1).random(int(north.sum()))  # noise there
    rec = judge(holdout)
    g = gate(rec)
    assert g.status == "fail" and not rec.passed
    assert "on 1 slice(s): region=north (roc_auc" in g.reason
    assert "east" not in g.reason and "south" not in g.reason
    failed = [r for r in g.details if r["status"] == "fail"]
    assert [r["slice"] for r in failed] == ["region=north"]
    assert failed[0]["ci_high"] < -0.02 and failed[0]["p_adjusted"] < 0.05
    assert next(x for x in rec.gates if x.name == "vs_champion").status == "fail"


def test_a_small_drop_within_the_margin_passes() -> None:
    holdout = scored_frame(0, 1200)
    north = (holdout["region"] == "north").to_numpy()
    # swap a few scores in the north slice: AUC there drops a little
    idx = np.flatnonzero(north)[:6]
    holdout.loc[holdout.index[idx], "b"] = 1 - holdout.loc[holdout.index[idx], "b"]
    rec = judge(holdout, margin=0.05)
    row = next(r for r in gate(rec).details if r["slice"] == "region=north")
    assert -0.05 < row["improvement"] < 0
    assert gate(rec).status == "pass"


def test_small_slices_are_listed_not_judged() -> None:
    holdout = scored_frame(0, 600)
    holdout.loc[holdout.index[:20], "region"] = "tiny"
    g = gate(judge(holdout))
    tiny = next(r for r in g.details if r["value"] == "tiny")
    assert tiny["status"] == "too_small" and tiny["p_value"] is None
    assert g.status == "pass" and "1 slice(s) not judged" in g.reason


def test_a_column_with_no_judged_slice_is_not_evaluable() -> None:
    g = gate(judge(scored_frame(0, 600), min_size=1000))
    assert g.status == "not_evaluable"
    assert "no slice of region has at least 1000 rows" in g.reason


def test_a_missing_slice_column_is_not_evaluable() -> None:
    g = gate(judge(scored_frame(0, 200), columns=["country"]))
    assert (g.status, g.reason) == ("not_evaluable", "slice column(s) not in the holdout: country")


def test_without_a_champion_the_candidate_slices_are_recorded_and_the_gate_skipped() -> None:
    rec = evaluate_candidate(
        Reads("b"),
        None,
        scored_frame(0, 400),
        model=classifier("a", "b"),
        evaluate=settings(slices={"columns": ["region"]}),
        champion_version=None,
        rng=np.random.default_rng(0),
    )
    g = gate(rec)
    assert g.status == "skipped" and rec.passed
    assert all(r["candidate"] is not None and r["champion"] is None for r in g.details)


def test_numeric_columns_are_cut_into_quantile_bins() -> None:
    values = pd.Series(np.arange(100.0))
    labels = slice_labels(values, 4)
    assert labels.nunique() == 4
    assert labels.value_counts().tolist() == [25, 25, 25, 25]
    assert labels.iloc[0] == "(-0.001, 24.75]"
    few = pd.Series([1.0, 2.0, 2.0, np.nan])  # no more distinct values than bins: as is
    assert slice_labels(few, 4).tolist() == ["1.0", "2.0", "2.0", "(missing)"]


@pytest.mark.parametrize(
    ("method", "want"),
    [
        ("bonferroni", [0.04, 0.12, 0.12, 0.16]),
        ("holm", [0.04, 0.09, 0.09, 0.09]),
        ("bh", [0.04, 0.04, 0.04, 0.04]),
        ("none", [0.01, 0.03, 0.03, 0.04]),
    ],
)
def test_multiple_test_corrections(method: str, want: list[float]) -> None:
    p = np.array([0.01, 0.03, 0.03, 0.04])
    np.testing.assert_allclose(adjust_pvalues(p, method), want)


def test_bh_equals_scipy() -> None:
    from scipy.stats import false_discovery_control

    p = np.random.default_rng(3).random(30) ** 3
    np.testing.assert_allclose(adjust_pvalues(p, "bh"), false_discovery_control(p))


def test_a_list_of_columns_is_shorthand_for_the_slices_mapping() -> None:
    from retrainer.spec import EvaluateSection, SlicesSpec

    spec = EvaluateSection(slices=["region", "age"])
    assert spec.slices == SlicesSpec(columns=["region", "age"])
    assert spec.slices.min_size == 50 and spec.slices.correction == "holm"
