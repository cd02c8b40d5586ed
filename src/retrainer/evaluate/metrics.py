"""Metrics by name: pure functions of labels and model outputs, from scikit-learn.

Each metric knows its task, whether higher is better and whether it scores
probabilities (``roc_auc``, ``log_loss``...) or hard predictions (``accuracy``...).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
from sklearn import metrics as skm

__all__ = ["METRICS", "MetricInfo", "score"]


@dataclass(frozen=True)
class MetricInfo:
    """A named metric: ``fn(y_true, output) -> float``; ``output`` per ``uses``."""

    name: str
    task: Literal["classification", "regression"]
    higher_is_better: bool
    uses: Literal["proba", "label", "value"]
    fn: Callable[[np.ndarray[Any, Any], np.ndarray[Any, Any]], float]


def _rmse(y: np.ndarray[Any, Any], p: np.ndarray[Any, Any]) -> float:
    return float(np.sqrt(skm.mean_squared_error(y, p)))


def _f1(y: np.ndarray[Any, Any], p: np.ndarray[Any, Any]) -> float:
    labels = np.union1d(y, p)
    if len(labels) > 2:
        return float(skm.f1_score(y, p, average="macro"))
    # binary: the positive class is 1 if present, else the greater label (predict_proba's
    # second column), so labels such as "no"/"yes" work too
    positive = 1 if len(labels) == 0 or 1 in labels.tolist() else labels[-1]
    return float(skm.f1_score(y, p, pos_label=positive))


def _auc(y: np.ndarray[Any, Any], p: np.ndarray[Any, Any]) -> float:
    if p.ndim == 2 and p.shape[1] > 2:
        return float(skm.roc_auc_score(y, p, multi_class="ovr"))
    return float(skm.roc_auc_score(y, p if p.ndim == 1 else p[:, 1]))


def _logloss(y: np.ndarray[Any, Any], p: np.ndarray[Any, Any]) -> float:
    return float(skm.log_loss(y, p))


_ALL = [
    MetricInfo("roc_auc", "classification", True, "proba", _auc),
    MetricInfo("log_loss", "classification", False, "proba", _logloss),
    MetricInfo("accuracy", "classification", True, "label", skm.accuracy_score),
    MetricInfo("balanced_accuracy", "classification", True, "label", skm.balanced_accuracy_score),
    MetricInfo("f1", "classification", True, "label", _f1),
    MetricInfo("rmse", "regression", False, "value", _rmse),
    MetricInfo("mae", "regression", False, "value", skm.mean_absolute_error),
    MetricInfo("r2", "regression", True, "value", skm.r2_score),
]

METRICS: Mapping[str, MetricInfo] = MappingProxyType({m.name: m for m in _ALL})
"""Every metric retrainer knows, by name (read-only)."""


def score(name: str, y_true: np.ndarray[Any, Any], output: np.ndarray[Any, Any]) -> float:
    """Compute metric ``name``; ``output`` is what ``METRICS[name].uses`` says."""
    return float(METRICS[name].fn(np.asarray(y_true), np.asarray(output)))
