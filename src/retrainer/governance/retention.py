"""Retention: delete stored data past its period, keep what must be kept, audit both.

``plan(ws)`` is a dry run: it reads the store, the artifact store and the Parquet
prediction log and says what is due (kind, subject, age, size, content hash, why) and
what is kept although old, and why (champion, previous champion, an alias, a legal
hold, the newest ``keep_versions``, the documentation window, training data of a kept
version). It writes nothing.

``apply(ws, plan, actor)`` deletes what a *fresh* plan says is due and the confirmed
plan listed (an item the fresh plan no longer has, or has changed, is skipped and
reported; an item newly due waits for the next plan). It holds the model's cycle
lease, so no cycle runs meanwhile. Before deleting anything it seals the audit chain:
a ``retention.seal`` event records the head of the segment so far, and the head is
exported to ``audit.anchor`` when the spec names one. Then, item by item, a
``retention.delete`` event (kind, hash, size, reason, blobs) is appended in the
transaction that marks the records purged, and the bytes are deleted; a
``retention.apply`` event sums it up. The audit log itself is never deleted, so the
chain still verifies. Running it again deletes nothing new and writes nothing.

A failure midway stops at that item: the items before it are deleted and audited, a
``retention.failed`` event names the item and the error, the rest are untouched, and
:class:`RetentionIncomplete` is raised. If the failure came after the item's event
(deleting a blob), the next plan lists the item again to finish it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from retrainer.deploy.predlog import LOG_DIR
from retrainer.errors import RetrainerError, SpecError
from retrainer.governance.anchor import export_anchor
from retrainer.governance.retention_items import KINDS, KeptItem, RetentionItem, fmt_bytes
from retrainer.governance.retention_logs import (
    apply_log_item,
    apply_prediction_item,
    log_items,
    prediction_items,
)
from retrainer.governance.retention_store import Changed, apply_store_item, scan_store
from retrainer.orchestrate.lease import new_holder_id
from retrainer.registry.audit import GENESIS, append_event
from retrainer.registry.db import as_utc
from retrainer.registry.promotion import previous_champion
from retrainer.registry.tables import AuditEvent, ModelVersion

if TYPE_CHECKING:
    from retrainer.workspace import Workspace

__all__ = [
    "ApplyResult",
    "KeptItem",
    "RetentionIncomplete",
    "RetentionItem",
    "RetentionPlan",
    "apply",
    "plan",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetentionPlan:
    """What retention would delete now, and what it keeps although old.

    Attributes:
        model: The workspace's model.
        now: The instant the plan was made for.
        policy: The spec's ``retention`` section.
        items: What is due, in the order ``apply`` deletes it.
        kept: What is kept, and why.
        warnings: Things the operator should know (a legal hold naming no version...).
    """

    model: str
    now: datetime
    policy: dict[str, Any]
    items: tuple[RetentionItem, ...]
    kept: tuple[KeptItem, ...]
    warnings: tuple[str, ...] = ()

    @property
    def total_bytes(self) -> int:
        """Bytes the plan deletes."""
        return sum(i.size for i in self.items)

    def by_kind(self) -> dict[str, dict[str, int]]:
        """``{kind: {"items": n, "bytes": b}}`` for the kinds with items."""
        out: dict[str, dict[str, int]] = {}
        for item in self.items:
            entry = out.setdefault(item.kind, {"items": 0, "bytes": 0})
            entry["items"] += 1
            entry["bytes"] += item.size
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "model": self.model,
            "now": self.now.isoformat(),
            "policy": self.policy,
            "items": [i.to_dict() for i in self.items],
            "kept": [k.to_dict() for k in self.kept],
            "warnings": list(self.warnings),
            "total_bytes": self.total_bytes,
            "by_kind": self.by_kind(),
        }


@dataclass(frozen=True)
class ApplyResult:
    """What ``apply`` did: the seal, each deleted item with its event, what it skipped."""

    model: str
    seal_event: int | None
    summary_event: int | None
    deleted: tuple[tuple[RetentionItem, int], ...]
    skipped: tuple[tuple[str, str], ...]
    failed: tuple[str, str] | None = None

    @property
    def bytes_deleted(self) -> int:
        """Bytes of the items deleted."""
        return sum(item.size for item, _ in self.deleted)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "model": self.model,
            "seal_event": self.seal_event,
            "summary_event": self.summary_event,
            "deleted": [{**item.to_dict(), "event": event} for item, event in self.deleted],
            "skipped": [{"subject": s, "why": why} for s, why in self.skipped],
            "failed": None
            if self.failed is None
            else {"subject": self.failed[0], "error": self.failed[1]},
            "bytes_deleted": self.bytes_deleted,
        }


class RetentionIncomplete(RetrainerError):
    """``apply`` stopped at an item that failed; ``result`` says what was done."""

    code = "RETENTION_INCOMPLETE"
    exit_code = 7

    def __init__(self, message: str, result: ApplyResult) -> None:
        super().__init__(message)
        self.result = result


def _log_root(ws: Workspace, log_dir: Path | None) -> Path:
    return log_dir if log_dir is not None else ws.root / LOG_DIR


def plan(
    ws: Workspace, now: datetime | None = None, *, log_dir: Path | None = None
) -> RetentionPlan:
    """What retention would delete at ``now`` (default: the store's clock). Writes nothing.

    Args:
        ws: The workspace; its spec's ``retention`` section is the policy.
        now: The instant to plan for (timezone-aware).
        log_dir: The server's prediction log folder, if not the default
            ``<workspace>/.retrainer/predictions``.
    """
    now = as_utc(now if now is not None else ws.db.clock())
    model, policy = ws.spec.model.name, ws.spec.retention
    items, kept = scan_store(ws, now, previous=previous_champion(ws.registry, model))
    if policy.predictions is not None:
        hold = policy.legal_hold
        more, held = prediction_items(ws, now, policy.predictions, hold)
        items, kept = items + more, kept + held
        more, held = log_items(_log_root(ws, log_dir), model, now, policy.predictions, hold)
        items, kept = items + more, kept + held
    items.sort(key=lambda i: (KINDS.index(i.kind), i.since, i.subject))
    return RetentionPlan(
        model,
        now,
        policy.model_dump(mode="json"),
        tuple(items),
        tuple(kept),
        tuple(_warnings(ws)),
    )


def _warnings(ws: Workspace) -> list[str]:
    policy, model = ws.spec.retention, ws.spec.model.name
    out = []
    window = ws.spec.data.window.last
    if policy.raw_batches is not None and window is not None and policy.raw_batches < window:
        out.append(
            f"retention.raw_batches ({policy.raw_batches.days}d) is shorter than "
            f"data.window.last ({window.days}d): retraining will see less than its window"
        )
    if policy.legal_hold:

        def known(s: Session) -> set[int]:
            q = select(ModelVersion.version).where(
                ModelVersion.model == model, ModelVersion.version.in_(policy.legal_hold)
            )
            return set(s.scalars(q))

        missing = sorted(set(policy.legal_hold) - ws.db.transaction(known))
        if missing:
            names = ", ".join(f"v{v}" for v in missing)
            out.append(f"retention.legal_hold names {names}, which {model} does not have")
    return out


def apply(
    ws: Workspace, confirmed: RetentionPlan, actor: str, *, log_dir: Path | None = None
) -> ApplyResult:
    """Delete what a fresh plan says is due and ``confirmed`` listed; audit each deletion.

    Idempotent: when nothing is due, nothing is written.

    Raises:
        SpecError: ``confirmed`` is a plan for another model.
        LeaseHeldError: a cycle of the model is running (nothing was done).
        RetentionIncomplete: an item failed; the result lists what was deleted.
    """
    model = ws.spec.model.name
    if confirmed.model != model:
        raise SpecError(f"the plan is for model {confirmed.model!r}, this workspace's is {model!r}")
    holder, lease = new_holder_id(), f"cycle:{model}"
    token = ws.leases.acquire(lease, holder)
    try:
        fresh = plan(ws, log_dir=log_dir)
        wanted = {i.key for i in confirmed.items}
        todo = [i for i in fresh.items if i.key in wanted]
        skipped = _skipped(confirmed, fresh)
        if not todo:
            return ApplyResult(model, None, None, (), tuple(skipped))
        seal = _seal(ws, actor, fresh, todo)
        try:
            if ws.anchor_uri is not None:
                export_anchor(ws.db, ws.anchor_uri)  # the sealed head, before any deletion
        except Exception as exc:
            raise RetentionIncomplete(
                f"could not export the sealed head to the audit anchor {ws.anchor_uri}: "
                f"{type(exc).__name__}: {exc}; nothing was deleted",
                ApplyResult(model, seal, None, (), tuple(skipped)),
            ) from exc
        deleted: list[tuple[RetentionItem, int]] = []
        failed: tuple[str, str] | None = None
        for item in todo:
            try:
                deleted.append((item, _apply_one(ws, item, actor)))
            except Changed as exc:
                skipped.append((item.subject, str(exc)))
            except Exception as exc:  # noqa: BLE001 - recorded, then raised as RetentionIncomplete
                failed = (item.subject, f"{type(exc).__name__}: {exc}")
                _audit_failure(ws, actor, item, failed[1])
                break
            ws.leases.renew(lease, holder, token)
        summary = _summary(ws, actor, seal, deleted, skipped, failed)
    finally:
        ws.leases.release(lease, holder, token)
    result = ApplyResult(model, seal, summary, tuple(deleted), tuple(skipped), failed)
    if failed is not None:
        raise RetentionIncomplete(
            f"retention stopped at {failed[0]}: {failed[1]}; {len(deleted)} item(s) were "
            "deleted and audited, the rest are untouched; fix the cause and run it again",
            result,
        )
    return result


def _skipped(confirmed: RetentionPlan, fresh: RetentionPlan) -> list[tuple[str, str]]:
    fresh_keys = {i.key for i in fresh.items}
    wanted = {i.key for i in confirmed.items}
    why_kept = {k.subject: "; ".join(k.reasons) for k in fresh.kept}
    out = [
        (i.subject, "no longer due: " + why_kept.get(i.subject, "changed since the plan"))
        for i in confirmed.items
        if i.key not in fresh_keys
    ]
    out += [
        (i.subject, "due since the plan was made, not in the confirmed plan: run it again")
        for i in fresh.items
        if i.key not in wanted
    ]
    return out


def _apply_one(ws: Workspace, item: RetentionItem, actor: str) -> int:
    if item.kind == "predictions":
        return apply_prediction_item(ws, item, actor=actor)
    if item.kind == "prediction_log":
        return apply_log_item(ws, item, actor=actor)
    return apply_store_item(ws, item, actor=actor)


def _seal(ws: Workspace, actor: str, fresh: RetentionPlan, todo: list[RetentionItem]) -> int:
    """Append ``retention.seal``: the head of the chain so far, and the policy."""

    def fn(s: Session) -> int:
        head = s.execute(
            select(AuditEvent.id, AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)
        ).first()
        count = int(s.scalar(select(func.count()).select_from(AuditEvent)) or 0)
        event = append_event(
            s,
            at=ws.db.clock(),
            actor=actor,
            action="retention.seal",
            subject=f"{fresh.model}/retention",
            payload={
                "head_event": None if head is None else head[0],
                "head": GENESIS if head is None else head[1],
                "events": count,
                "items": len(todo),
                "bytes": sum(i.size for i in todo),
                "policy": fresh.policy,
            },
        )
        return event.id

    return ws.db.transaction(fn)


def _audit_failure(ws: Workspace, actor: str, item: RetentionItem, error: str) -> None:
    def fn(s: Session) -> None:
        append_event(
            s,
            at=ws.db.clock(),
            actor=actor,
            action="retention.failed",
            subject=item.subject,
            payload={"kind": item.kind, "sha256": item.sha256, "error": error},
        )

    try:
        ws.db.transaction(fn)
    except Exception:  # the store itself may be what failed; the caller still raises
        log.exception("could not audit the failed deletion of %s", item.subject)


def _summary(
    ws: Workspace,
    actor: str,
    seal: int,
    deleted: list[tuple[RetentionItem, int]],
    skipped: list[tuple[str, str]],
    failed: tuple[str, str] | None,
) -> int:
    by_kind: dict[str, dict[str, int]] = {}
    for item, _ in deleted:
        entry = by_kind.setdefault(item.kind, {"items": 0, "bytes": 0})
        entry["items"] += 1
        entry["bytes"] += item.size

    def fn(s: Session) -> int:
        event = append_event(
            s,
            at=ws.db.clock(),
            actor=actor,
            action="retention.apply",
            subject=f"{ws.spec.model.name}/retention",
            payload={
                "seal_event": seal,
                "deleted": len(deleted),
                "bytes": sum(i.size for i, _ in deleted),
                "by_kind": by_kind,
                "skipped": [{"subject": s_, "why": why} for s_, why in skipped],
                "failed": None if failed is None else {"subject": failed[0], "error": failed[1]},
            },
        )
        return event.id

    summary = ws.db.transaction(fn)
    if ws.anchor_uri is not None:
        try:
            export_anchor(ws.db, ws.anchor_uri)
        except Exception:  # the deletions are done and audited; verify shows a stale anchor
            log.exception("could not export the audit anchor after retention")
    log.info(
        "retention deleted %d item(s), %s", len(deleted), fmt_bytes(sum(i.size for i, _ in deleted))
    )
    return summary
