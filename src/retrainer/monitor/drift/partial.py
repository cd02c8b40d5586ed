"""Reference profiles built partition by partition, the same numbers however split.

:func:`build_profile` reads a dataset through an executor (anything with
``map_partitions``, e.g. :mod:`retrainer.orchestrate.executors`) in two passes:

1. Each partition reports its row count, per numeric column the NaN/``±inf`` counts
   and the exact :class:`~retrainer.monitor.drift.moments.Moments` of its finite values,
   and per categorical column each category's count. These merge exactly (integers
   and exact sums), so counts, mean, variance and std are independent of the split.
2. Rows are chosen by their position in the whole dataset: the domain classifier's
   sample (``sample_rows`` rows drawn with ``seed``, as before) and, when the dataset
   has more than ``profile_rows`` rows, the rows whose values make up the numeric
   columns' sorted sample (KS, Wasserstein, PSI cuts and bins, IQR). With at most
   ``profile_rows`` rows every finite value is kept, as a local profile always did.
   Each partition returns only its chosen rows.

The client sorts the chosen values and builds the
:class:`~retrainer.monitor.drift.profile.ReferenceProfile`. Because row positions and
exact sums do not depend on partition boundaries, a pandas frame in one partition, the
same rows in Parquet files, and a Dask dataframe give byte-identical profiles
(``to_bytes``), while the client holds at most ``profile_rows`` values per column.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar

import numpy as np
import pandas as pd

from retrainer.errors import DataSourceError
from retrainer.monitor.drift.columns import (
    category_keys,
    column_counts,
    numeric_values,
    split_special,
)
from retrainer.monitor.drift.moments import Moments

__all__ = ["PROFILE_ROWS", "PartitionMapper", "build_profile", "sample_rows"]

T = TypeVar("T")
IntArray = np.ndarray[Any, np.dtype[np.int64]]

PROFILE_ROWS = 1_000_000
"""Numeric values kept per column of a reference larger than this: a uniform sample of
rows (counts and moments stay exact over all rows)."""


class PartitionMapper(Protocol):
    """What :func:`build_profile` needs of an executor."""

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


@dataclass(frozen=True)
class Picks:
    """Pass 2's instructions for one partition: positions within it (sorted)."""

    values: IntArray | None  # None: every row
    sample: IntArray


def _pick(
    frame: pd.DataFrame, picks: Picks, numeric: Sequence[str], categorical: Sequence[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    values: dict[str, Any] = {}
    sample: dict[str, Any] = {}
    for name in numeric:
        col = numeric_column(frame, name)
        chosen = col if picks.values is None else col[picks.values]
        values[name] = chosen[np.isfinite(chosen)]
        sample[name] = col[picks.sample]
    for name in categorical:
        sample[name] = category_keys(column(frame, name).iloc[picks.sample])
    return values, sample


def _positions(n_rows: int, take: int, seed: Any) -> IntArray:
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_rows, size=take, replace=False)).astype(np.int64)


def _split(rows: IntArray, offsets: IntArray) -> list[IntArray]:
    """Global sorted positions -> per partition positions (partition ``i`` spans
    ``offsets[i]`` to ``offsets[i + 1]``)."""
    cuts = np.searchsorted(rows, offsets)
    return [rows[cuts[i] : cuts[i + 1]] - offsets[i] for i in range(len(offsets) - 1)]


@dataclass(frozen=True)
class Gathered:
    """A dataset's profile material, merged on the client."""

    summaries: list[Summary]
    values: dict[str, Any]  # numeric column -> its chosen finite values, unsorted
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
    summaries = executor.map_partitions(
        partial(_summarise, numeric=list(numeric), categorical=list(categorical)), data
    )
    sizes = np.array([s.rows for s in summaries], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    n_rows = int(offsets[-1])
    sample = _split(_positions(n_rows, min(n_rows, sample_rows), seed), offsets)
    values: list[IntArray | None]
    if n_rows <= profile_rows:
        values = [None] * len(summaries)
    else:
        values = list(_split(_positions(n_rows, profile_rows, [seed, 1]), offsets))
    picks = [Picks(v, s) for v, s in zip(values, sample, strict=True)]
    parts = executor.map_partitions(
        partial(_pick, numeric=list(numeric), categorical=list(categorical)), data, picks
    )
    take = sum(len(s) for s in sample)
    columns: dict[str, Any] = {}
    for name in numeric:
        chunks = [p[1][name] for p in parts]
        columns[name] = np.concatenate(chunks) if chunks else np.empty(0)
    for name in categorical:
        chunks = [p[1][name] for p in parts]
        keys = np.concatenate(chunks) if chunks else np.empty(0, dtype=object)
        columns[name] = pd.Series(keys, dtype=object)
    frame = pd.DataFrame(columns, index=pd.RangeIndex(take), columns=[*numeric, *categorical])
    merged = {
        name: np.concatenate([p[0][name] for p in parts]) if parts else np.empty(0)
        for name in numeric
    }
    return Gathered(summaries=summaries, values=merged, sample=frame)


def sample_rows(executor: PartitionMapper, data: Any, n: int, *, seed: int) -> pd.DataFrame:
    """Up to ``n`` whole rows of ``data`` chosen uniformly by position with ``seed``
    (every row, in order, when it has at most ``n``); the same rows on any executor."""
    sizes = np.array(executor.map_partitions(len, data), dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    n_rows = int(offsets[-1])
    if n_rows <= n:
        positions: list[Any] = [None] * len(sizes)
    else:
        positions = list(_split(_positions(n_rows, n, seed), offsets))
    parts = executor.map_partitions(_rows, data, positions)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _rows(frame: pd.DataFrame, positions: IntArray | None) -> pd.DataFrame:
    return frame if positions is None else frame.iloc[positions]


def build_profile(
    executor: PartitionMapper,
    data: Any,
    numeric: Sequence[str] = (),
    categorical: Sequence[str] = (),
    *,
    psi_bins: int = 10,
    sample_rows: int = 20_000,
    seed: int = 0,
    profile_rows: int = PROFILE_ROWS,
) -> Any:
    """The :class:`~retrainer.monitor.drift.profile.ReferenceProfile` of ``data``
    (a pandas frame, Parquet files or a Dask dataframe, as ``executor`` takes).

    Raises:
        ValueError: a column is named twice, or the options are out of range.
        DataSourceError: a column is missing, or a numeric one holds non-numbers.
    """
    from retrainer.monitor.drift.profile import ReferenceProfile

    return ReferenceProfile.build(
        data,
        numeric,
        categorical,
        psi_bins=psi_bins,
        sample_rows=sample_rows,
        seed=seed,
        profile_rows=profile_rows,
        executor=executor,
    )
