"""Config changes in the audit trail: a cycle that runs on a spec whose hash differs
from the last one recorded appends ``spec.changed`` (old and new hash, who ran it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from retrainer.registry.audit import append_event
from retrainer.registry.tables import AuditEvent
from retrainer.spec import spec_hash

if TYPE_CHECKING:
    from retrainer.workspace import Workspace

__all__ = ["record_spec_change"]


def record_spec_change(ws: Workspace, *, actor: str) -> bool:
    """Append ``spec.changed`` when the spec's hash is new for this model; True if it was."""
    model = ws.spec.model.name
    subject = f"spec:{model}"
    current = spec_hash(ws.spec)

    def fn(s: Session) -> bool:
        last = s.scalar(
            select(AuditEvent)
            .where(AuditEvent.subject == subject, AuditEvent.action == "spec.changed")
            .order_by(AuditEvent.id.desc())
            .limit(1)
        )
        before = None if last is None else last.payload.get("spec_sha256")
        if before == current:
            return False
        append_event(
            s,
            at=ws.db.clock(),
            actor=actor,
            action="spec.changed",
            subject=subject,
            payload={"spec_sha256": current, "previous": before, "path": ws.spec_path.name},
        )
        return True

    return ws.db.transaction(fn)
