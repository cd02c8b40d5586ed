"""Scoring partition by partition: a model's predictions on data an executor holds.

:func:`partition_predict` turns an executor into a
:data:`~retrainer.evaluate.outputs.Predict` for
:func:`~retrainer.evaluate.compare.evaluate_candidate` and the monitor: the model goes
to where the partitions are, and only its predictions come back, in row order.
:func:`holdout_scores` does the same for a holdout that is never gathered whole (Parquet
files or a Dask dataframe): it returns the labels and each model's scores, which is all
the metric and its bootstrap interval need.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, Protocol, TypeVar

import numpy as np
import pandas as pd

from retrainer.evaluate.metrics import METRICS
from retrainer.evaluate.outputs import Array, Predict, local_predict

__all__ = ["HoldoutScores", "holdout_scores", "partition_predict"]

T = TypeVar("T")


class Mapper(Protocol):
    """What scoring needs of an executor."""

    def map_partitions(
        self, fn: Callable[..., T], data: Any, args: Sequence[Any] | None = None
    ) -> list[T]: ...


def _predict(frame: pd.DataFrame, *, model: Any, kind: str) -> Array:
    return local_predict(model, frame, kind)


def partition_predict(executor: Mapper) -> Predict:
    """A :data:`Predict` that scores each partition where it is and concatenates."""

    def predict(model: Any, X: pd.DataFrame, kind: str) -> Array:
        parts = executor.map_partitions(partial(_predict, model=model, kind=kind), X)
        return np.concatenate(parts) if len(parts) != 1 else parts[0]

    return predict


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
        pred = local_predict(model, X, "proba" if kind == "proba" else "predict")
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
