"""Points for the decision record's plots, small enough to store with it.

Binary classifiers get ROC and precision-recall curves (at most ``MAX_CURVE_POINTS``
points each, keeping both ends); regressors a sample of (prediction, residual) pairs
(at most ``MAX_RESIDUALS``, the same rows for candidate and champion). Values are
rounded to 4 decimals: a plot needs no more, and the record stays small.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

__all__ = ["MAX_CURVE_POINTS", "MAX_RESIDUALS", "classifier_curves", "residual_sample"]

MAX_CURVE_POINTS = 200
MAX_RESIDUALS = 1000
Array = np.ndarray[Any, Any]


def _thin(n: int, limit: int) -> Array:
    """Indices of at most ``limit`` points spread evenly over ``n``, first and last kept."""
    if n <= limit:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(int))


def _points(x: Array, y: Array) -> dict[str, list[float]]:
    keep = _thin(len(x), MAX_CURVE_POINTS)
    return {"x": np.round(x[keep], 4).tolist(), "y": np.round(y[keep], 4).tolist()}


def classifier_curves(y: Array, scores: dict[str, Array], positive: Any) -> dict[str, Any]:
    """ROC (x = false positive rate, y = true positive rate) and PR (x = recall,
    y = precision) per model, e.g. ``scores = {"candidate": p1, "champion": p2}``.

    Returns ``{}`` unless the labels have exactly two classes and scores are 1-d.
    """
    y = np.asarray(y)
    if len(np.unique(y)) != 2 or any(np.ndim(s) != 1 for s in scores.values()):
        return {}
    out: dict[str, Any] = {"positive": _plain(positive), "roc": {}, "pr": {}}
    for who, s in scores.items():
        fpr, tpr, _ = roc_curve(y, s, pos_label=positive)
        precision, recall, _ = precision_recall_curve(y, s, pos_label=positive)
        out["roc"][who] = _points(fpr, tpr)
        out["pr"][who] = _points(recall[::-1], precision[::-1])
    return out


def residual_sample(
    y: Array, predictions: dict[str, Array], rng: np.random.Generator
) -> dict[str, Any]:
    """Up to ``MAX_RESIDUALS`` (prediction, residual = y - prediction) pairs per model."""
    y = np.asarray(y, dtype=float)
    rows = np.sort(rng.choice(len(y), size=min(len(y), MAX_RESIDUALS), replace=False))
    out: dict[str, Any] = {"rows": len(y), "sampled": len(rows)}
    for who, p in predictions.items():
        p = np.asarray(p, dtype=float)
        out[who] = {
            "predicted": np.round(p[rows], 4).tolist(),
            "residual": np.round(y[rows] - p[rows], 4).tolist(),
        }
    return out


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
