"""Champion versus candidate with real scikit-learn models, judged by the spec's gates."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import roc_auc_score

from retrainer.evaluate import evaluate_candidate, model_output, paired_bootstrap
from retrainer.spec import EvaluateSection, Features, ModelSection

CLASSIFIER = ModelSection(
    name="toy", task="classification", target="y", features=Features(numeric=["x1", "x2"])
)
REGRESSOR = ModelSection(
    name="toy", task="regression", target="y", features=Features(numeric=["x1", "x2"])
)


def frame(seed: int, n: int) -> pd.DataFrame:
    """y depends on x1; x2 is noise; ``other`` is a column that is not a feature."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    y = (x1 + rng.normal(scale=0.7, size=n) > 0).astype(int)
    return pd.DataFrame({"x1": x1, "x2": x2, "other": "z", "y": y})


def fitted(data: pd.DataFrame, *, shuffle_labels: bool = False) -> LogisticRegression:
    y = data["y"].to_numpy()
    if shuffle_labels:  # a model that learned nothing: about AUC 0.5
        y = np.random.default_rng(0).permutation(y)
    return LogisticRegression().fit(data[["x1", "x2"]], y)


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    return frame(1, 600)


@pytest.fixture(scope="module")
def holdout() -> pd.DataFrame:
    return frame(2, 400)


def judge(
    candidate: Any,
    champion: Any,
    holdout: pd.DataFrame,
    *,
    model: ModelSection = CLASSIFIER,
    seed: int = 0,
    **evaluate: Any,
) -> Any:
    return evaluate_candidate(
        candidate,
        champion,
        holdout,
        model=model,
        evaluate=EvaluateSection(bootstrap_resamples=200, **evaluate),
        champion_version=None if champion is None else 3,
        rng=np.random.default_rng(seed),
    )


# -- model_output ---------------------------------------------------------------------


def test_model_output_is_the_positive_class_probability_for_roc_auc(
    train: pd.DataFrame, holdout: pd.DataFrame
) -> None:
    model = fitted(train)
    out = model_output(model, holdout, "roc_auc", ["x1", "x2"])
    np.testing.assert_array_equal(out, model.predict_proba(holdout[["x1", "x2"]])[:, 1])


def test_model_output_is_the_label_for_label_metrics(
    train: pd.DataFrame, holdout: pd.DataFrame
) -> None:
    model = fitted(train)
    out = model_output(model, holdout, "accuracy", ["x1", "x2"])
    np.testing.assert_array_equal(out, model.predict(holdout[["x1", "x2"]]))


def test_model_output_keeps_every_column_for_more_than_two_classes() -> None:
    rng = np.random.default_rng(3)
    data = pd.DataFrame({"x1": rng.normal(size=90), "x2": rng.normal(size=90)})
    data["y"] = np.digitize(data["x1"], [-0.5, 0.5])
    model = LogisticRegression().fit(data[["x1", "x2"]], data["y"])
    out = model_output(model, data, "log_loss", ["x1", "x2"])
    assert out.shape == (90, 3)


# -- the gates --------------------------------------------------------------------------


def test_the_first_version_is_judged_on_its_own(train: pd.DataFrame, holdout: pd.DataFrame) -> None:
    candidate = fitted(train)
    rec = judge(candidate, None, holdout)
    expected = roc_auc_score(holdout["y"], candidate.predict_proba(holdout[["x1", "x2"]])[:, 1])
    assert rec.passed
    assert rec.candidate_metric == pytest.approx(expected, abs=1e-12)
    assert rec.champion_metric is None and rec.champion_version is None
    assert rec.holdout_rows == 400
    assert [g.name for g in rec.gates] == ["scores", "vs_champion"]
    assert "no champion yet" in rec.gates[1].reason
    assert f"{expected:.4f}" in rec.gates[0].reason


def test_a_clearly_better_candidate_passes_superiority(
    train: pd.DataFrame, holdout: pd.DataFrame
) -> None:
    rec = judge(fitted(train), fitted(train, shuffle_labels=True), holdout, min_improvement=0.05)
    gate = rec.gates[-1]
    n = gate.numbers
    assert rec.passed and gate.name == "vs_champion"
    assert n["mode"] == "superiority" and n["margin"] == 0.05 and n["resamples"] == 200
    assert n["ci_low"] > 0.05 and n["ci_low"] < n["improvement"] < n["ci_high"]
    assert n["improvement"] == pytest.approx(n["candidate"] - n["champion"], abs=1e-12)
    # the reason carries the numbers in plain words
    for text in (
        f"{n['candidate']:.4f}",
        f"{n['champion']:.4f}",
        "champion v3",
        f"{n['ci_low']:+.4f}",
        "95% CI",
        "better than the champion",
    ):
        assert text in gate.reason


def test_a_clearly_worse_candidate_fails_non_inferiority(
    train: pd.DataFrame, holdout: pd.DataFrame
) -> None:
    rec = judge(fitted(train, shuffle_labels=True), fitted(train), holdout)
    gate = rec.gates[-1]
    assert not rec.passed and not gate.passed
    assert gate.numbers["mode"] == "non_inferiority" and gate.numbers["margin"] == 0.005
    assert gate.numbers["ci_high"] < 0
    assert "may be worse than the champion by more than 0.005" in gate.reason
    assert rec.summary() == f"failed: {gate.reason}"


def test_the_gate_numbers_are_the_seeded_paired_bootstrap(
    train: pd.DataFrame, holdout: pd.DataFrame
) -> None:
    cand, champ = fitted(train), fitted(train, shuffle_labels=True)
    rec = judge(cand, champ, holdout, seed=9, confidence=0.9)
    out = [model_output(m, holdout, "roc_auc", ["x1", "x2"]) for m in (champ, cand)]
    expected = paired_bootstrap(
        "roc_auc",
        holdout["y"].to_numpy(),
        *out,
        resamples=200,
        confidence=0.9,
        rng=np.random.default_rng(9),
    )
    n = rec.gates[-1].numbers
    assert (n["improvement"], n["ci_low"], n["ci_high"]) == expected
    assert "90% CI" in rec.gates[-1].reason
    assert judge(cand, champ, holdout, seed=9, confidence=0.9) == rec  # reproducible


def constant(value: float) -> DummyRegressor:
    zeros = pd.DataFrame({"x1": [0.0, 1.0], "x2": [0.0, 1.0]})
    return DummyRegressor(strategy="constant", constant=value).fit(zeros, [0.0, 0.0])


@pytest.fixture(scope="module")
def zeros() -> pd.DataFrame:
    """A regression holdout with target 0: a constant model's MAE is its constant."""
    return pd.DataFrame({"x1": np.arange(50.0), "x2": 1.0, "y": 0.0})


@pytest.mark.parametrize(
    ("min_improvement", "passed"), [(0.0, True), (0.29, True), (0.31, False), (0.5, False)]
)
def test_superiority_at_the_margin(
    zeros: pd.DataFrame, min_improvement: float, passed: bool
) -> None:
    # candidate MAE 0 vs champion MAE 0.3 on every resample: the interval is [0.3, 0.3]
    rec = judge(
        constant(0.0),
        constant(0.3),
        zeros,
        model=REGRESSOR,
        metric="mae",
        min_improvement=min_improvement,
    )
    gate = rec.gates[-1]
    assert gate.numbers["ci_low"] == pytest.approx(0.3, abs=1e-12)
    assert gate.passed is passed and rec.passed is passed
    if not passed:
        assert f"not shown better by more than {min_improvement}" in gate.reason


@pytest.mark.parametrize(("margin", "passed"), [(0.29, False), (0.31, True)])
def test_non_inferiority_at_the_margin(zeros: pd.DataFrame, margin: float, passed: bool) -> None:
    # now the candidate is the worse one, by exactly 0.3 on every resample
    rec = judge(
        constant(0.3),
        constant(0.0),
        zeros,
        model=REGRESSOR,
        metric="mae",
        non_inferiority_margin=margin,
    )
    gate = rec.gates[-1]
    assert gate.numbers["improvement"] == pytest.approx(-0.3, abs=1e-12)
    assert gate.passed is passed
    verdict = (
        "not worse than the champion"
        if passed
        else f"worse than the champion by more than {margin}"
    )
    assert verdict in gate.reason


def test_an_identical_model_is_non_inferior_but_not_superior(zeros: pd.DataFrame) -> None:
    champ, cand = constant(0.3), constant(0.3)
    assert judge(cand, champ, zeros, model=REGRESSOR, metric="mae").passed
    superior = judge(cand, champ, zeros, model=REGRESSOR, metric="mae", min_improvement=0.0)
    assert not superior.passed
    assert superior.gates[-1].numbers["ci_low"] == 0.0


@pytest.mark.parametrize(
    ("metric", "floor", "value", "passed", "word"),
    [
        ("roc_auc", 0.99, "candidate", False, "not at least"),
        ("roc_auc", 0.6, "candidate", True, "at least"),
        ("mae", 0.1, 0.0, True, "at most"),
        ("mae", 0.1, 0.3, False, "not at most"),
    ],
)
def test_min_metric_is_a_floor_or_a_ceiling_by_orientation(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    zeros: pd.DataFrame,
    metric: str,
    floor: float,
    value: Any,
    passed: bool,
    word: str,
) -> None:
    if metric == "roc_auc":
        rec = judge(fitted(train), None, holdout, metric=metric, min_metric=floor)
    else:
        rec = judge(constant(value), None, zeros, model=REGRESSOR, metric=metric, min_metric=floor)
    gate = next(g for g in rec.gates if g.name == "min_metric")
    assert gate.passed is passed and rec.passed is passed
    assert f"is {word} the floor {floor}" in gate.reason
    assert (gate.value, gate.threshold) == (rec.candidate_metric, floor)


@pytest.mark.filterwarnings("ignore:Only one class is present:UserWarning")
@pytest.mark.filterwarnings("ignore:All-NaN slice:RuntimeWarning")
@pytest.mark.parametrize("metric", ["roc_auc", "log_loss"])
def test_an_undefined_metric_fails_the_scores_gate_with_a_reason(
    train: pd.DataFrame, holdout: pd.DataFrame, metric: str
) -> None:
    one_class = holdout[holdout["y"] == 1]
    rec = judge(fitted(train), fitted(train, shuffle_labels=True), one_class, metric=metric)
    scores = rec.gates[0]
    assert scores.name == "scores" and not scores.passed and not rec.passed
    assert f"{metric} could not be computed on the holdout (nan)" in scores.reason
    json.dumps(rec.to_dict())  # still a record that can be stored


def test_regression_models_are_compared_on_their_predictions(zeros: pd.DataFrame) -> None:
    rng = np.random.default_rng(4)
    data = pd.DataFrame({"x1": rng.normal(size=200), "x2": rng.normal(size=200)})
    data["y"] = 2 * data["x1"] + rng.normal(scale=0.1, size=200)
    good = LinearRegression().fit(data[["x1", "x2"]], data["y"])
    rec = judge(good, constant(0.0), data, model=REGRESSOR, metric="rmse", min_improvement=0.5)
    assert rec.passed
    assert rec.champion_metric == pytest.approx(float(np.sqrt((data["y"] ** 2).mean())), abs=1e-12)
