"""Realised performance: the champion's metric on new batches that carry their labels."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from retrainer.evaluate.compare import model_output
from retrainer.evaluate.metrics import score

__all__ = ["realised_metric"]


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
    if target not in frame.columns:
        return None
    labelled = frame[frame[target].notna()]
    if len(labelled) < min_rows:
        return None
    try:
        value = score(
            metric, labelled[target].to_numpy(), model_output(model, labelled, metric, features)
        )
    except ValueError:  # e.g. a single class present: the metric is undefined
        return None
    return value if np.isfinite(value) else None
