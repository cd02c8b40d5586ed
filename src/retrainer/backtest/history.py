"""A history to replay: rows read from Parquet or CSV, in time order, cut into batches.

``--batch-by`` is ``day``, ``week`` (weeks start on Monday), ``month`` (calendar
periods of the time column, in its own time zone) or ``rows:N`` (consecutive runs of N
rows in time order; the last batch may be shorter). Rows are sorted by the time
column with a stable sort, so rows with equal times keep their order in the file.
Periods with no rows make no batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from retrainer.errors import DataSourceError, SpecError

__all__ = ["Batch", "BatchBy", "load_history", "parse_batch_by", "split_batches"]

SUFFIXES = (".parquet", ".pq", ".csv")
PERIODS = {"day": "D", "week": "W-SUN", "month": "M"}


@dataclass(frozen=True)
class BatchBy:
    """How the history is cut: a calendar period (``day``/``week``/``month``) or N rows."""

    period: str | None = None
    rows: int | None = None

    def __str__(self) -> str:
        return self.period if self.period else f"rows:{self.rows}"


@dataclass(frozen=True)
class Batch:
    """One batch of the history: its position, rows, and time span (None without times)."""

    index: int
    frame: pd.DataFrame
    start: pd.Timestamp | None
    end: pd.Timestamp | None

    def to_dict(self, *, target: str) -> dict[str, Any]:
        """``index``, ``start``, ``end``, ``rows`` and ``labelled`` (rows with a label)."""
        labelled = int(self.frame[target].notna().sum()) if target in self.frame else 0
        return {
            "index": self.index,
            "start": None if self.start is None else self.start.isoformat(),
            "end": None if self.end is None else self.end.isoformat(),
            "rows": len(self.frame),
            "labelled": labelled,
        }


def parse_batch_by(text: str) -> BatchBy:
    """``day``, ``week``, ``month`` or ``rows:N`` (N a positive integer)."""
    value = text.strip().lower()
    if value in PERIODS:
        return BatchBy(period=value)
    if value.startswith("rows:"):
        count = value.removeprefix("rows:")
        if count.isdigit() and int(count) > 0:
            return BatchBy(rows=int(count))
    raise SpecError(
        f"--batch-by: expected day, week, month or rows:N with N a positive integer, got {text!r}"
    )


def _files(path: Path) -> list[Path]:
    if path.is_file():
        if path.suffix.lower() not in SUFFIXES:
            raise DataSourceError(
                f"--data {path}: expected a .parquet or .csv file, got {path.suffix or 'none'}"
            )
        return [path]
    if path.is_dir():
        found = sorted(
            p
            for p in path.iterdir()
            if p.is_file() and p.suffix.lower() in SUFFIXES and not p.name.startswith(".")
        )
        if not found:
            raise DataSourceError(f"--data {path}: the folder holds no .parquet or .csv file")
        return found
    raise DataSourceError(f"--data {path}: no such file or folder")


def _read(path: Path) -> pd.DataFrame:
    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow and pandas raise many kinds for a bad file
        raise DataSourceError(f"{path}: cannot read it ({type(exc).__name__}: {exc})") from exc


def load_history(path: Path, *, time_column: str | None) -> pd.DataFrame:
    """Every row of the file, or of the folder's files in name order, sorted by time.

    The time column is parsed as times (CSV holds text); a row without a time, or a
    value that is not one, is an error naming the file, column and row.
    """
    frames = []
    for file in _files(path):
        frame = _read(file)
        if time_column is not None:
            frame = _with_times(frame, time_column, file)
        frames.append(frame)
    data = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if time_column is not None:
        data = data.sort_values(time_column, kind="stable").reset_index(drop=True)
    return data


def _with_times(frame: pd.DataFrame, column: str, file: Path) -> pd.DataFrame:
    if column not in frame.columns:
        raise DataSourceError(
            f"{file}: no time column {column!r} (columns: {', '.join(map(str, frame.columns))}); "
            "name another with --time-column"
        )
    times = pd.to_datetime(frame[column], errors="coerce", format="mixed")
    bad = times.isna()
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise DataSourceError(
            f"{file}: column {column!r} row {row}: expected a time, got {frame[column].iloc[row]!r}"
            f" ({int(bad.sum())} such row(s))"
        )
    return frame.assign(**{column: times})


def split_batches(data: pd.DataFrame, by: BatchBy, *, time_column: str | None) -> list[Batch]:
    """The batches in time order. Calendar periods need a time column."""
    if by.rows is not None:
        groups = [data.iloc[i : i + by.rows] for i in range(0, len(data), by.rows)]
    else:
        if time_column is None:
            raise SpecError(
                f"--batch-by {by}: needs a time column (--time-column, or data.time_column "
                "in the spec); without one, cut by rows:N"
            )
        times = data[time_column]
        if getattr(times.dt, "tz", None) is not None:
            keys = times.dt.tz_localize(None).dt.to_period(PERIODS[str(by)])
        else:
            keys = times.dt.to_period(PERIODS[str(by)])
        groups = [g for _, g in data.groupby(keys, sort=True)]
    batches = []
    for i, frame in enumerate(groups):
        frame = frame.reset_index(drop=True)
        start = end = None
        if time_column is not None and len(frame):
            start, end = frame[time_column].iloc[0], frame[time_column].iloc[-1]
        batches.append(Batch(i, frame, start, end))
    return batches
