"""Realised performance: the champion's metric on new batches that carry their labels."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from retrainer.evaluate.compare import model_output
from retrainer.evaluate.metrics import METRICS, score

__all__ = ["model_outputs", "realised_metric", "realised_metrics"]


def realised_metric(
    model: Any,
    frame: pd.DataFrame,
    *,
    metric: str,
    features: list[str],
    target: str,
    min_rows: int = 1,
) -> float | None:
    """``metric`` of ``model`` on the labelled rows of ``frame``; None when too few labels."""
    outputs = model_outputs(model, frame, [metric], features)
    return realised_metrics(frame, outputs, [metric], target=target, min_rows=min_rows)[metric]


def model_outputs(
    model: Any, frame: pd.DataFrame, metrics: list[str], features: list[str]
) -> dict[str, np.ndarray[Any, Any]]:
    """What ``metrics`` score, for every row of ``frame``: one prediction per kind of output
    (``proba``, ``label`` or ``value``), however many metrics share it."""
    outputs: dict[str, np.ndarray[Any, Any]] = {}
    for metric in metrics:
        kind = METRICS[metric].uses
        if kind not in outputs and len(frame):
            outputs[kind] = model_output(model, frame, metric, features)
    return outputs


def realised_metrics(
    frame: pd.DataFrame,
    outputs: dict[str, np.ndarray[Any, Any]],
    metrics: list[str],
    *,
    target: str,
    min_rows: int = 1,
) -> dict[str, float | None]:
    """Each metric on the labelled rows of ``frame`` from :func:`model_outputs`; None when
    there are too few labels or the metric is undefined (e.g. a single class present)."""
    if target not in frame.columns:
        return dict.fromkeys(metrics)
    mask = frame[target].notna().to_numpy()
    if int(mask.sum()) < min_rows or int(mask.sum()) == 0:
        return dict.fromkeys(metrics)
    y = frame[target].to_numpy()[mask]
    values: dict[str, float | None] = {}
    for metric in metrics:
        try:
            value = score(metric, y, outputs[METRICS[metric].uses][mask])
        except ValueError:
            value = float("nan")
        values[metric] = value if np.isfinite(value) else None
    return values
