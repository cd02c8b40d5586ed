"""Leakage checks: holdout rows in training, a feature that gives the target away, late
feature times; and the cycle refusing to train on such data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from conftest import add_batch, synthetic_batch
from retrainer.errors import DataSourceError, LeakageError
from retrainer.orchestrate import run_cycle
from retrainer.registry import CHAMPION
from retrainer.spec import Features, LeakageSpec, ModelSection
from retrainer.train.leakage import (
    check_leakage,
    drop_holdout_rows,
    feature_power,
    holdout_overlap,
)
from retrainer.workspace import Workspace


def section(task: str = "classification", numeric: Any = ("x",), categorical: Any = ()) -> Any:
    return ModelSection(
        name="m",
        task=task,  # type: ignore[arg-type]
        target="y",
        features=Features(numeric=list(numeric), categorical=list(categorical)),
    )


def frame(rows: int = 4000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    honest = x + rng.normal(scale=1.0, size=rows)
    return pd.DataFrame(
        {
            "x": x,
            "honest": honest,
            "id": np.arange(rows).astype(str),
            "y": (honest > 0).astype(int),
        }
    )


def powers(df: pd.DataFrame, model: Any) -> dict[str, Any]:
    return {p.feature: p for p in feature_power(df, model)[1]}


# -- holdout overlap ------------------------------------------------------------------


def test_training_rows_equal_to_a_holdout_row_are_found_exactly() -> None:
    df = frame(200)
    train, holdout = df.iloc[:150].copy(), df.iloc[150:].copy()
    leaked = pd.concat([train, holdout.iloc[:7]], ignore_index=True)
    near = holdout.iloc[7:9].copy()
    near["x"] += 1e-12  # not identical: not a leak
    leaked = pd.concat([leaked, near], ignore_index=True)
    mask = holdout_overlap(leaked, holdout)
    assert mask.sum() == 7 and mask[150:157].all()


def test_drop_policy_removes_the_leaked_rows_and_counts_them() -> None:
    df = frame(200)
    holdout = df.iloc[150:]
    train = pd.concat([df.iloc[:150], holdout.iloc[:5]], ignore_index=True)
    kept, dropped = drop_holdout_rows(train, holdout, "drop")
    assert dropped == 5 and len(kept) == 150
    assert not holdout_overlap(kept, holdout).any()


def test_block_policy_refuses_with_the_count() -> None:
    df = frame(200)
    train = pd.concat([df.iloc[:150], df.iloc[150:153]], ignore_index=True)
    with pytest.raises(LeakageError, match="3 training row") as err:
        drop_holdout_rows(train, df.iloc[150:], "block")
    assert err.value.code == "LEAKAGE_SUSPECTED"
    assert drop_holdout_rows(df.iloc[:150], df.iloc[150:], "block")[1] == 0


# -- single-feature power -------------------------------------------------------------


def test_an_honest_feature_passes_and_a_copy_of_the_target_is_caught() -> None:
    df = frame()
    model = section(numeric=["x", "honest"])
    got = powers(df, model)
    assert 0.6 < got["x"].value < 0.9
    assert got["honest"].value == 1.0 and got["honest"].how == "raw"
    check = LeakageSpec()
    with pytest.raises(LeakageError, match=r"'honest' alone predicts 'y' with AUC 1\.0000"):
        check_leakage(df, model, check)
    report = check_leakage(df, section(numeric=["x"]), check)
    assert report.suspects == () and report.rows_checked == len(df)


def test_a_non_monotone_leak_is_caught_by_the_binned_score() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=6000)
    df = pd.DataFrame({"x": x, "y": (np.abs(x) > 0.7).astype(int)})
    p = powers(df, section())["x"]
    assert p.how == "binned" and p.value > 0.99  # the raw AUC is ~0.5


def test_an_identifier_column_scores_nothing_out_of_fold() -> None:
    df = frame()
    p = powers(df, section(numeric=[], categorical=["id"]))["id"]
    assert p.value == pytest.approx(0.5, abs=0.05)


def test_a_categorical_copy_of_the_label_is_caught_and_exempt_lets_it_through() -> None:
    df = frame()
    df["label_text"] = np.where(df["y"] == 1, "yes", "no")
    model = section(numeric=["x"], categorical=["label_text"])
    with pytest.raises(LeakageError, match="'label_text'"):
        check_leakage(df, model, LeakageSpec())
    report = check_leakage(df, model, LeakageSpec(exempt=["label_text"]))
    assert report.suspects == ()
    assert {f.feature for f in report.features} == {"x", "label_text"}


def test_multiclass_uses_the_best_one_vs_rest_auc() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, size=3000)
    df = pd.DataFrame({"x": y * 10 + rng.normal(size=3000), "z": rng.normal(size=3000), "y": y})
    got = powers(df, section(numeric=["x", "z"]))
    assert got["x"].value > 0.99 and got["z"].value < 0.6


def test_regression_r2_linear_and_non_linear() -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(-3, 3, size=5000)
    df = pd.DataFrame({"x": x, "sq": x**2, "noise": rng.normal(size=5000), "y": x**2})
    got = powers(df, section("regression", numeric=["x", "sq", "noise"]))
    assert got["sq"].value == pytest.approx(1.0) and got["sq"].how == "raw"
    assert got["x"].value > 0.99 and got["x"].how == "binned"  # y = x^2: no correlation
    assert got["noise"].value < 0.01
    with pytest.raises(LeakageError, match="R\\^2"):
        check_leakage(df, section("regression", numeric=["noise", "sq"]), LeakageSpec())


def test_one_class_or_missing_targets_give_no_measure() -> None:
    df = frame(300)
    df["y"] = 1
    assert feature_power(df, section())[1] == []
    df.loc[:100, "y"] = np.nan
    assert feature_power(df, section())[0] == 199


def test_disabled_checks_measure_nothing() -> None:
    df = frame()
    report = check_leakage(df, section(numeric=["honest"]), LeakageSpec(enabled=False))
    assert report.features == () and report.suspects == ()


# -- time order -----------------------------------------------------------------------


def test_features_observed_after_the_label_are_refused_by_name() -> None:
    df = frame(100)
    df["label_at"] = pd.Timestamp("2024-01-02")
    df["seen_at"] = pd.Timestamp("2024-01-01")
    df.loc[:3, "seen_at"] = pd.Timestamp("2024-01-03")
    spec = LeakageSpec(label_time_column="label_at", feature_time_columns=["seen_at"])
    with pytest.raises(LeakageError, match=r"'seen_at' is later than the label time.*4 row"):
        check_leakage(df, section(), spec)
    with pytest.raises(DataSourceError, match="'nope'"):
        check_leakage(df, section(), LeakageSpec(label_time_column="nope"))


def test_feature_times_need_a_label_time() -> None:
    with pytest.raises(ValueError, match="label_time_column"):
        LeakageSpec(feature_time_columns=["seen_at"])


# -- in the cycle ---------------------------------------------------------------------


def test_the_cycle_refuses_to_train_on_a_leaky_feature_and_keeps_the_champion(
    make_workspace: Callable[..., Path],
) -> None:
    root = make_workspace()
    add_batch(root, "b1", synthetic_batch(1, 400, start_day=0))
    with Workspace.open(root) as ws:
        first = run_cycle(ws, actor="t", manual_reason="first")
        assert first.promoted
        champion = ws.registry.get_alias("toy", CHAMPION)
    # a new column that copies the label, made a feature
    spec = root / "retrainer.yaml"
    text = spec.read_text().replace("numeric: [x1, x2]", "numeric: [x1, x2, leak]")
    spec.write_text(text.replace("rows: 2000", "rows: 800"))  # the two new batches only
    for i, name in enumerate(["b2", "b3"]):
        batch = synthetic_batch(i + 2, 400, start_day=10 + i * 2)
        batch["leak"] = batch["y"] * 2.0 - 1.0
        add_batch(root, f"{name}-leak", batch)
    with Workspace.open(root) as ws, pytest.raises(LeakageError, match="'leak' alone predicts"):
        run_cycle(ws, actor="t", manual_reason="again")
    with Workspace.open(root) as ws:
        assert ws.registry.get_alias("toy", CHAMPION) == champion
        run = ws.journal.runs("toy")[0]
        assert run.status == "failed" and "LEAKAGE" not in run.outcome
        assert "'leak' alone predicts" in (run.error or "")
        assert len(ws.registry.versions("toy")) == 1  # nothing was trained


def test_a_promoted_version_records_what_the_checks_measured(
    make_workspace: Callable[..., Path],
) -> None:
    root = make_workspace()
    add_batch(root, "b1", synthetic_batch(1, 400, start_day=0))
    with Workspace.open(root) as ws:
        result = run_cycle(ws, actor="t", manual_reason="first")
        version = ws.registry.get("toy", result.version or 0)
    leak = version.lineage["leakage"]
    assert {f["feature"] for f in leak["features"]} == {"x1", "x2", "color"}
    assert leak["suspects"] == [] and leak["holdout_rows_dropped"] == 0
