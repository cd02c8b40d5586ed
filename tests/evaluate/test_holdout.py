"""Holdout size for a confidence level, resample counts, and "did the world change"."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from evalkit import Reads, classifier, regressor, scored_frame, settings

from retrainer.errors import EvaluationError, SpecError
from retrainer.evaluate import check_holdout, evaluate_candidate, min_holdout_rows, min_resamples
from retrainer.evaluate.holdout import champion_on_holdouts
from retrainer.spec import EvaluateSection


@pytest.mark.parametrize(
    ("confidence", "rows", "resamples"),
    [(0.8, 10, 50), (0.9, 20, 100), (0.95, 40, 200), (0.99, 200, 1000)],
)
def test_minimums_per_confidence(confidence: float, rows: int, resamples: int) -> None:
    assert min_holdout_rows(confidence) == rows
    assert min_resamples(confidence) == resamples


def test_too_few_resamples_for_the_confidence_is_a_spec_error() -> None:
    with pytest.raises(ValueError, match="a 99% interval needs at least 1000 resamples"):
        EvaluateSection(confidence=0.99, bootstrap_resamples=500)
    EvaluateSection(confidence=0.99, bootstrap_resamples=1000)  # enough


def test_the_spec_error_names_the_key() -> None:
    from retrainer.spec import parse_spec

    text = """
model: {name: m, task: classification, target: y, features: {numeric: [x]}}
data: {source: d, holdout: {by: random}}
train: {estimator: sklearn.linear_model.LogisticRegression}
evaluate: {confidence: 0.99, bootstrap_resamples: 500}
"""
    with pytest.raises(SpecError, match=r"evaluate.*1000 resamples"):
        parse_spec(text)


def test_a_class_below_the_minimum_is_an_error_naming_the_minimum() -> None:
    y = np.array([0] * 100 + [1] * 39)
    with pytest.raises(
        EvaluationError,
        match=r"39 of class 1; a 95% confidence interval needs at least 40 rows of each class",
    ) as info:
        check_holdout(y, "classification", 0.95)
    assert info.value.exit_code == 2 and info.value.code == "EVALUATION"
    check_holdout(np.array([0] * 40 + [1] * 40), "classification", 0.95)
    with pytest.raises(EvaluationError, match="needs at least 200 rows of each class"):
        check_holdout(np.array([0] * 100 + [1] * 100), "classification", 0.99)


def test_string_labels_and_missing_labels_are_counted_per_class() -> None:
    y = np.array(["no"] * 50 + ["yes"] * 30 + [None] * 20, dtype=object)
    with pytest.raises(EvaluationError, match="30 of class 'yes'"):
        check_holdout(y, "classification", 0.95)


def test_a_small_regression_holdout_is_an_error() -> None:
    with pytest.raises(
        EvaluationError, match="has 39 labelled rows; a 95% confidence interval needs at least 40"
    ):
        check_holdout(np.zeros(39), "regression", 0.95)
    check_holdout(np.zeros(40), "regression", 0.95)


def test_evaluate_candidate_refuses_a_holdout_too_small() -> None:
    holdout = scored_frame(0, 60)  # about 30 rows of each class
    with pytest.raises(EvaluationError, match="at least 40 rows of each class"):
        evaluate_candidate(
            Reads("b"),
            Reads("a"),
            holdout,
            model=classifier("a", "b"),
            evaluate=settings(),
            champion_version=1,
            rng=np.random.default_rng(0),
        )


def test_a_one_class_holdout_is_not_evaluable_rather_than_an_error() -> None:
    holdout = scored_frame(0, 300)
    holdout = holdout[holdout["y"] == 1]
    rec = evaluate_candidate(
        Reads("b"),
        Reads("a"),
        holdout,
        model=classifier("a", "b"),
        evaluate=settings(),
        champion_version=1,
        rng=np.random.default_rng(0),
    )
    assert [g.status for g in rec.gates] == ["not_evaluable", "not_evaluable"]
    assert "roc_auc of the candidate could not be computed" in rec.gates[1].reason
    assert not rec.passed


# -- the champion on its own holdout versus on the new one -----------------------------


def _world(shift: float) -> dict[str, object]:
    rng = np.random.default_rng(5)
    y0 = rng.normal(size=400)
    y1 = rng.normal(size=400)
    pred0 = y0 + rng.normal(scale=0.5, size=400)  # its own holdout: error sd 0.5
    pred1 = y1 + rng.normal(scale=0.5 + shift, size=400)  # the new rows
    return champion_on_holdouts(
        "rmse", (y0, pred0), (y1, pred1), resamples=300, confidence=0.95, rng=rng
    )


def test_a_champion_much_worse_on_the_new_rows_means_the_world_changed() -> None:
    world = _world(shift=1.0)
    assert world["verdict"] == "world_changed"
    assert world["change"] < 0 and world["ci_high"] < 0  # oriented: negative is worse
    assert "the world changed" in str(world["reason"])


def test_a_champion_as_good_on_the_new_rows_holds_up() -> None:
    world = _world(shift=0.0)
    assert world["verdict"] == "stable"
    assert world["ci_low"] < 0 < world["ci_high"]


def test_the_record_says_whom_to_blame_when_the_candidate_fails() -> None:
    new = scored_frame(1, 400)
    new["b"] = 0.5  # a candidate that learned nothing
    own = scored_frame(2, 400)
    rec = evaluate_candidate(
        Reads("b"),
        Reads("a"),
        new,
        model=classifier("a", "b"),
        evaluate=settings(),
        champion_version=4,
        rng=np.random.default_rng(0),
        champion_holdout=own,
    )
    gate = next(g for g in rec.gates if g.name == "vs_champion")
    assert gate.status == "fail"
    assert "the champion holds up" in gate.reason and "the candidate is the problem" in gate.reason
    world = rec.extra["champion_holdouts"]
    assert world["verdict"] == gate.numbers["champion_holdouts"] == "stable"
    assert (world["original_rows"], world["new_rows"]) == (400, 400)


def test_a_champion_holdout_without_the_features_is_reported_not_used() -> None:
    new = scored_frame(1, 200)
    rec = evaluate_candidate(
        Reads("b"),
        Reads("a"),
        new,
        model=classifier("a", "b"),
        evaluate=settings(),
        champion_version=4,
        rng=np.random.default_rng(0),
        champion_holdout=pd.DataFrame({"a": [0.1], "y": [0]}),
    )
    assert rec.extra["champion_holdouts"] == {"verdict": "unknown", "reason": "its holdout lacks b"}


def test_regressors_are_checked_on_rows_not_classes() -> None:
    holdout = pd.DataFrame({"a": np.arange(50.0), "y": np.arange(50.0)})
    rec = evaluate_candidate(
        Reads("a", regression=True),
        None,
        holdout,
        model=regressor("a"),
        evaluate=settings(metric="mae"),
        champion_version=None,
        rng=np.random.default_rng(0),
    )
    assert rec.passed and rec.candidate_metric == 0.0


class BrokenOnOldRows(Reads):
    """Predicts the new holdout, raises on its own old one (a schema that moved on)."""

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        if len(X) == 123:
            raise KeyError("column 'legacy' not found")
        return super().predict_proba(X)


def test_a_champion_that_cannot_score_its_own_holdout_does_not_fail_the_candidate() -> None:
    rec = evaluate_candidate(
        Reads("b"),
        BrokenOnOldRows("a"),
        scored_frame(1, 200),
        model=classifier("a", "b"),
        evaluate=settings(),
        champion_version=4,
        rng=np.random.default_rng(0),
        champion_holdout=scored_frame(2, 123),
    )
    world = rec.extra["champion_holdouts"]
    assert world["verdict"] == "unknown" and "legacy" in world["reason"]
    assert rec.passed
