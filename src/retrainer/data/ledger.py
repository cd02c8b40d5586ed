"""The data ledger: what was received, what it became, and the exact rows kept of it.

Every batch read from a source is snapshotted (its rows stored as Parquet in the
artifact store, content-hashed) and recorded with a status: ``pending`` until the
contract is checked, then ``accepted`` or ``quarantined`` (with its reasons). An
operator may later ``release`` or ``discard`` a quarantined batch; nothing is ever
deleted. Watermarks advance in the same transaction as the batches they cover.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from retrainer.data.ledger_parts import SnapshotParts
from retrainer.data.snapshot import (
    SnapshotInfo,
    describe_frame,
    frame_from_parquet,
    frame_to_parquet,
)
from retrainer.data.sources import BatchRef
from retrainer.errors import ConflictError, NotFoundError
from retrainer.registry.artifacts import ArtifactStore
from retrainer.registry.audit import append_event
from retrainer.registry.db import Database, as_utc
from retrainer.registry.tables import Batch, BatchScore, Snapshot, Watermark

__all__ = ["BatchRecord", "Ledger", "ScoreRecord", "SnapshotRecord"]


@dataclass(frozen=True)
class SnapshotRecord:
    """A stored snapshot: where its rows came from and the hash of exactly those rows."""

    id: int
    kind: str
    source_uri: str
    row_count: int
    time_min: str | None
    time_max: str | None
    columns: dict[str, Any]
    content_hash: str
    artifact_sha256: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class ScoreRecord:
    """What the monitor measured for one champion version on one batch."""

    batch_id: int
    version: int
    metrics: dict[str, Any]
    labelled: int
    scored_at: datetime
    drift: dict[str, Any] | None = None
    estimated: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {**self.__dict__, "scored_at": self.scored_at.isoformat()}


@dataclass(frozen=True)
class BatchRecord:
    """A received batch and what became of it."""

    id: int
    source_uri: str
    batch_key: str
    status: str
    reasons: dict[str, Any]
    snapshot_id: int | None
    row_count: int
    received_at: datetime
    run_id: str

    @property
    def flags(self) -> list[str]:
        """What the contract flagged the batch with (``VOLUME_ANOMALY``...), else ``[]``."""
        return list(self.reasons.get("flags") or [])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {**self.__dict__, "received_at": self.received_at.isoformat()}


def _snap(row: Snapshot) -> SnapshotRecord:
    return SnapshotRecord(
        row.id,
        row.kind,
        row.source_uri,
        row.row_count,
        row.time_min,
        row.time_max,
        row.columns,
        row.content_hash,
        row.artifact_sha256,
    )


class Ledger(SnapshotParts):
    """Batches, snapshots and watermarks of one store (each method one transaction)."""

    def __init__(self, db: Database, artifacts: ArtifactStore) -> None:
        self.db = db
        self.artifacts = artifacts

    # -- snapshots --------------------------------------------------------------------

    def snapshot(
        self,
        model: str,
        kind: str,
        source_uri: str,
        frame: pd.DataFrame,
        *,
        time_column: str | None,
    ) -> SnapshotRecord:
        """Store ``frame``'s rows and record them; the same rows and kind reuse the record."""
        info = describe_frame(frame, time_column=time_column)
        return self._record(
            model, kind, source_uri, info, lambda: self.artifacts.put(frame_to_parquet(frame))
        )

    def _record(
        self,
        model: str,
        kind: str,
        source_uri: str,
        info: SnapshotInfo,
        store: Callable[[], str],
    ) -> SnapshotRecord:
        """The snapshot of ``info``'s rows: the existing record, or ``store()`` the blob
        and record it."""

        def find(s: Session) -> Snapshot | None:
            return s.scalar(
                select(Snapshot)
                .where(
                    Snapshot.model == model,
                    Snapshot.kind == kind,
                    Snapshot.content_hash == info.content_hash,
                )
                .limit(1)
            )

        existing = self.db.transaction(find)
        if existing is not None and self.artifacts.exists(existing.artifact_sha256):
            return _snap(existing)
        sha = store()

        def insert(s: Session) -> SnapshotRecord:
            row = Snapshot(
                model=model,
                kind=kind,
                source_uri=source_uri,
                row_count=info.row_count,
                time_min=info.time_min,
                time_max=info.time_max,
                columns=info.columns,
                content_hash=info.content_hash,
                artifact_sha256=sha,
                created_at=self.db.clock(),
            )
            s.add(row)
            s.flush()
            return _snap(row)

        return self.db.transaction(insert)

    def get_snapshot(self, snapshot_id: int) -> SnapshotRecord:
        """One snapshot record. Raises NotFoundError."""

        def fn(s: Session) -> SnapshotRecord:
            row = s.get(Snapshot, snapshot_id)
            if row is None:
                raise NotFoundError(f"no snapshot {snapshot_id}")
            return _snap(row)

        return self.db.transaction(fn)

    def load_frame(self, snapshot: SnapshotRecord) -> pd.DataFrame:
        """The snapshot's rows, verified against the stored hash (a snapshot in parts is
        read part by part and gathered here)."""
        data = self.artifacts.get(snapshot.artifact_sha256, what=f"snapshot {snapshot.id}")
        files = self._manifest(data, snapshot)
        if files is None:
            return frame_from_parquet(data)
        frames = [files.read(i) for i in range(len(files))]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    # -- batches and watermarks -------------------------------------------------------

    def watermark(self, model: str, source_uri: str) -> dict[str, Any] | None:
        """The source's watermark for ``model``, or None before the first batch."""
        return self.db.transaction(
            lambda s: s.scalar(
                select(Watermark.value).where(
                    Watermark.model == model, Watermark.source_uri == source_uri
                )
            )
        )

    def record_batches(
        self,
        model: str,
        run_id: str,
        received: Sequence[tuple[BatchRef, SnapshotRecord | None, dict[str, Any]]],
        *,
        watermark: dict[str, Any],
        actor: str,
    ) -> list[int]:
        """Record received batches and move the watermark past them, in one transaction.

        Each item is ``(ref, snapshot or None if unreadable, reasons)``; a batch with
        reasons starts ``quarantined``, otherwise ``pending``.
        """

        def fn(s: Session) -> list[int]:
            now = self.db.clock()
            ids = []
            for ref, snap, reasons in received:
                status = "quarantined" if reasons else "pending"
                row = Batch(
                    model=model,
                    source_uri=ref.source_uri,
                    batch_key=ref.key,
                    fingerprint=ref.fingerprint,
                    snapshot_id=snap.id if snap else None,
                    status=status,
                    reasons=reasons,
                    run_id=run_id,
                    received_at=now,
                )
                s.add(row)
                s.flush()
                ids.append(row.id)
                if reasons:
                    self._audit_quarantine(s, model, row, actor, now)
            if received:
                uri = received[0][0].source_uri
                mark = s.get(Watermark, (model, uri))
                if mark is None:
                    s.add(Watermark(model=model, source_uri=uri, value=watermark, updated_at=now))
                else:
                    mark.value, mark.updated_at = watermark, now
            return ids

        return self.db.transaction(fn)

    def batches(
        self,
        model: str,
        *,
        status: str | Iterable[str] | None = None,
        after_id: int | None = None,
        ids: Iterable[int] | None = None,
    ) -> list[BatchRecord]:
        """Batches of ``model`` (optionally by status, after a batch id, or by id), oldest first."""
        statuses = [status] if isinstance(status, str) else list(status or [])

        def fn(s: Session) -> list[BatchRecord]:
            q = select(Batch, Snapshot.row_count).outerjoin(
                Snapshot, Batch.snapshot_id == Snapshot.id
            )
            q = q.where(Batch.model == model)
            if statuses:
                q = q.where(Batch.status.in_(statuses))
            if after_id is not None:
                q = q.where(Batch.id > after_id)
            if ids is not None:
                q = q.where(Batch.id.in_(list(ids)))
            return [
                BatchRecord(
                    b.id,
                    b.source_uri,
                    b.batch_key,
                    b.status,
                    b.reasons,
                    b.snapshot_id,
                    rows or 0,
                    as_utc(b.received_at),
                    b.run_id,
                )
                for b, rows in s.execute(q.order_by(Batch.id))
            ]

        return self.db.transaction(fn)

    def time_max(self, batch: BatchRecord) -> str | None:
        """The newest time value of the batch's rows (None without a time column or rows)."""
        if batch.snapshot_id is None:
            return None
        return self.get_snapshot(batch.snapshot_id).time_max

    def batch(self, model: str, batch_id: int) -> BatchRecord:
        """One batch of ``model``. Raises NotFoundError."""
        found = self.batches(model, ids=[batch_id])
        if not found:
            raise NotFoundError(f"model {model!r} has no batch {batch_id}")
        return found[0]

    def rows_accepted_after(self, model: str, after_id: int | None) -> int:
        """Accepted rows in batches newer than ``after_id`` (all when None)."""

        def fn(s: Session) -> int:
            q = (
                select(func.coalesce(func.sum(Snapshot.row_count), 0))
                .join(Batch, Batch.snapshot_id == Snapshot.id)
                .where(Batch.model == model, Batch.status.in_(("accepted", "released")))
            )
            if after_id is not None:
                q = q.where(Batch.id > after_id)
            return int(s.scalar(q) or 0)

        return self.db.transaction(fn)

    def set_status(
        self,
        model: str,
        batch_id: int,
        status: str,
        *,
        actor: str,
        reasons: dict[str, Any] | None = None,
        expected: Sequence[str] = (),
        snapshot_id: int | None = None,
        note: str | None = None,
    ) -> BatchRecord:
        """Move a batch to ``status`` (audited). ``expected`` lists the statuses it may be in.

        ``reasons`` replaces the batch's reasons; ``snapshot_id`` points the batch at
        other rows (its deduplicated rows; the received ones stay in their snapshot);
        ``note`` is the operator's reason, recorded in the audit event.

        Raises:
            NotFoundError: the model has no such batch.
            ConflictError: the batch is not in one of the ``expected`` statuses.
        """

        def fn(s: Session) -> None:
            row = s.get(Batch, batch_id)
            if row is None or row.model != model:
                raise NotFoundError(f"model {model!r} has no batch {batch_id}")
            if expected and row.status not in expected:
                raise ConflictError(
                    f"batch {batch_id} is {row.status}; expected {' or '.join(expected)}"
                )
            now = self.db.clock()
            row.status = status
            if reasons is not None:
                row.reasons = reasons
            if snapshot_id is not None:
                row.snapshot_id = snapshot_id
            if status == "quarantined":
                self._audit_quarantine(s, model, row, actor, now)
            else:
                payload: dict[str, Any] = {"key": row.batch_key}
                if note is not None:
                    payload["reason"] = note
                if status == "accepted" and row.reasons.get("flags"):
                    payload["flags"] = row.reasons["flags"]
                append_event(
                    s,
                    at=now,
                    actor=actor,
                    action=f"batch.{status}",
                    subject=f"{model}/batch/{batch_id}",
                    payload=payload,
                )

        self.db.transaction(fn)
        return self.batch(model, batch_id)

    # -- realised performance per batch ------------------------------------------------

    def unscored(self, model: str, version: int, *, after_id: int | None) -> list[BatchRecord]:
        """Accepted batches newer than ``after_id`` that ``version`` has not been scored on."""

        def fn(s: Session) -> set[int]:
            q = select(BatchScore.batch_id).where(
                BatchScore.model == model, BatchScore.version == version
            )
            return set(s.scalars(q))

        done = self.db.transaction(fn)
        return [
            b
            for b in self.batches(model, status=("accepted", "released"), after_id=after_id)
            if b.id not in done
        ]

    def record_score(
        self,
        model: str,
        version: int,
        batch_id: int,
        metrics: dict[str, Any],
        labelled: int,
        *,
        drift: dict[str, Any] | None = None,
        estimated: dict[str, Any] | None = None,
    ) -> None:
        """Store what ``version`` measured on a batch (idempotent: the first record stays)."""

        def fn(s: Session) -> None:
            if s.get(BatchScore, (batch_id, version)) is None:
                s.add(
                    BatchScore(
                        batch_id=batch_id,
                        version=version,
                        model=model,
                        metrics=metrics,
                        labelled=labelled,
                        scored_at=self.db.clock(),
                        drift=drift,
                        estimated=estimated,
                    )
                )

        self.db.transaction(fn)

    def latest_score(self, model: str, version: int, *, after_id: int | None) -> ScoreRecord | None:
        """The newest batch scored for ``version`` (after batch ``after_id``), or None."""
        found = self.scores(model, version=version, after_id=after_id, limit=1)
        return found[0] if found else None

    def scores(
        self,
        model: str,
        *,
        version: int | None = None,
        after_id: int | None = None,
        limit: int | None = None,
    ) -> list[ScoreRecord]:
        """Scores of ``model``'s batches, newest batch first."""

        def fn(s: Session) -> list[ScoreRecord]:
            q = select(BatchScore).where(BatchScore.model == model)
            if version is not None:
                q = q.where(BatchScore.version == version)
            if after_id is not None:
                q = q.where(BatchScore.batch_id > after_id)
            q = q.order_by(BatchScore.batch_id.desc(), BatchScore.version.desc()).limit(limit)
            return [
                ScoreRecord(
                    r.batch_id,
                    r.version,
                    r.metrics,
                    r.labelled,
                    as_utc(r.scored_at),
                    r.drift,
                    r.estimated,
                )
                for r in s.scalars(q)
            ]

        return self.db.transaction(fn)

    @staticmethod
    def _audit_quarantine(s: Session, model: str, row: Batch, actor: str, now: datetime) -> None:
        append_event(
            s,
            at=now,
            actor=actor,
            action="batch.quarantine",
            subject=f"{model}/batch/{row.id}",
            payload={"key": row.batch_key, "reasons": row.reasons},
        )
