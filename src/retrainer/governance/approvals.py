"""Approvals: who let a candidate become champion, bound to exactly what they saw.

A candidate needs approval when ``approval.mode`` is ``manual``, when ``auto_if`` finds
it outside the change envelope, or when it was trained on data flagged as anomalous.
An approval or rejection is a row in ``approvals`` plus an audit event, bound to the
version's artifact sha256 and the sha256 of its decision record at that moment: if
either changes, the approval is void. Separation of duties: whoever triggered or
trained a version cannot approve it (an admin may override, with a justification, and
the override is flagged). ``quorum`` distinct approvers are needed; an approval older
than ``expires`` no longer counts; one rejection stops the candidate.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from retrainer.errors import ConflictError, ForbiddenError, PolicyError, SpecError
from retrainer.governance.envelope import held_by_flags, needs_person
from retrainer.governance.identity import Actor, require
from retrainer.registry.audit import append_event
from retrainer.registry.db import as_utc
from retrainer.registry.registry import CHAMPION
from retrainer.registry.tables import Approval, ModelVersion, Run

if TYPE_CHECKING:
    from retrainer.workspace import Workspace

__all__ = [
    "ApprovalRecord",
    "ApprovalStatus",
    "approval_check",
    "decision_sha256",
    "pending",
    "record_decision",
    "status",
]

Decision = Literal["approve", "reject"]
MIN_OVERRIDE_COMMENT = 20


def decision_sha256(decision: dict[str, Any]) -> str:
    """The sha256 of a decision record's canonical JSON."""
    canonical = json.dumps(decision, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class ApprovalRecord:
    """One stored approve or reject."""

    id: int
    model: str
    version: int
    actor: str
    role: str
    decision: str
    comment: str
    artifact_sha256: str
    decision_sha256: str
    override: bool
    created_at: datetime
    expires_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in self.__dict__.items()
        }


def _record(row: Approval) -> ApprovalRecord:
    return ApprovalRecord(
        row.id,
        row.model,
        row.version,
        row.actor,
        row.role,
        row.decision,
        row.comment,
        row.artifact_sha256,
        row.decision_sha256,
        row.override,
        as_utc(row.created_at),
        None if row.expires_at is None else as_utc(row.expires_at),
    )


@dataclass(frozen=True)
class ApprovalStatus:
    """Where a version stands: ``not_required``, ``pending``, ``approved`` or ``rejected``.

    ``needs`` says why a person is needed; ``valid`` are the approvals that count now;
    ``void`` the ones that no longer do, each with why.
    """

    model: str
    version: int
    state: str
    quorum: int
    needs: tuple[str, ...] = ()
    valid: tuple[ApprovalRecord, ...] = ()
    void: tuple[tuple[ApprovalRecord, str], ...] = ()
    rejected_by: ApprovalRecord | None = None
    responsible: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "model": self.model,
            "version": self.version,
            "state": self.state,
            "quorum": self.quorum,
            "approvals": len(self.valid),
            "needs": list(self.needs),
            "valid": [a.to_dict() for a in self.valid],
            "void": [{**a.to_dict(), "why_void": why} for a, why in self.void],
            "rejected_by": None if self.rejected_by is None else self.rejected_by.to_dict(),
            "responsible": list(self.responsible),
        }


def _responsible(s: Session, row: ModelVersion) -> tuple[str, ...]:
    names = {row.created_by}
    if row.run_id is not None:
        run = s.get(Run, row.run_id)
        if run is not None:
            names.add(run.actor)
    return tuple(sorted(names))


def _judge(
    rows: list[Approval], version: ModelVersion, responsible: tuple[str, ...], now: datetime
) -> tuple[list[ApprovalRecord], list[tuple[ApprovalRecord, str]], ApprovalRecord | None]:
    """(valid approvals, void ones with why, the first standing rejection)."""
    sha = version.artifact_sha256
    dsha = decision_sha256(version.decision)
    valid: list[ApprovalRecord] = []
    void: list[tuple[ApprovalRecord, str]] = []
    rejected: ApprovalRecord | None = None
    seen: set[str] = set()
    for row in sorted(rows, key=lambda r: r.id):
        rec = _record(row)
        why = ""
        if rec.artifact_sha256 != sha:
            why = "the artifact changed since (sha256 differs)"
        elif rec.decision_sha256 != dsha:
            why = "the decision record changed since"
        elif rec.decision == "approve" and rec.expires_at is not None and rec.expires_at <= now:
            why = "expired"
        elif rec.actor in responsible and not rec.override:
            why = "separation of duties: the approver triggered or trained it"
        if why:
            void.append((rec, why))
        elif rec.decision == "reject":
            rejected = rejected or rec
        elif rec.actor not in seen:
            seen.add(rec.actor)
            valid.append(rec)
    return valid, void, rejected


def status(
    ws: Workspace, model: str, version: int, *, needs: list[str] | None = None
) -> ApprovalStatus:
    """Where ``model:version`` stands. ``needs`` (why a person is needed) is computed from
    the spec when not given."""
    reg = ws.registry
    info = reg.get(model, version)
    if needs is None:
        champion_v = reg.get_alias(model, CHAMPION)
        champion = None if champion_v in (None, version) else reg.get(model, champion_v)
        needs = needs_person(
            ws.spec, info, champion, held_by_flags(info.lineage.get("data_flags", {}))
        )
    quorum = ws.spec.approval.quorum

    def fn(s: Session) -> ApprovalStatus:
        row = s.scalar(
            select(ModelVersion).where(ModelVersion.model == model, ModelVersion.version == version)
        )
        assert row is not None
        rows = list(
            s.scalars(select(Approval).where(Approval.model == model, Approval.version == version))
        )
        responsible = _responsible(s, row)
        valid, void, rejected = _judge(rows, row, responsible, ws.db.clock())
        if rejected is not None:
            state = "rejected"
        elif not needs:
            state = "not_required"
        elif len(valid) >= quorum:
            state = "approved"
        else:
            state = "pending"
        return ApprovalStatus(
            model,
            version,
            state,
            quorum,
            tuple(needs),
            tuple(valid),
            tuple(void),
            rejected,
            responsible,
        )

    return ws.db.transaction(fn)


def approval_check(ws: Workspace, needs: list[str]) -> Callable[[Session, ModelVersion], None]:
    """A check for :meth:`Registry.move_alias`, run inside the promotion's transaction:
    with ``needs`` non-empty, ``quorum`` valid approvals and no rejection are required."""
    quorum = ws.spec.approval.quorum

    def check(s: Session, row: ModelVersion) -> None:
        if not needs:
            return
        rows = list(
            s.scalars(
                select(Approval).where(Approval.model == row.model, Approval.version == row.version)
            )
        )
        valid, void, rejected = _judge(rows, row, _responsible(s, row), ws.db.clock())
        if rejected is not None:
            raise PolicyError(
                f"{row.model}:{row.version} was rejected by {rejected.actor}: {rejected.comment}"
            )
        if len(valid) < quorum:
            voided = "".join(f"; void: {a.actor} ({why})" for a, why in void)
            raise PolicyError(
                f"{row.model}:{row.version} needs {quorum} approval(s) ({'; '.join(needs)}), "
                f"has {len(valid)}{voided}; see 'retrainer approvals list'"
            )

    return check


def record_decision(
    ws: Workspace,
    actor: Actor,
    model: str,
    version: int,
    decision: Decision,
    comment: str,
    *,
    override: bool = False,
) -> ApprovalStatus:
    """Approve or reject ``model:version`` as ``actor``; returns the version's new status.

    Refusals (audited as ``approval.denied``): ForbiddenError for separation of duties
    (checked first: it is the more specific reason) or a role that may not approve;
    PolicyError when the version needs no approval or cannot be promoted; ConflictError
    when the same actor already decided on the same artifact and decision record.
    """
    comment = comment.strip()
    if not comment:
        raise SpecError("--comment: expected a non-empty comment saying why")
    current = status(ws, model, version)
    try:
        _may_decide(ws, actor, current, decision, comment, override)
    except (ForbiddenError, PolicyError) as exc:
        _audit_denied(ws, actor, model, version, decision, exc)
        raise
    info = ws.registry.get(model, version)
    expires = ws.spec.approval.expires

    def fn(s: Session) -> None:
        now = ws.db.clock()
        mine = s.scalars(
            select(Approval).where(
                Approval.model == model, Approval.version == version, Approval.actor == actor.name
            )
        ).all()
        dsha = decision_sha256(info.decision)
        for row in mine:
            if row.artifact_sha256 == info.artifact_sha256 and row.decision_sha256 == dsha:
                fresh = row.expires_at is None or as_utc(row.expires_at) > now
                if fresh or row.decision == "reject":
                    raise ConflictError(
                        f"{actor.name} already {row.decision}d {model}:{version} "
                        f"at {as_utc(row.created_at).isoformat()[:19]}"
                    )
        until = None if expires is None or decision == "reject" else now + expires
        s.add(
            Approval(
                model=model,
                version=version,
                actor=actor.name,
                role=actor.role,
                decision=decision,
                comment=comment,
                artifact_sha256=info.artifact_sha256 or "",
                decision_sha256=dsha,
                override=override,
                created_at=now,
                expires_at=until,
            )
        )
        append_event(
            s,
            at=now,
            actor=actor.name,
            action=f"approval.{decision}",
            subject=f"{model}:{version}",
            payload={
                "comment": comment,
                "role": actor.role,
                "via": actor.via,
                "sha256": info.artifact_sha256,
                "decision_sha256": dsha,
                "override": override,
                "expires_at": None if until is None else until.isoformat(),
            },
        )

    ws.db.transaction(fn)
    return status(ws, model, version)


def _may_decide(
    ws: Workspace,
    actor: Actor,
    current: ApprovalStatus,
    decision: Decision,
    comment: str,
    override: bool,
) -> None:
    name = f"{current.model}:{current.version}"
    if override:
        require(actor, "admin", "an override of separation of duties")
        if len(comment) < MIN_OVERRIDE_COMMENT:
            raise PolicyError(
                f"--comment: an override needs a justification of at least "
                f"{MIN_OVERRIDE_COMMENT} characters"
            )
    elif actor.name in current.responsible:
        raise ForbiddenError(
            f"separation of duties: {actor.name} triggered or trained {name} "
            f"(responsible: {', '.join(current.responsible)}); someone else must "
            f"{decision} it"
        )
    require(actor, "approve", f"to {decision} a version")
    if ws.spec.approval.approvers_role == "admin" and actor.role != "admin":
        raise ForbiddenError(
            f"{actor.name} has the role {actor.role!r}; approval.approvers_role says only "
            "admins approve"
        )
    info = ws.registry.get(current.model, current.version)
    if info.status != "READY" or not info.gates_passed:
        raise PolicyError(
            f"{name} is {info.status}"
            + ("" if info.gates_passed else " and did not pass its gates")
            + "; only a READY version whose gates passed can be approved"
        )
    if CHAMPION in info.aliases:
        raise PolicyError(f"{name} is already the champion")
    if current.state == "not_required":
        raise PolicyError(
            f"{name} needs no approval (approval.mode is {ws.spec.approval.mode}); "
            "it is released by the cycle"
        )
    if current.state == "rejected":
        assert current.rejected_by is not None
        raise PolicyError(f"{name} was rejected by {current.rejected_by.actor}")


def _audit_denied(
    ws: Workspace, actor: Actor, model: str, version: int, decision: str, exc: Exception
) -> None:
    def fn(s: Session) -> None:
        append_event(
            s,
            at=ws.db.clock(),
            actor=actor.name,
            action="approval.denied",
            subject=f"{model}:{version}",
            payload={
                "decision": decision,
                "role": actor.role,
                "via": actor.via,
                "reason": str(exc),
            },
        )

    ws.db.transaction(fn)


def pending(ws: Workspace, model: str) -> list[ApprovalStatus]:
    """Versions of ``model`` waiting for a person: READY, gates passed, newer than the
    champion, needing approval, not rejected. Newest first."""
    reg = ws.registry
    champion = reg.get_alias(model, CHAMPION)
    out = []
    for v in reg.versions(model):
        if (
            v.status != "READY"
            or not v.gates_passed
            or (champion is not None and v.version <= champion)
        ):
            continue
        st = status(ws, model, v.version)
        if st.state in ("pending", "approved"):
            out.append(st)
    return out
