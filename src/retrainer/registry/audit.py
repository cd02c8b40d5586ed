"""The audit chain: append-only events, each hashed together with the previous one.

``append_event`` is called inside the transaction that makes the state change it
records, so the change and its audit row commit together or not at all. Appends are
serialised (``BEGIN IMMEDIATE`` on SQLite, a table lock on PostgreSQL), so the chain
never forks. The database refuses UPDATE and DELETE on the table (migration 0001).
``verify_chain`` recomputes every link and names the first broken one.

Times are hashed as their UTC instant (``as_utc(at).isoformat()``), which is exactly
what the store gives back (:class:`~retrainer.registry.tables.UTCDateTime`), so the
chain verifies whatever the offset of the clock that wrote it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from retrainer.registry.db import as_utc
from retrainer.registry.tables import AuditEvent

__all__ = ["GENESIS", "ChainReport", "append_event", "event_hash", "list_events", "verify_chain"]

GENESIS = "0" * 64
"""The ``prev_hash`` of the first event."""


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()


def event_hash(
    *, prev_hash: str, at: datetime, actor: str, action: str, subject: str, payload_hash: str
) -> str:
    """The hash of one link: everything about the event, and the hash before it."""
    body = [prev_hash, as_utc(at).isoformat(), actor, action, subject, payload_hash]
    return hashlib.sha256(_canonical(body)).hexdigest()


def append_event(
    session: Session,
    *,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    payload: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """Append one event in the caller's transaction and return it (flushed, with its id).

    ``at`` must be timezone-aware (ValueError otherwise); it is stored and hashed as UTC.
    """
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"audit event time must be timezone-aware, got naive {at!r}")
    at = as_utc(at)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("LOCK TABLE audit_events IN SHARE ROW EXCLUSIVE MODE"))
    prev = session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1))
    body = dict(payload or {})
    payload_hash = hashlib.sha256(_canonical(body)).hexdigest()
    prev_hash = prev or GENESIS
    event = AuditEvent(
        at=at,
        actor=actor,
        action=action,
        subject=subject,
        payload=body,
        payload_hash=payload_hash,
        prev_hash=prev_hash,
        hash=event_hash(
            prev_hash=prev_hash,
            at=at,
            actor=actor,
            action=action,
            subject=subject,
            payload_hash=payload_hash,
        ),
    )
    session.add(event)
    session.flush()
    return event


@dataclass(frozen=True)
class ChainReport:
    """The result of verifying the chain: ``ok``, how many events, the first bad one."""

    ok: bool
    events: int
    head: str
    first_broken_id: int | None = None
    problem: str | None = None


def verify_chain(session: Session) -> ChainReport:
    """Recompute every payload hash and link; stop at the first broken one."""
    prev = GENESIS
    count = 0
    for ev in session.scalars(select(AuditEvent).order_by(AuditEvent.id)):
        count += 1
        if ev.prev_hash != prev:
            return ChainReport(
                False, count, prev, ev.id, "prev_hash does not match the event before"
            )
        if hashlib.sha256(_canonical(ev.payload)).hexdigest() != ev.payload_hash:
            return ChainReport(False, count, prev, ev.id, "payload does not match its hash")
        expected = event_hash(
            prev_hash=ev.prev_hash,
            at=ev.at,
            actor=ev.actor,
            action=ev.action,
            subject=ev.subject,
            payload_hash=ev.payload_hash,
        )
        if expected != ev.hash:
            return ChainReport(False, count, prev, ev.id, "event fields do not match its hash")
        prev = ev.hash
    return ChainReport(True, count, prev)


def list_events(
    session: Session, *, limit: int = 50, subject_prefix: str | None = None
) -> list[AuditEvent]:
    """The newest ``limit`` events (optionally whose subject starts with a prefix), oldest first."""
    q = select(AuditEvent)
    if subject_prefix:
        q = q.where(AuditEvent.subject.startswith(subject_prefix, autoescape=True))
    rows = list(session.scalars(q.order_by(AuditEvent.id.desc()).limit(limit)))
    return rows[::-1]
