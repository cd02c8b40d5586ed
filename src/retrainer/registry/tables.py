"""SQLAlchemy 2 table models of the metadata store.

The schema is owned by the Alembic migrations in ``registry/migrations``; these classes
must match them (a test compares the two). Timestamps are timezone-aware UTC, written
by the store (never by callers), through :class:`UTCDateTime` so that they mean the
same instant on every dialect. JSON payloads use SQLAlchemy's portable ``JSON`` type.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Alias",
    "AliasHistory",
    "Approval",
    "AuditEvent",
    "Base",
    "Batch",
    "BatchScore",
    "Label",
    "Lease",
    "ModelVersion",
    "Prediction",
    "Rollout",
    "RolloutStat",
    "Run",
    "RunStep",
    "Snapshot",
    "Token",
    "UTCDateTime",
    "Watermark",
]

ID = BigInteger().with_variant(Integer, "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime stored as the same instant on every dialect; read back as UTC.

    PostgreSQL keeps the instant (``timestamptz``); SQLite has no time zones and
    SQLAlchemy's ``DateTime`` there drops the offset, keeping the local wall time. So
    values are converted to UTC before they are written (naive UTC text on SQLite),
    and every value read is aware UTC. Naive values are refused (ValueError): their
    instant is unknown. Comparisons in queries go through the same conversion.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"expected a timezone-aware datetime for the store, got naive {value!r}"
            )
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:  # SQLite: written as naive UTC above
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, datetime: UTCDateTime()}


class Snapshot(Base):
    """The exact rows a batch, a training set or a holdout consisted of."""

    __tablename__ = "snapshots"
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # batch | train | holdout
    source_uri: Mapped[str] = mapped_column(Text)
    row_count: Mapped[int] = mapped_column(Integer)
    time_min: Mapped[str | None] = mapped_column(String(40))
    time_max: Mapped[str | None] = mapped_column(String(40))
    columns: Mapped[dict[str, Any]]
    content_hash: Mapped[str] = mapped_column(String(64))
    artifact_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    purged_at: Mapped[datetime | None]  # rows deleted by retention; the record stays
    __table_args__ = (Index("ix_snapshots_model_hash", "model", "content_hash"),)


class Batch(Base):
    """One unit of new data from a source, and what became of it."""

    __tablename__ = "batches"
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(64))
    source_uri: Mapped[str] = mapped_column(Text)
    batch_key: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    snapshot_id: Mapped[int | None] = mapped_column(ForeignKey("snapshots.id"))
    status: Mapped[str] = mapped_column(
        String(16)
    )  # pending|accepted|quarantined|released|discarded|purged
    reasons: Mapped[dict[str, Any]]
    run_id: Mapped[str] = mapped_column(String(36))
    received_at: Mapped[datetime]
    __table_args__ = (Index("ix_batches_model_status", "model", "status"),)


class BatchScore(Base):
    """A version's realised metrics on one labelled batch (scored once per version)."""

    __tablename__ = "batch_scores"
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(64))
    metrics: Mapped[dict[str, Any]]
    labelled: Mapped[int] = mapped_column(Integer)
    scored_at: Mapped[datetime]
    drift: Mapped[dict[str, Any] | None]
    estimated: Mapped[dict[str, Any] | None]


class Watermark(Base):
    """How far a model's source has been read."""

    __tablename__ = "watermarks"
    model: Mapped[str] = mapped_column(String(64), primary_key=True)
    source_uri: Mapped[str] = mapped_column(String(512), primary_key=True)
    value: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]


class Run(Base):
    """One cycle of the loop for one model."""

    __tablename__ = "runs"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    model: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # running|succeeded|failed|skipped
    actor: Mapped[str] = mapped_column(String(128))
    trigger: Mapped[dict[str, Any]]
    idempotency_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    outcome: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    __table_args__ = (Index("ix_runs_model_status", "model", "status"),)


class RunStep(Base):
    """The journal of a run: one row per finished (or failed) step, with its output."""

    __tablename__ = "run_steps"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # done | failed
    output: Mapped[dict[str, Any]]
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime]


class ModelVersion(Base):
    """An immutable trained artifact and everything known about it."""

    __tablename__ = "model_versions"
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # PENDING|READY|FAILED|QUARANTINED|PURGED
    artifact_sha256: Mapped[str | None] = mapped_column(String(64))
    run_id: Mapped[str | None] = mapped_column(String(36))
    created_by: Mapped[str] = mapped_column(String(128))
    params: Mapped[dict[str, Any]]
    metrics: Mapped[dict[str, Any]]
    lineage: Mapped[dict[str, Any]]
    decision: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    __table_args__ = (UniqueConstraint("model", "version", name="uq_model_versions_version"),)


class Alias(Base):
    """A movable name (``champion``...) pointing at one version; ``epoch`` counts moves."""

    __tablename__ = "aliases"
    model: Mapped[str] = mapped_column(String(64), primary_key=True)
    alias: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    epoch: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime]


class AliasHistory(Base):
    """Every move of every alias, in order."""

    __tablename__ = "alias_history"
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(64))
    alias: Mapped[str] = mapped_column(String(32))
    from_version: Mapped[int | None] = mapped_column(Integer)
    to_version: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime]
    __table_args__ = (Index("ix_alias_history_model_alias", "model", "alias"),)


class AuditEvent(Base):
    """Append-only, hash-chained record of a state change (UPDATE/DELETE refused by trigger)."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(256))
    payload: Mapped[dict[str, Any]]
    payload_hash: Mapped[str] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class Lease(Base):
    """A named lease (``cycle:rain``) with a fencing token that grows on every take-over."""

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    holder: Mapped[str] = mapped_column(String(256))
    token: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime]


class Prediction(Base):
    """One logged prediction of a model version (``prediction_id`` is unique per model).

    ``score`` is the positive-class probability of a binary classifier or the value of a
    regressor; ``label`` the predicted class as text; ``probabilities`` the class
    probabilities of a multiclass classifier (``{class: p}``). ``predicted_at`` is when
    the prediction was served.
    """

    __tablename__ = "predictions"
    model: Mapped[str] = mapped_column(String(64), primary_key=True)
    prediction_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    predicted_at: Mapped[datetime]
    score: Mapped[float | None] = mapped_column(Double)
    label: Mapped[str | None] = mapped_column(String(256))
    probabilities: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    __table_args__ = (Index("ix_predictions_model_predicted_at", "model", "predicted_at"),)


class Label(Base):
    """The true label (a JSON scalar) of one prediction id; it may arrive before the prediction."""

    __tablename__ = "labels"
    model: Mapped[str] = mapped_column(String(64), primary_key=True)
    prediction_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    label: Mapped[Any] = mapped_column(JSON, nullable=False)
    arrived_at: Mapped[datetime]


class Rollout(Base):
    """One staged rollout (shadow or canary) of a candidate against the champion.

    ``active_model`` is the model name while the rollout is ``active`` and NULL after,
    so its unique constraint allows at most one active rollout per model. ``plan`` is the
    spec's strategy section frozen at the start; ``epoch`` counts transitions (CAS).
    """

    __tablename__ = "rollouts"
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(64))
    candidate: Mapped[int] = mapped_column(Integer)
    baseline: Mapped[int | None] = mapped_column(Integer)
    strategy: Mapped[str] = mapped_column(String(16))  # shadow | canary
    plan: Mapped[dict[str, Any]]
    step: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))  # active|promoted|rolled_back|aborted
    active_model: Mapped[str | None] = mapped_column(String(64), unique=True)
    epoch: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime]
    step_started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    __table_args__ = (Index("ix_rollouts_model", "model"),)


class RolloutStat(Base):
    """Traffic of one version during one step of a rollout, added to in batches.

    ``latency`` and ``predictions`` are sparse histograms (bucket key -> count).
    """

    __tablename__ = "rollout_stats"
    rollout_id: Mapped[int] = mapped_column(ForeignKey("rollouts.id"), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger)
    errors: Mapped[int] = mapped_column(BigInteger)
    latency: Mapped[dict[str, Any]]
    predictions: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]


class Token(Base):
    """An API token: who it speaks for, with which role; the secret only as a KDF hash."""

    __tablename__ = "tokens"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    actor: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(256))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class Approval(Base):
    """One approve or reject of a version, bound to its artifact and decision record."""

    __tablename__ = "approvals"
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    decision: Mapped[str] = mapped_column(String(8))  # approve | reject
    comment: Mapped[str] = mapped_column(Text)
    artifact_sha256: Mapped[str] = mapped_column(String(64))
    decision_sha256: Mapped[str] = mapped_column(String(64))
    override: Mapped[bool]
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    __table_args__ = (Index("ix_approvals_model_version", "model", "version"),)
