"""Scoring partition by partition: models' predictions on data an executor holds.

:func:`holdout_scores` sends the models to where the partitions of a holdout are
(Parquet files or a Dask dataframe, never gathered whole) and returns the labels and
each model's scores, in row order: all a metric and its bootstrap interval need. A
frame already in this process is scored in place
(:class:`~retrainer.evaluate.outputs.Outputs`): shipping it to the workers costs more
than the prediction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, Protocol, TypeVar

import numpy as np
import pandas as pd

from retrainer.evaluate.metrics import METRICS
from retrainer.evaluate.outputs import Array

__all__ = ["HoldoutScores", "holdout_scores"]

T = TypeVar("T")


class Mapper(Protocol):
    """What scoring needs of an executor."""

    def map_partitions(
        self, fn: Callable[..., T], data: Any, args: Sequence[Any] | None = None
    ) -> list[T]: ...


HoldoutScores = tuple[Array, dict[str, Array]]
"""(labels, model name -> what the metric scores), in row order."""


def _score(
    frame: pd.DataFrame,
    *,
    models: Mapping[str, Any],
    features: list[str],
    target: str,
    kind: str,
) -> HoldoutScores:
    X = frame[features]
    out = {}
    for name, model in models.items():
        pred = np.asarray(model.predict_proba(X) if kind == "proba" else model.predict(X))
        out[name] = (
            pred[:, 1] if kind == "proba" and pred.ndim == 2 and pred.shape[1] == 2 else pred
        )
    return frame[target].to_numpy(), out


def holdout_scores(
    executor: Mapper,
    models: Mapping[str, Any],
    data: Any,
    *,
    features: Sequence[str],
    target: str,
    metric: str,
) -> HoldoutScores:
    """Labels and each model's scores for ``metric`` on ``data``, partition by partition.

    Only the label and score columns come back to this process.
    """
    fn = partial(
        _score,
        models=dict(models),
        features=list(features),
        target=target,
        kind=METRICS[metric].uses,
    )
    parts = executor.map_partitions(fn, data)
    y = np.concatenate([p[0] for p in parts]) if parts else np.empty(0)
    scores = {name: np.concatenate([p[1][name] for p in parts]) for name in models}
    return y, scores
