"""The serving prediction log: Parquet partitions written in the background, read with DuckDB.

Every served prediction becomes one row. The server hands rows to a
:class:`PredictionLogWriter`, which never blocks the caller: rows go into a bounded
queue and a background thread writes them in batches. When the queue is full, or a
write fails (disk full, unwritable folder), the rows are *dropped and counted*
(``dropped``, by reason) and serving goes on.

Layout (hive partitioning, one file per batch, published atomically: a temp file in the
same folder, then ``os.replace``)::

    <workspace>/.retrainer/predictions/model=<name>/date=<YYYY-MM-DD>/part-<uuid>.parquet

Row columns: ``prediction_id`` (text), ``predicted_at`` (UTC timestamp), ``version``
(int), ``label`` (text or null), ``score`` (float or null), ``probabilities`` (JSON
text or null) and ``features`` (JSON text of the input row). ``model`` and ``date``
come from the folder names. :func:`read_prediction_log` reads them back with DuckDB.
"""

from __future__ import annotations

import collections
import functools
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from retrainer.fsmode import make_private_dirs, open_private

if TYPE_CHECKING:
    from retrainer.registry.db import Database

__all__ = [
    "LOG_DIR",
    "LogStats",
    "PredictionLogWriter",
    "PredictionRecord",
    "copy_to_store",
    "partition_dir",
    "read_prediction_log",
]

logger = logging.getLogger(__name__)

LOG_DIR = Path(".retrainer") / "predictions"
"""The log's folder, relative to the workspace root."""

_SCHEMA = pa.schema(
    [
        ("prediction_id", pa.string()),
        ("predicted_at", pa.timestamp("us", tz="UTC")),
        ("version", pa.int64()),
        ("label", pa.string()),
        ("score", pa.float64()),
        ("probabilities", pa.string()),
        ("features", pa.string()),
    ]
)


@dataclass(frozen=True)
class PredictionRecord:
    """One logged prediction (``predicted_at`` must be timezone-aware UTC)."""

    model: str
    version: int
    prediction_id: str
    predicted_at: datetime
    features: Mapping[str, Any]
    label: str | None = None
    score: float | None = None
    probabilities: Mapping[str, float] | None = None


@dataclass
class LogStats:
    """Counters of a writer (read them; the writer updates them under its lock)."""

    written: int = 0
    files: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: {"queue_full": 0, "write_error": 0})
    last_error: str | None = None

    @property
    def dropped_total(self) -> int:
        """All dropped rows, whatever the reason."""
        return sum(self.dropped.values())


_to_json = json.JSONEncoder(default=str).encode  # one encoder, not one per row


def partition_dir(root: Path, model: str, day: str) -> Path:
    """``<root>/model=<model>/date=<day>``: where one model's rows of one day go."""
    return root / f"model={model}" / f"date={day}"


class PredictionLogWriter:
    """Batches prediction rows into Parquet files from a background thread.

    ``submit`` never blocks and never raises for a full queue or a failing disk: such
    rows are dropped and counted (``stats.dropped['queue_full' | 'write_error']``) and
    ``on_drop(reason, rows)`` is called. ``close`` flushes what is queued and stops the
    thread (idempotent).

    Args:
        root: The log folder (``<workspace>/.retrainer/predictions``); created on demand.
        max_queue: Rows the queue holds before it drops.
        batch_rows: At most this many rows per write.
        flush_seconds: A partial batch is written after waiting this long for more rows.
        on_drop: Called with ``(reason, rows)`` for every drop (from any thread).
        on_write: Called with ``rows`` after each published file.
    """

    def __init__(
        self,
        root: Path,
        *,
        max_queue: int = 10_000,
        batch_rows: int = 1_000,
        flush_seconds: float = 1.0,
        on_drop: Callable[[str, int], None] | None = None,
        on_write: Callable[[int], None] | None = None,
    ) -> None:
        if max_queue < 1 or batch_rows < 1 or flush_seconds <= 0:
            raise ValueError(
                "expected max_queue >= 1, batch_rows >= 1 and flush_seconds > 0, got "
                f"{max_queue}, {batch_rows}, {flush_seconds}"
            )
        self.root = root
        self.stats = LogStats()
        self._max_queue = max_queue
        self._chunks: collections.deque[list[PredictionRecord]] = collections.deque()
        self._rows = 0  # rows in _chunks
        self._ready = threading.Condition()
        self._batch_rows = batch_rows
        self._flush_seconds = flush_seconds
        self._on_drop = on_drop
        self._on_write = on_write
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._started = False

    def start(self) -> None:
        """Start the writer thread (once)."""
        if not self._started:
            self._started = True
            self._thread.start()

    @property
    def queued(self) -> int:
        """Rows waiting to be written."""
        return self._rows

    def submit(self, records: list[PredictionRecord]) -> int:
        """Queue rows without blocking; return how many were dropped because it was full.

        The rows of one call are queued together (one lock, not one per row); those
        beyond the queue's room are dropped.
        """
        if not records:
            return 0
        with self._ready:
            room = max(self._max_queue - self._rows, 0)
            taken = records if len(records) <= room else records[:room]
            if taken:
                self._chunks.append(taken)
                self._rows += len(taken)
                self._ready.notify()
        dropped = len(records) - len(taken)
        if dropped:
            self._drop("queue_full", dropped, None)
        return dropped

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread (idempotent)."""
        self._stop.set()
        with self._ready:
            self._ready.notify_all()
        if self._started and self._thread.is_alive():
            self._thread.join(timeout)
        if not self._thread.is_alive():
            self._write_all(self._drain(None))  # never started, or rows after the last loop

    # -- internals ---------------------------------------------------------------------

    def _drop(self, reason: str, rows: int, error: str | None) -> None:
        with self._lock:
            self.stats.dropped[reason] = self.stats.dropped.get(reason, 0) + rows
            if error is not None:
                self.stats.last_error = error
        if self._on_drop is not None:
            self._on_drop(reason, rows)

    def _drain(self, limit: int | None) -> list[PredictionRecord]:
        """Queued rows, whole submissions at a time, up to about ``limit`` rows."""
        out: list[PredictionRecord] = []
        with self._ready:
            while self._chunks and (limit is None or len(out) < limit):
                chunk = self._chunks.popleft()
                self._rows -= len(chunk)
                out += chunk
        return out

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._ready:
                if not self._chunks:
                    self._ready.wait(self._flush_seconds)
                if not self._chunks:
                    continue
            if self._rows < self._batch_rows:
                # Wait a little for more rows, so that files are not one row each.
                self._stop.wait(min(0.05, self._flush_seconds))
            self._write_all(self._drain(self._batch_rows))
        self._write_all(self._drain(None))

    def _write_all(self, batch: list[PredictionRecord]) -> None:
        groups: dict[tuple[str, Any], list[PredictionRecord]] = {}
        for rec in batch:
            groups.setdefault((rec.model, rec.predicted_at.date()), []).append(rec)
        groups_by_text = {(m, d.isoformat()): rows for (m, d), rows in groups.items()}
        for (model, day), rows in groups_by_text.items():
            try:
                self._write(partition_dir(self.root, model, day), rows)
            except OSError as exc:  # ENOSPC, EACCES, a file where a folder should be...
                logger.warning("prediction log: dropped %d rows: %s", len(rows), exc)
                self._drop("write_error", len(rows), f"{type(exc).__name__}: {exc}")
            except Exception as exc:  # the writer thread must not die
                logger.exception("prediction log: dropped %d rows", len(rows))
                self._drop("write_error", len(rows), f"{type(exc).__name__}: {exc}")
            else:
                with self._lock:
                    self.stats.written += len(rows)
                    self.stats.files += 1
                if self._on_write is not None:
                    self._on_write(len(rows))

    def _write(self, folder: Path, rows: list[PredictionRecord]) -> None:
        table = pa.table(
            {
                "prediction_id": [r.prediction_id for r in rows],
                "predicted_at": [r.predicted_at for r in rows],
                "version": [r.version for r in rows],
                "label": [r.label for r in rows],
                "score": [r.score for r in rows],
                "probabilities": [
                    None if r.probabilities is None else _to_json(r.probabilities) for r in rows
                ],
                "features": [_to_json(r.features) for r in rows],
            },
            schema=_SCHEMA,
        )
        make_private_dirs(folder)
        name = f"part-{uuid.uuid4().hex}.parquet"
        tmp = folder / f".{name}.tmp"
        try:
            with os.fdopen(open_private(tmp), "wb") as fh:  # 0o600: rows hold request data
                pq.write_table(table, fh)
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(folder / name)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def read_prediction_log(root: Path, model: str, since: datetime | None = None) -> pd.DataFrame:
    """A model's logged predictions, oldest first, read with DuckDB over the partitions.

    Args:
        root: The log folder (``<workspace>/.retrainer/predictions``).
        model: The model name.
        since: Only rows predicted at or after this instant (timezone-aware).

    Returns:
        The rows (the columns of the module docstring plus ``model`` and ``date``);
        empty, with those columns, when nothing was logged.
    """
    import duckdb

    columns = [*_SCHEMA.names, "model", "date"]
    folder = root / f"model={model}"
    if not any(folder.glob("date=*/part-*.parquet")):
        return pd.DataFrame(columns=columns)
    if since is not None and since.tzinfo is None:
        raise ValueError(f"expected a timezone-aware 'since', got {since!r}")
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        query = "SELECT * FROM read_parquet(?, hive_partitioning = true, union_by_name = true)"
        params: list[Any] = [str(folder / "date=*" / "part-*.parquet")]
        if since is not None:
            query += " WHERE predicted_at >= ?"
            params.append(since)
        frame = con.execute(query + " ORDER BY predicted_at, prediction_id", params).df()
    finally:
        con.close()
    frame["model"] = model
    frame["date"] = frame["date"].astype(str)
    return frame[columns]


def copy_to_store(db: Database, root: Path, model: str, *, since: datetime | None = None) -> int:
    """Copy a model's logged predictions into the store's prediction table; return the count.

    Realised performance (``retrainer monitor``, the ``performance`` trigger) joins the
    store's predictions with the labels; this brings served predictions there. Ids
    already in the store are skipped, so running it again (e.g. from cron, with or
    without ``since``) copies only new rows. One transaction per served version.
    """
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from retrainer.monitor.predictions import log_predictions
    from retrainer.registry.tables import Prediction

    frame = read_prediction_log(root, model, since)
    if frame.empty:
        return 0
    ids = [str(i) for i in frame["prediction_id"]]
    existing: set[str] = set()

    def known(s: Session, chunk: list[str]) -> list[str]:
        query = select(Prediction.prediction_id).where(
            Prediction.model == model, Prediction.prediction_id.in_(chunk)
        )
        return list(s.scalars(query).all())

    for start in range(0, len(ids), 900):
        chunk = ids[start : start + 900]
        existing |= set(db.transaction(functools.partial(known, chunk=chunk)))
    fresh = frame[~frame["prediction_id"].isin(existing)]
    by_version: dict[int, list[dict[str, Any]]] = {}
    row: dict[Any, Any]
    for row in fresh.to_dict("records"):
        by_version.setdefault(int(row["version"]), []).append(
            {
                "prediction_id": row["prediction_id"],
                "predicted_at": pd.Timestamp(row["predicted_at"]).to_pydatetime(),
                "score": None if pd.isna(row["score"]) else float(row["score"]),
                "label": None if pd.isna(row["label"]) else row["label"],
                "probabilities": None
                if pd.isna(row["probabilities"])
                else json.loads(row["probabilities"]),
            }
        )
    copied = 0
    for version, records in sorted(by_version.items()):
        copied += log_predictions(db, model, version, records)
    return copied
