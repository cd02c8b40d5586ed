"""Reference profiles built partition by partition, the same numbers however split.

:meth:`ReferenceProfile.build <retrainer.monitor.drift.profile.ReferenceProfile.build>`
with an ``executor`` reads a dataset through it (anything with
``map_partitions``, e.g. :mod:`retrainer.orchestrate.executors`) in two passes:

1. Each partition reports its row count, per numeric column the NaN/``±inf`` counts
   and the exact :class:`~retrainer.monitor.drift.moments.Moments` of its finite values,
   and per categorical column each category's count. These merge exactly (integers
   and exact sums), so counts, mean, variance and std are independent of the split.
2. Rows are chosen by a seeded 64-bit key computed from each row's own values
   (:func:`profile_keys`): a row is kept when its key is below ``k / rows`` of the key
   range, for ``k = sample_rows`` (the domain classifier's sample, ordered by key) and,
   when the dataset has more than ``profile_rows`` rows, ``k = profile_rows`` (the rows
   whose values make up the numeric columns' sorted sample: KS, Wasserstein, PSI cuts
   and bins, IQR). Each is a Bernoulli sample of about ``k`` rows. With at most ``k``
   rows every row is kept. Each partition returns only its chosen rows.

The client sorts what it got and builds the
:class:`~retrainer.monitor.drift.profile.ReferenceProfile`. Exact sums, integer counts
and value-keyed choices depend neither on partition boundaries nor on row order, so a
pandas frame in one partition, the same rows in Parquet files or a Dask dataframe, in
any order, give byte-identical profiles (``to_bytes``), while the client holds about
``profile_rows`` values per column.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar

import numpy as np
import pandas as pd

from retrainer.data.parts import ParquetFiles
from retrainer.errors import DataSourceError
from retrainer.monitor.drift.columns import (
    category_keys,
    column_counts,
    numeric_values,
    split_special,
)
from retrainer.monitor.drift.moments import Moments

__all__ = ["PROFILE_ROWS", "PartitionMapper", "gather", "sample_rows"]

T = TypeVar("T")
UIntArray = np.ndarray[Any, np.dtype[np.uint64]]

PROFILE_ROWS = 250_000
"""Numeric values kept per column of a reference larger than this: a uniform sample of
rows (counts and moments stay exact over all rows)."""


class PartitionMapper(Protocol):
    """What building a profile in parts needs of an executor."""

    def map_partitions(
        self, fn: Callable[..., T], data: Any, args: Sequence[Any] | None = None
    ) -> list[T]: ...


class OnePartition:
    """A pandas frame as a single partition (what a profile built in place uses)."""

    def map_partitions(
        self, fn: Callable[..., T], data: Any, args: Sequence[Any] | None = None
    ) -> list[T]:
        return [fn(data) if args is None else fn(data, args[0])]


@dataclass(frozen=True)
class NumericSummary:
    """One partition's numeric column: special-value counts and finite moments."""

    n_missing: int
    n_posinf: int
    n_neginf: int
    moments: Moments


@dataclass(frozen=True)
class Summary:
    """What pass 1 returns for one partition."""

    rows: int
    numeric: dict[str, NumericSummary]
    categorical: dict[str, tuple[dict[str, int], int]]


def column(frame: pd.DataFrame, name: str) -> pd.Series[Any]:
    """Column ``name`` of ``frame``. Raises DataSourceError naming it when it is
    missing or named twice."""
    if name not in frame.columns:
        raise DataSourceError(f"the reference has no column {name!r}")
    col = frame[name]
    if isinstance(col, pd.DataFrame):
        raise DataSourceError(f"the reference has more than one column named {name!r}")
    return col


def numeric_column(frame: pd.DataFrame, name: str) -> Any:
    """Column ``name`` as float64. Raises DataSourceError when it holds non-numbers."""
    col = column(frame, name)
    values = numeric_values(col)
    if values is None:
        raise DataSourceError(
            f"reference column {name!r} should be numeric but holds {col.dtype} values"
        )
    return values


def _summarise(
    frame: pd.DataFrame, *, numeric: Sequence[str], categorical: Sequence[str]
) -> Summary:
    nums = {}
    for name in numeric:
        finite, nan, posinf, neginf = split_special(numeric_column(frame, name))
        nums[name] = NumericSummary(nan, posinf, neginf, Moments.of(finite))
    cats = {name: column_counts(column(frame, name)) for name in categorical}
    return Summary(rows=len(frame), numeric=nums, categorical=cats)


_GOLDEN = 0x9E3779B97F4A7C15


def _mix(h: UIntArray) -> UIntArray:
    """SplitMix64's finaliser: every input bit moves every output bit (uint64 wraps)."""
    with np.errstate(over="ignore"):
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return h ^ (h >> np.uint64(31))


def _seeded(rows: int, seed: int) -> UIntArray:
    start = _mix(np.array([(seed * _GOLDEN + _GOLDEN) % 2**64], dtype=np.uint64))
    return np.full(rows, start[0], dtype=np.uint64)


def profile_keys(
    frame: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str], seed: int
) -> UIntArray:
    """A seeded 64-bit key per row from its *values* in the profile's columns (numbers
    as float64, -0.0 as 0.0, one NaN; categories as their keys), so a row's key does not
    depend on its position, its partition or its column's dtype there."""
    h = _seeded(len(frame), seed)
    for name in numeric:
        values = numeric_column(frame, name) + 0.0  # -0.0 -> 0.0
        values[np.isnan(values)] = np.nan  # one NaN bit pattern
        h = _mix(h ^ values.view(np.uint64))
    for name in categorical:
        keys = category_keys(column(frame, name))
        h = _mix(h ^ pd.util.hash_array(keys, categorize=True).astype(np.uint64))
    return h


def _threshold(take: int, rows: int) -> int | None:
    """Keep a row when its key is below this (None: keep every row)."""
    return None if rows <= take else (take << 64) // rows


@dataclass(frozen=True)
class Picks:
    """Pass 2's instructions: keep rows whose key is below a threshold (None: all)."""

    values: int | None
    sample: int | None
    seed: int


def _pick(
    frame: pd.DataFrame, picks: Picks, numeric: Sequence[str], categorical: Sequence[str]
) -> tuple[dict[str, Any], UIntArray, dict[str, Any]]:
    keys = profile_keys(frame, numeric, categorical, picks.seed)
    chosen = None if picks.values is None else keys < np.uint64(picks.values)
    rows = slice(None) if picks.sample is None else keys < np.uint64(picks.sample)
    values: dict[str, Any] = {}
    sample: dict[str, Any] = {}
    for name in numeric:
        col = numeric_column(frame, name)
        kept = col if chosen is None else col[chosen]
        values[name] = kept[np.isfinite(kept)]
        sample[name] = col[rows]
    for name in categorical:
        sample[name] = category_keys(column(frame, name))[rows]
    return values, keys[rows], sample


@dataclass(frozen=True)
class Gathered:
    """A dataset's profile material, merged on the client."""

    summaries: list[Summary]
    values: dict[str, Any]  # numeric column -> its chosen finite values, sorted
    sample: pd.DataFrame


def gather(
    executor: PartitionMapper,
    data: Any,
    numeric: Sequence[str],
    categorical: Sequence[str],
    *,
    sample_rows: int,
    seed: int,
    profile_rows: int,
) -> Gathered:
    """Run both passes (see the module docstring) and merge what they return."""
    nums, cats = list(numeric), list(categorical)
    summaries = executor.map_partitions(partial(_summarise, numeric=nums, categorical=cats), data)
    n_rows = sum(s.rows for s in summaries)
    picks = Picks(_threshold(profile_rows, n_rows), _threshold(sample_rows, n_rows), seed)
    pick = partial(_pick, numeric=nums, categorical=cats)
    parts = executor.map_partitions(pick, data, [picks] * len(summaries))
    keys = np.concatenate([p[1] for p in parts]) if parts else np.empty(0, dtype=np.uint64)
    order = np.argsort(keys, kind="stable")  # equal keys: equal rows (but for collisions)
    columns: dict[str, Any] = {}
    for name in numeric:
        chunks = [p[2][name] for p in parts]
        columns[name] = (np.concatenate(chunks) if chunks else np.empty(0))[order]
    for name in categorical:
        chunks = [p[2][name] for p in parts]
        keyed = np.concatenate(chunks) if chunks else np.empty(0, dtype=object)
        columns[name] = pd.Series(keyed[order], dtype=object)
    index = pd.RangeIndex(len(order))
    frame = pd.DataFrame(columns, index=index, columns=[*numeric, *categorical])
    merged = {}
    for name in numeric:  # each part's chunk is let go as soon as it is merged
        values = np.concatenate([p[0].pop(name) for p in parts]) if parts else np.empty(0)
        values.sort()  # in place: this array is ours
        merged[name] = values
    return Gathered(summaries=summaries, values=merged, sample=frame)


def _row_keys(frame: pd.DataFrame, seed: int) -> UIntArray:
    hashed: UIntArray = np.asarray(pd.util.hash_pandas_object(frame, index=False), np.uint64)
    return _mix(hashed ^ _seeded(len(frame), seed))


def _keep(frame: pd.DataFrame, threshold: int | None, seed: int) -> tuple[pd.DataFrame, UIntArray]:
    keys = _row_keys(frame, seed)
    if threshold is None:
        return frame, keys
    mask = keys < np.uint64(threshold)
    return frame[mask], keys[mask]


def sample_rows(executor: PartitionMapper, data: Any, n: int, *, seed: int) -> pd.DataFrame:
    """About ``n`` whole rows of ``data``, each kept when its seeded hash (of its values)
    falls below ``n / rows`` of the hash range, ordered by that hash: the same rows in
    any partitioning or row order. Every row, in order, when ``data`` has at most ``n``."""
    if isinstance(data, ParquetFiles):  # known from the files' footers and masks
        n_rows = sum(data.row_counts())
    else:
        n_rows = sum(executor.map_partitions(len, data))
    threshold = _threshold(n, n_rows)
    parts = executor.map_partitions(partial(_keep, threshold=threshold, seed=seed), data)
    frames = [p[0] for p in parts]
    if not frames:
        return pd.DataFrame()
    out = pd.concat(frames, ignore_index=True)
    if threshold is None:
        return out
    keys = np.concatenate([p[1] for p in parts])
    return out.iloc[np.argsort(keys, kind="stable")].reset_index(drop=True)
