"""The metric registry: names, orientation and values equal to scikit-learn's."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn import metrics as skm

from retrainer.evaluate import METRICS, MetricInfo, score

Array = np.ndarray[Any, Any]

# name -> (task, higher_is_better, uses), as documented in docs/spec.md
DOCUMENTED = {
    "roc_auc": ("classification", True, "proba"),
    "log_loss": ("classification", False, "proba"),
    "accuracy": ("classification", True, "label"),
    "balanced_accuracy": ("classification", True, "label"),
    "f1": ("classification", True, "label"),
    "rmse": ("regression", False, "value"),
    "mae": ("regression", False, "value"),
    "r2": ("regression", True, "value"),
}


def binary(seed: int = 0, n: int = 300) -> tuple[Array, Array, Array]:
    """Labels, positive-class probabilities and hard labels that disagree in places."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    proba = np.clip(0.5 + 0.3 * (y - 0.5) + rng.normal(scale=0.2, size=n), 0.01, 0.99)
    return y, proba, (proba > 0.5).astype(int)


def multiclass(seed: int = 1, n: int = 300, k: int = 3) -> tuple[Array, Array, Array]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, proba, proba.argmax(axis=1)


def regression(seed: int = 2, n: int = 300) -> tuple[Array, Array]:
    rng = np.random.default_rng(seed)
    y = rng.normal(loc=10, scale=3, size=n)
    return y, y + rng.normal(scale=1.5, size=n)


def test_the_registry_holds_exactly_the_documented_metrics() -> None:
    assert set(METRICS) == set(DOCUMENTED)
    for name, (task, higher, uses) in DOCUMENTED.items():
        info = METRICS[name]
        assert isinstance(info, MetricInfo)
        assert (info.name, info.task, info.higher_is_better, info.uses) == (
            name,
            task,
            higher,
            uses,
        )


def test_the_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        METRICS["mine"] = METRICS["mae"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("roc_auc", lambda y, p, lab: skm.roc_auc_score(y, p)),
        ("log_loss", lambda y, p, lab: skm.log_loss(y, p)),
        ("accuracy", lambda y, p, lab: skm.accuracy_score(y, lab)),
        ("balanced_accuracy", lambda y, p, lab: skm.balanced_accuracy_score(y, lab)),
        ("f1", lambda y, p, lab: skm.f1_score(y, lab)),
    ],
)
def test_binary_metrics_equal_scikit_learn(name: str, reference: Any) -> None:
    y, proba, labels = binary()
    out = proba if METRICS[name].uses == "proba" else labels
    assert score(name, y, out) == pytest.approx(reference(y, proba, labels), abs=1e-12)


def test_roc_auc_takes_one_column_or_both_columns_of_predict_proba() -> None:
    y, proba, _ = binary()
    two_columns = np.column_stack([1 - proba, proba])
    assert score("roc_auc", y, two_columns) == pytest.approx(score("roc_auc", y, proba), abs=1e-12)


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("roc_auc", lambda y, p, lab: skm.roc_auc_score(y, p, multi_class="ovr")),
        ("log_loss", lambda y, p, lab: skm.log_loss(y, p)),
        ("accuracy", lambda y, p, lab: skm.accuracy_score(y, lab)),
        ("f1", lambda y, p, lab: skm.f1_score(y, lab, average="macro")),
    ],
)
def test_multiclass_metrics_equal_scikit_learn(name: str, reference: Any) -> None:
    y, proba, labels = multiclass()
    out = proba if METRICS[name].uses == "proba" else labels
    assert score(name, y, out) == pytest.approx(reference(y, proba, labels), abs=1e-12)


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("rmse", lambda y, p: np.sqrt(skm.mean_squared_error(y, p))),
        ("mae", skm.mean_absolute_error),
        ("r2", skm.r2_score),
    ],
)
def test_regression_metrics_equal_scikit_learn(name: str, reference: Any) -> None:
    y, pred = regression()
    assert score(name, y, pred) == pytest.approx(float(reference(y, pred)), abs=1e-12)


def test_f1_on_string_labels_scores_the_greater_label_as_positive() -> None:
    y, _, labels = binary()
    names = np.array(["no", "yes"], dtype=object)
    expected = skm.f1_score(names[y], names[labels], pos_label="yes")
    assert score("f1", names[y], names[labels]) == pytest.approx(expected, abs=1e-12)
    # and with 0/1 labels the positive class is 1, as scikit-learn's default
    assert score("f1", y, labels) == pytest.approx(skm.f1_score(y, labels), abs=1e-12)


def test_f1_is_macro_when_the_predictions_add_a_third_class() -> None:
    y = np.array([0, 1, 0, 1, 0, 1])
    pred = np.array([0, 1, 2, 1, 0, 0])
    assert score("f1", y, pred) == pytest.approx(skm.f1_score(y, pred, average="macro"), abs=1e-12)


def test_score_returns_a_python_float() -> None:
    value = score("accuracy", np.array([1, 0, 1, 1]), np.array([1, 0, 0, 1]))
    assert type(value) is float and value == 0.75
