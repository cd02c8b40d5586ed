"""Snapshots: the exact rows a model saw, identified by a content hash.

:func:`frame_sha256` identifies a frame by its content (column names, dtypes and values,
in order), independent of the index and of how the frame was stored.
:func:`partitioned_sha256` identifies a dataset kept in partitions (Parquet files, a
Dask dataframe) from its partitions' hashes, computed where the partitions are
(:func:`dataset_sha256`), without gathering the rows.
:func:`frame_to_parquet` / :func:`frame_from_parquet` store and load the rows; a
round trip keeps the hash for the usual dtypes (numbers, booleans, strings,
datetimes, nullable integers, categoricals).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pandas.util import hash_pandas_object

from retrainer.errors import DataSourceError

__all__ = [
    "PARTITIONED_FORMAT",
    "SnapshotInfo",
    "dataset_sha256",
    "describe_frame",
    "describe_parts",
    "frame_from_parquet",
    "frame_sha256",
    "frame_to_parquet",
    "partitioned_sha256",
]

PARTITIONED_FORMAT = "retrainer.partitioned.v1"


def frame_sha256(df: pd.DataFrame) -> str:
    """A deterministic sha256 of exactly these rows, as 64 hex characters.

    The hash covers the column names, dtypes and every value, in column and row order;
    the index is ignored. Equal frames give equal hashes across processes; changing a
    cell, the column order, a dtype or the row order changes the hash. Each value is
    first reduced to pandas' stable 64-bit hash (``hash_pandas_object``).

    Raises:
        DataSourceError: a column holds unhashable values (lists, dicts).

    Example:
        >>> a = pd.DataFrame({"x": [1, 2]})
        >>> frame_sha256(a) == frame_sha256(a.copy())
        True
        >>> frame_sha256(a) == frame_sha256(a.iloc[::-1])
        False
    """
    header = [[str(name), str(dtype)] for name, dtype in df.dtypes.items()]
    digest = hashlib.sha256(json.dumps({"rows": len(df), "columns": header}).encode())
    for position, name in enumerate(df.columns):
        try:
            hashes = hash_pandas_object(df.iloc[:, position], index=False)
        except TypeError as exc:
            raise DataSourceError(
                f"column {name!r} holds values that cannot be hashed: {exc}"
            ) from exc
        digest.update(hashes.to_numpy(dtype="<u8").tobytes())
    return digest.hexdigest()


def partitioned_sha256(parts: Iterable[tuple[str, int]]) -> str:
    """The identity of a dataset from its partitions' ``(frame_sha256, rows)`` pairs.

    The combination is order-independent: the pairs are sorted (by hash, then rows) and
    the sha256 is taken of the JSON ``{"format": "retrainer.partitioned.v1", "rows":
    total, "partitions": [[hash, rows], ...]}`` (compact separators, sorted keys). The
    same partitions listed in any order, or computed on any executor, give the same
    hash; moving a row to another partition, changing a cell, a column or the row order
    within a partition changes it. Empty partitions count (their hash names the columns).

    Example:
        >>> a, b = ("aa" * 32, 10), ("bb" * 32, 5)
        >>> partitioned_sha256([a, b]) == partitioned_sha256([b, a])
        True
    """
    pairs = sorted((str(h), int(n)) for h, n in parts)
    body = {
        "format": PARTITIONED_FORMAT,
        "rows": sum(n for _, n in pairs),
        "partitions": [list(p) for p in pairs],
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class _Mapper(Protocol):
    def map_partitions(self, fn: Callable[..., Any], data: Any) -> list[Any]: ...


def _digest(frame: pd.DataFrame) -> tuple[str, int]:
    return frame_sha256(frame), len(frame)


def dataset_sha256(executor: _Mapper, data: Any) -> str:
    """:func:`partitioned_sha256` of ``data``, each partition hashed where it is (an
    executor of :mod:`retrainer.orchestrate.executors`); only the hashes travel."""
    return partitioned_sha256(executor.map_partitions(_digest, data))


@dataclass(frozen=True)
class SnapshotInfo:
    """What identifies and describes a snapshot.

    Attributes:
        content_hash: :func:`frame_sha256` of the rows.
        row_count: Number of rows.
        columns: Column name -> dtype string, in column order.
        time_min: Earliest value of the time column as an ISO string (``None`` when
            there is no time column or it has no values).
        time_max: Latest value of the time column, likewise.
    """

    content_hash: str
    row_count: int
    columns: dict[str, str]
    time_min: str | None
    time_max: str | None


def describe_frame(df: pd.DataFrame, *, time_column: str | None) -> SnapshotInfo:
    """Hash, size, schema and time range of ``df``.

    The time column may hold datetimes, dates, numbers, or ISO-8601 strings (CSV
    files give strings); strings are parsed to find the range, the frame is unchanged.

    Raises:
        DataSourceError: ``time_column`` is missing, or holds strings that are not
            ISO-8601 times (the message shows one).
    """
    time_min = time_max = None
    if time_column is not None:
        if time_column not in df.columns:
            raise DataSourceError(
                f"time column {time_column!r} is not in the data; columns are {list(df.columns)}"
            )
        time_min, time_max = _time_range(df[time_column], time_column)
    return SnapshotInfo(
        content_hash=frame_sha256(df),
        row_count=len(df),
        columns={str(name): str(dtype) for name, dtype in df.dtypes.items()},
        time_min=time_min,
        time_max=time_max,
    )


def _time_range(values: pd.Series, name: str) -> tuple[str | None, str | None]:
    low, high = _time_bounds(values, name)
    return (None, None) if low is None else (_iso(low), _iso(high))


def _time_bounds(values: pd.Series, name: str) -> tuple[Any, Any]:
    """(earliest, latest) of a time column: numbers, or timestamps (strings parsed)."""
    values = values.dropna()
    if values.empty:
        return None, None
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.min(), values.max()
    if not pd.api.types.is_datetime64_any_dtype(values):
        try:
            values = pd.to_datetime(values, format="ISO8601")
        except (ValueError, TypeError) as exc:
            raise DataSourceError(
                f"time column {name!r} must hold ISO-8601 times; e.g. {values.iloc[0]!r} "
                f"is not one ({exc})"
            ) from exc
    return values.min(), values.max()


def _describe_part(
    frame: pd.DataFrame, *, time_column: str | None
) -> tuple[str, int, dict[str, str], Any, Any]:
    low = high = None
    if time_column is not None:
        if time_column not in frame.columns:
            raise DataSourceError(f"time column {time_column!r} is not in the data")
        low, high = _time_bounds(frame[time_column], time_column)
    dtypes = {str(name): str(dtype) for name, dtype in frame.dtypes.items()}
    return frame_sha256(frame), len(frame), dtypes, low, high


def describe_parts(executor: _Mapper, data: Any, *, time_column: str | None) -> SnapshotInfo:
    """:func:`describe_frame` of a dataset in parts, each part described where it is:
    the hash is :func:`partitioned_sha256`, the columns are the first part's.

    Raises:
        DataSourceError: ``time_column`` is missing from a part, or not times.
    """
    parts = executor.map_partitions(partial(_describe_part, time_column=time_column), data)
    lows = [p[3] for p in parts if p[3] is not None]
    highs = [p[4] for p in parts if p[4] is not None]
    return SnapshotInfo(
        content_hash=partitioned_sha256((p[0], p[1]) for p in parts),
        row_count=sum(p[1] for p in parts),
        columns=parts[0][2] if parts else {},
        time_min=_iso(min(lows)) if lows else None,
        time_max=_iso(max(highs)) if highs else None,
    )


def _iso(value: object) -> str:
    isoformat = getattr(value, "isoformat", None)
    return str(isoformat()) if callable(isoformat) else str(value)


def frame_to_parquet(df: pd.DataFrame) -> bytes:
    """The rows of ``df`` as Parquet bytes (pyarrow, zstd, the index dropped).

    Raises:
        DataSourceError: a column cannot be stored in Parquet (mixed Python types).
    """
    try:
        table = pa.Table.from_pandas(df, preserve_index=False)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise DataSourceError(f"cannot store the frame as Parquet: {exc}") from exc
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def frame_from_parquet(data: bytes) -> pd.DataFrame:
    """The frame stored by :func:`frame_to_parquet`.

    Raises:
        DataSourceError: ``data`` is not valid Parquet.
    """
    try:
        frame: pd.DataFrame = pq.read_table(io.BytesIO(data)).to_pandas()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataSourceError(f"snapshot bytes are not valid Parquet: {exc}") from exc
    return frame
