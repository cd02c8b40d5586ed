"""A version's chain: data -> run -> version -> approvals -> deployments (``retrainer lineage``).

Everything is read from the store as recorded; nothing is recomputed or changed. A version
made before lineage was complete shows what it has, and names what it lacks
(``lineage_missing``); its batches are then derived from its newest batch id (``derived``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from retrainer.deploy.store import RolloutStore
from retrainer.errors import NotFoundError
from retrainer.governance.lineage import missing_lineage
from retrainer.registry.db import as_utc
from retrainer.registry.registry import VersionInfo
from retrainer.registry.tables import Approval, Snapshot

if TYPE_CHECKING:
    from retrainer.workspace import Workspace

__all__ = ["version_chain"]

_ENV_KEYS = ("python", "platform", "packages", "env_lock_sha256")


def version_chain(ws: Workspace, model: str, version: int) -> dict[str, Any]:
    """The chain of ``model`` ``version``, JSON-ready. Raises NotFoundError."""
    info = ws.registry.get(model, version)
    lin = info.lineage
    return {
        "model": model,
        "version": version,
        "status": info.status,
        "lineage_missing": missing_lineage(lin) if info.status != "FAILED" else [],
        "data": _data(ws, model, lin),
        "run": _run(ws, info),
        "version_record": _version(info),
        "approvals": _approvals(ws, model, version),
        "deployments": _deployments(ws, model, version),
    }


def _data(ws: Workspace, model: str, lin: dict[str, Any]) -> dict[str, Any]:
    ids = lin.get("batch_ids")
    derived = ids is None
    if ids is None:
        top = lin.get("max_batch_id")
        ids = (
            []
            if top is None
            else [
                b.id
                for b in ws.ledger.batches(model, status=("accepted", "released"))
                if b.id <= int(top)
            ]
        )
    batches = ws.ledger.batches(model, ids=ids) if ids else []
    snap_ids = [b.snapshot_id for b in batches if b.snapshot_id is not None]
    snap_ids += [int(lin[k]) for k in ("train_snapshot", "holdout_snapshot") if k in lin]
    snaps = ws.db.transaction(lambda s: _snapshots(s, snap_ids))
    rows = []
    for b in batches:
        snap = snaps.get(b.snapshot_id) if b.snapshot_id is not None else None
        rows.append(
            {
                "id": b.id,
                "key": b.batch_key,
                "status": b.status,
                "rows": b.row_count,
                "received_at": b.received_at.isoformat(),
                **_span(snap),
            }
        )
    out: dict[str, Any] = {"source": lin.get("source"), "batches": rows, "derived": derived}
    for kind in ("train", "holdout"):
        sid = lin.get(f"{kind}_snapshot")
        snap = None if sid is None else snaps.get(int(sid))
        recorded = lin.get(f"{kind}_sha256")
        out[kind] = None
        if sid is not None:
            out[kind] = {
                "snapshot": int(sid),
                "rows": None if snap is None else snap["rows"],
                **_span(snap),
                "recorded_sha256": recorded,
                "matches_record": snap is not None and snap["content_hash"] == recorded,
            }
    return out


def _snapshots(s: Session, ids: list[int]) -> dict[int, dict[str, Any]]:
    if not ids:
        return {}
    return {
        r.id: {
            "rows": r.row_count,
            "time_min": r.time_min,
            "time_max": r.time_max,
            "content_hash": r.content_hash,
            "artifact_sha256": r.artifact_sha256,
        }
        for r in s.scalars(select(Snapshot).where(Snapshot.id.in_(ids)))
    }


def _span(snap: dict[str, Any] | None) -> dict[str, Any]:
    """Time range and hashes of a snapshot (None each when its record is gone)."""
    keys = ("time_min", "time_max", "content_hash", "artifact_sha256")
    return {k: None if snap is None else snap[k] for k in keys}


def _run(ws: Workspace, info: VersionInfo) -> dict[str, Any] | None:
    if info.run_id is None:
        return None
    trigger = info.lineage.get("trigger")
    try:
        run = ws.journal.get(info.run_id)
    except NotFoundError:
        return {"id": info.run_id, "missing": True, "trigger": trigger}
    return {
        "id": run.id,
        "status": run.status,
        "actor": run.actor,
        "started_at": run.started_at.isoformat(),
        "finished_at": None if run.finished_at is None else run.finished_at.isoformat(),
        "outcome": run.outcome,
        "request": run.trigger,
        "trigger": trigger or run.steps.get("decide"),
    }


def _version(info: VersionInfo) -> dict[str, Any]:
    lin = info.lineage
    env = lin.get("environment") or {}
    return {
        "status": info.status,
        "aliases": list(info.aliases),
        "created_at": info.created_at.isoformat(),
        "created_by": info.created_by,
        "artifact_sha256": info.artifact_sha256,
        "trainer": info.params,
        "estimator_class": lin.get("estimator_class"),
        "estimator_params": lin.get("estimator_params"),
        "seed": lin.get("seed"),
        "spec_sha256": lin.get("spec_sha256"),
        "spec_artifact_sha256": lin.get("spec_artifact_sha256"),
        "code": lin.get("code"),
        "environment": {k: env.get(k) for k in _ENV_KEYS},
        "metrics": info.metrics,
        "decision": {
            "passed": info.decision.get("passed") if info.decision else None,
            "summary": info.decision.get("summary") if info.decision else None,
        },
    }


def _approvals(ws: Workspace, model: str, version: int) -> list[dict[str, Any]]:
    def fn(s: Session) -> list[dict[str, Any]]:
        q = (
            select(Approval)
            .where(Approval.model == model, Approval.version == version)
            .order_by(Approval.id)
        )
        return [
            {
                "id": a.id,
                "actor": a.actor,
                "role": a.role,
                "decision": a.decision,
                "comment": a.comment,
                "override": a.override,
                "artifact_sha256": a.artifact_sha256,
                "decision_sha256": a.decision_sha256,
                "created_at": as_utc(a.created_at).isoformat(),
                "expires_at": None if a.expires_at is None else as_utc(a.expires_at).isoformat(),
            }
            for a in s.scalars(q)
        ]

    return ws.db.transaction(fn)


def _deployments(ws: Workspace, model: str, version: int) -> dict[str, Any]:
    moves = [
        m.to_dict() for m in ws.registry.history(model) if version in (m.to_version, m.from_version)
    ]
    rollouts = RolloutStore(ws.db).of_version(model, version)
    return {"alias_moves": moves, "rollouts": [r.to_dict() for r in rollouts]}
