"""The champion gate on classifiers, as the issue's done-when states it, with McNemar."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from evalkit import Reads, classifier, settings

from retrainer.evaluate import evaluate_candidate
from retrainer.evaluate.mcnemar import mcnemar


def paired(n: int, champion_right: float, extra_right: float, seed: int = 0) -> pd.DataFrame:
    """Labels, a champion right on ``champion_right`` of rows, and a candidate right on
    those rows plus ``extra_right`` of the others (truly better by about
    ``(1 - champion_right) * extra_right``)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    champ_ok = rng.random(n) < champion_right
    cand_ok = champ_ok | (rng.random(n) < extra_right)
    return pd.DataFrame(
        {
            "a": np.where(champ_ok, y, 1 - y).astype(float),
            "b": np.where(cand_ok, y, 1 - y).astype(float),
            "y": y,
        }
    )


def vs_champion(holdout: pd.DataFrame, **evaluate: object) -> object:
    rec = evaluate_candidate(
        Reads("b"),
        Reads("a"),
        holdout,
        model=classifier("a", "b"),
        evaluate=settings(metric="accuracy", bootstrap_resamples=1000, **evaluate),
        champion_version=7,
        rng=np.random.default_rng(0),
    )
    return next(g for g in rec.gates if g.name == "vs_champion")


def test_a_truly_better_candidate_by_a_small_margin_passes_superiority() -> None:
    holdout = paired(4000, 0.80, 0.15)  # +0.03 accuracy
    gate = vs_champion(holdout, min_improvement=0.01)
    assert gate.status == "pass", gate.reason
    assert 0.01 < gate.ci_low < gate.value < gate.ci_high
    assert gate.value == pytest.approx(0.03, abs=0.01)


def test_equal_models_block_under_superiority_and_pass_under_non_inferiority() -> None:
    holdout = paired(1000, 0.8, 0.0)
    holdout["b"] = holdout["a"]
    superiority = vs_champion(holdout, min_improvement=0.0)
    assert superiority.status == "fail" and "not shown better" in superiority.reason
    assert superiority.ci_low == superiority.ci_high == 0.0
    assert vs_champion(holdout, non_inferiority_margin=0.01).status == "pass"
    assert vs_champion(holdout).status == "pass"  # the default: non-inferiority, 0.005


def test_mcnemar_is_recorded_with_the_discordant_counts() -> None:
    holdout = paired(2000, 0.80, 0.15)
    gate = vs_champion(holdout)
    test = gate.numbers["mcnemar"]
    right_a = holdout["a"] == holdout["y"]
    right_b = holdout["b"] == holdout["y"]
    assert test["b"] == int((right_a & ~right_b).sum()) == 0  # the candidate never loses a row
    assert test["c"] == int((~right_a & right_b).sum())
    assert test == {**mcnemar(test["b"], test["c"]), **test}
    assert test["p_exact"] < 1e-6
    assert test["accuracy_candidate"] - test["accuracy_champion"] == pytest.approx(gate.value)
