"""What a metric scores, from a model and a frame: each prediction call made once."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from retrainer.evaluate.metrics import METRICS, score

__all__ = ["Outputs", "model_output", "positive_label", "safe_score"]

Array = np.ndarray[Any, Any]


def model_output(model: Any, frame: pd.DataFrame, metric: str, features: list[str]) -> Array:
    """What ``metric`` scores: positive-class probability, class label or value."""
    return Outputs(model, frame, features).for_metric(metric)


class Outputs:
    """A model's predictions on one frame, computed at most once per kind.

    ``proba`` is the positive-class probability for two classes (the full matrix for
    more); ``label`` and ``value`` are ``predict``. Prediction errors propagate.
    """

    def __init__(self, model: Any, frame: pd.DataFrame, features: list[str]) -> None:
        self.model, self.X = model, frame[features]
        self._cache: dict[str, Array] = {}

    def get(self, kind: str) -> Array:
        """``proba`` or ``label``/``value`` (both ``predict``)."""
        key = "proba" if kind == "proba" else "predict"
        if key not in self._cache:
            if key == "proba":
                proba = np.asarray(self.model.predict_proba(self.X))
                self._cache[key] = proba[:, 1] if proba.shape[1] == 2 else proba
            else:
                self._cache[key] = np.asarray(self.model.predict(self.X))
        return self._cache[key]

    def for_metric(self, metric: str) -> Array:
        """What ``metric`` scores."""
        return self.get(METRICS[metric].uses)


def safe_score(name: str, y: Array, out: Array) -> float:
    """The metric, or NaN where it is undefined (one class for roc_auc, say)."""
    with warnings.catch_warnings():  # an undefined metric is reported by the gate, not warned
        warnings.simplefilter("ignore")
        try:
            value = score(name, y, out)
        except ValueError:
            return float("nan")
    return value if np.isfinite(value) else float("nan")


def positive_label(y: Array) -> Any:
    """The positive class of binary labels: 1 if present, else the greater label
    (``predict_proba``'s second column), as the metrics use it."""
    labels = np.unique(y[pd.notna(y)])
    if len(labels) == 0 or 1 in labels.tolist():
        return 1
    return labels[-1]
