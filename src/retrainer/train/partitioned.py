"""Training windows over data that stays in parts: the rows :func:`training_sets` would
choose, chosen without gathering them.

:func:`partitioned_sets` reads each part once for what the choice needs (its row
count, its time column, and a 64-bit hash of each row for the holdout-overlap check),
makes the same choices as :func:`~retrainer.train.windows.training_sets` (the spec's
window, its holdout split and its overlap policy) on those few bytes per row, and
returns the train and holdout sets as the same files with a row mask each. The rows
chosen are those of the local path; within the sets they stay in their parts, in
arrival order (the local path sorts them by time), which no statistic of retrainer
depends on (profiles are order-independent, see
:mod:`retrainer.monitor.drift.partial`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar

import numpy as np
import pandas as pd

from retrainer.data.parts import ParquetFiles, pack_mask
from retrainer.errors import DataSourceError
from retrainer.spec import PipelineSpec
from retrainer.train.leakage import overlap_error
from retrainer.train.windows import holdout_positions

__all__ = ["PartitionedSets", "partitioned_sets"]

T = TypeVar("T")
_LAST = np.iinfo(np.int64).max  # NaT sorts last, as pandas' sort_values puts it


class Mapper(Protocol):
    """What choosing a window needs of an executor."""

    def map_partitions(
        self, fn: Callable[..., T], data: Any, args: Sequence[Any] | None = None
    ) -> list[T]: ...


@dataclass(frozen=True)
class PartitionedSets:
    """The train and holdout sets as masked files, and the training rows dropped as
    identical to holdout rows."""

    train: ParquetFiles
    holdout: ParquetFiles
    train_rows: int
    holdout_rows: int
    overlap: int


@dataclass(frozen=True)
class _Keys:
    rows: int
    order: np.ndarray[Any, Any] | None  # the time column as sortable numbers
    times: np.ndarray[Any, Any] | None  # the time column as int64 ns (window.last only)
    hashes: np.ndarray[Any, Any]  # one per row, for the overlap check


def _sortable(col: pd.Series[Any], name: str) -> np.ndarray[Any, Any]:
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        return col.to_numpy(dtype=np.float64, na_value=np.nan)  # NaN sorts last
    return _nanoseconds(col, name)


def _nanoseconds(col: pd.Series[Any], name: str) -> np.ndarray[Any, Any]:
    """The column as int64 nanoseconds (NaT last), as ``pd.to_datetime`` reads it."""
    try:
        if pd.api.types.is_object_dtype(col) or pd.api.types.is_string_dtype(col):
            times = pd.to_datetime(col, utc=True, format="ISO8601")
        else:
            times = pd.to_datetime(col, utc=True)
    except (ValueError, TypeError) as exc:
        raise DataSourceError(f"time column {name!r} must hold ISO-8601 times: {exc}") from exc
    ns = times.to_numpy(dtype="datetime64[ns]").view(np.int64).copy()
    ns[times.isna().to_numpy()] = _LAST
    return ns


def _keys(frame: pd.DataFrame, *, time_column: str | None, by_age: bool) -> _Keys:
    order = times = None
    if time_column is not None:
        if time_column not in frame.columns:
            raise DataSourceError(f"time column {time_column!r} is not in the data")
        col = frame[time_column]
        order = _sortable(col, time_column)
        times = _nanoseconds(col, time_column) if by_age else None
    hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return _Keys(len(frame), order, times, hashes)


def partitioned_sets(executor: Mapper, files: ParquetFiles, spec: PipelineSpec) -> PartitionedSets:
    """The spec's train and holdout sets of ``files`` (accepted batches, in arrival order).

    Raises:
        TrainingError: too few rows to hold out ``data.holdout.fraction`` and train.
        LeakageError: ``train.leakage.holdout_overlap: block`` and a training row is also
            a holdout row.
        DataSourceError: the time column is missing or not times.
    """
    tcol, window = spec.data.time_column, spec.data.window
    keys = executor.map_partitions(
        partial(_keys, time_column=tcol, by_age=window.last is not None and tcol is not None),
        files,
    )
    sizes = np.array([k.rows for k in keys], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    chosen = np.arange(int(offsets[-1]), dtype=np.int64)  # global arrival positions
    if tcol is not None:
        chosen = np.argsort(np.concatenate([k.order for k in keys]), kind="stable")
        if window.last is not None:
            ns = np.concatenate([k.times for k in keys])[chosen]
            valid = ns[ns != _LAST]
            newest = int(valid.max()) if valid.size else _LAST
            cutoff = newest - int(pd.Timedelta(window.last).value)
            chosen = chosen[(ns != _LAST) & (ns > cutoff)]
    if window.rows is not None:
        chosen = chosen[-window.rows :] if window.rows else chosen[:0]
    train_at, hold_at = holdout_positions(len(chosen), spec.data.holdout, seed=spec.train.seed)
    train, hold = chosen[train_at], chosen[hold_at]
    hashes = np.concatenate([k.hashes for k in keys])
    overlap = np.isin(hashes[train], hashes[hold]) if len(hold) else np.zeros(len(train), bool)
    dropped = int(overlap.sum())
    if dropped and spec.train.leakage.holdout_overlap == "block":
        raise overlap_error(dropped)
    train = train[~overlap]
    return PartitionedSets(
        train=files.masked(_masks(train, offsets)),
        holdout=files.masked(_masks(hold, offsets)),
        train_rows=len(train),
        holdout_rows=len(hold),
        overlap=dropped,
    )


def _masks(positions: np.ndarray[Any, Any], offsets: np.ndarray[Any, Any]) -> list[bytes]:
    keep = np.zeros(int(offsets[-1]), dtype=bool)
    keep[positions] = True
    return [pack_mask(keep[offsets[i] : offsets[i + 1]]) for i in range(len(offsets) - 1)]
