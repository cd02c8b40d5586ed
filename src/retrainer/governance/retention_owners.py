"""The owners retention weighs: versions, batches, open runs and unreferenced snapshots.

An owner refers to snapshot records and artifact-store blobs; it is *due* when it is
past its period, *kept* when something protects it (champion, previous champion, an
alias, a legal hold, an active rollout, being trained; newest ``keep_versions`` and the
documentation window when it would otherwise be due), and *dead* when retention has
purged it already. Owners of other models in the store only protect what they use.
A version's artifacts are its model, reference profile, CBPE calibration and training
and holdout rows; any other blob its lineage names (the spec it was trained with) is
documentation and stays, like the version's record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from retrainer.governance.retention_items import fmt_age
from retrainer.registry.db import as_utc
from retrainer.registry.tables import (
    Alias,
    AliasHistory,
    Batch,
    ModelVersion,
    Rollout,
    Run,
    RunStep,
    Snapshot,
)

if TYPE_CHECKING:
    from retrainer.workspace import Workspace

__all__ = ["Owner", "Snap", "load_owners"]

_HEX = re.compile(r"^[0-9a-f]{64}$")
_USABLE = ("accepted", "released")
_HELD_BACK = ("quarantined", "discarded")
_DELETABLE = {
    "reference_profile_sha256": "reference profile",
    "cbpe_sha256": "CBPE calibration",
    "train_artifact_sha256": "training rows",
    "holdout_artifact_sha256": "holdout rows",
}
"""Lineage blobs deleted with a version's artifacts; any other blob its lineage names
(the spec it was trained with...) is documentation and is kept."""


@dataclass
class Owner:
    kind: str  # batch | quarantine | artifact | snapshot | other (protection only)
    subject: str
    dead: bool
    snapshots: tuple[int, ...] = ()
    blobs: tuple[tuple[str, str], ...] = ()  # (sha256, what)
    since: datetime | None = None
    due: str | None = None
    strong: list[str] = field(default_factory=list)  # always reported
    weak: list[str] = field(default_factory=list)  # reported when it would be due
    primary: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def kept(self) -> list[str]:
        return self.strong + self.weak


@dataclass
class Snap:
    id: int
    model: str
    kind: str
    artifact: str
    content_hash: str
    rows: int
    created_at: datetime
    purged: bool


def _period(value: timedelta) -> str:
    days = value.total_seconds() / 86400
    return f"{int(days)}d" if days.is_integer() else fmt_age(value)


def _hexes(value: Any) -> set[str]:
    """Every sha256-looking string inside a JSON value (blob references)."""
    if isinstance(value, str):
        return {value} if _HEX.match(value) else set()
    if isinstance(value, dict):
        return set().union(*(_hexes(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_hexes(v) for v in value)) if value else set()
    return set()


def _named(hashes: set[str]) -> tuple[tuple[str, str], ...]:
    return tuple((h, "documentation") for h in sorted(hashes))


def _lineage_snapshots(lineage: dict[str, Any]) -> tuple[int, ...]:
    return tuple(
        int(v)
        for k, v in sorted(lineage.items())
        if k.endswith("_snapshot") and isinstance(v, int) and not isinstance(v, bool)
    )


def _load(s: Session, model: str) -> dict[str, Any]:
    """Everything the scan reads, in one transaction, as plain values."""
    running = [r for (r,) in s.execute(select(Run.id).where(Run.status == "running"))]
    return {
        "versions": s.execute(
            select(
                ModelVersion.model,
                ModelVersion.version,
                ModelVersion.status,
                ModelVersion.artifact_sha256,
                ModelVersion.lineage,
                ModelVersion.created_at,
            )
        ).all(),
        "aliases": s.execute(select(Alias.model, Alias.alias, Alias.version)).all(),
        "history": s.execute(
            select(AliasHistory.from_version, AliasHistory.to_version, AliasHistory.at)
            .where(AliasHistory.model == model)
            .order_by(AliasHistory.id)
        ).all(),
        "batches": s.execute(
            select(
                Batch.model,
                Batch.id,
                Batch.status,
                Batch.snapshot_id,
                Batch.reasons,
                Batch.received_at,
                Batch.batch_key,
            )
        ).all(),
        "snapshots": [
            Snap(
                r.id,
                r.model,
                r.kind,
                r.artifact_sha256,
                r.content_hash,
                r.row_count,
                as_utc(r.created_at),
                r.purged_at is not None,
            )
            for r in s.scalars(select(Snapshot))
        ],
        "runs": [
            o for (o,) in s.execute(select(RunStep.output).where(RunStep.run_id.in_(running)))
        ],
        "rollouts": s.execute(
            select(Rollout.id, Rollout.candidate, Rollout.baseline).where(
                Rollout.model == model, Rollout.state == "active"
            )
        ).all(),
    }


def _version_owners(
    ws: Workspace, data: dict[str, Any], now: datetime, previous: int | None
) -> list[Owner]:
    spec = ws.spec
    model, r = spec.model.name, spec.retention
    aliases: dict[int, list[str]] = {}
    for m, alias, version in data["aliases"]:
        if m == model:
            aliases.setdefault(version, []).append(alias)
    served = {to for _, to, _ in data["history"] if to is not None}
    left: dict[int, datetime] = {}
    for frm, to, at in data["history"]:
        if frm is not None and frm != to:
            left[frm] = as_utc(at)
    rollouts = {v: rid for rid, *vs in data["rollouts"] for v in vs if v is not None}
    ready = sorted(
        (v for m, v, st, *_ in data["versions"] if m == model and st == "READY"), reverse=True
    )
    newest = set(ready[: r.keep_versions]) if r.keep_versions else set()
    owners = []
    for m, version, status, artifact, lineage, created in data["versions"]:
        blobs = [(artifact, f"model {m}:{version}")] if artifact else []
        blobs += [
            (lineage[k], f"{what} of {m}:{version}")
            for k, what in _DELETABLE.items()
            if isinstance(lineage.get(k), str) and _HEX.match(lineage[k])
        ]
        documents = {h for k, v in lineage.items() if k not in _DELETABLE for h in _hexes(v)}
        owners.append(Owner("other", f"{m}:{version}", dead=False, blobs=_named(documents)))
        owner = Owner(
            "artifact" if m == model else "other",
            f"{m}:{version}",
            dead=status == "PURGED",
            snapshots=_lineage_snapshots(lineage),
            blobs=tuple(blobs),
            primary=artifact or "",
            detail={"version": version, "status_before": status},
        )
        owners.append(owner)
        if m != model or owner.dead:
            continue
        held = aliases.get(version, [])
        owner.strong += ["champion"] if "champion" in held else []
        owner.strong += ["previous champion (the rollback target)"] if version == previous else []
        owner.strong += [f"holds the {a} alias" for a in held if a != "champion"]
        owner.strong += ["legal hold"] if version in r.legal_hold else []
        owner.strong += [f"in active rollout {rollouts[version]}"] if version in rollouts else []
        owner.strong += ["being trained (PENDING)"] if status == "PENDING" else []
        owner.since = left.get(version, as_utc(created)) if version in served else as_utc(created)
        age = now - owner.since
        if r.artifacts is not None and age >= r.artifacts:
            started = "stopped serving" if version in served else "created"
            owner.due = f"artifacts {_period(r.artifacts)}: {started} {owner.since:%Y-%m-%d}"
        if version in newest:
            owner.weak.append(f"one of the newest {r.keep_versions} READY versions (keep_versions)")
        if version in served and not held and age < r.documentation_window:
            until = owner.since + r.documentation_window
            owner.weak.append(
                f"documentation window: served until {owner.since:%Y-%m-%d}, kept until "
                f"{until:%Y-%m-%d}"
            )
    return owners


def _batch_owners(ws: Workspace, data: dict[str, Any], now: datetime) -> list[Owner]:
    model, r = ws.spec.model.name, ws.spec.retention
    owners = []
    for m, bid, status, snapshot_id, reasons, received, key in data["batches"]:
        received_id = (reasons.get("deduplicated") or {}).get("received_snapshot_id")
        snaps = tuple(dict.fromkeys(i for i in (snapshot_id, received_id) if i is not None))
        if not snaps:
            continue  # nothing of it is stored (an unreadable delivery)
        before = (reasons.get("retention") or {}).get("status", status)
        kind = "batch" if before in _USABLE else "quarantine" if before in _HELD_BACK else "other"
        owner = Owner(
            kind if m == model else "other",
            f"{m}/batch/{bid}",
            dead=status == "purged",
            snapshots=snaps,
            since=as_utc(received),
            detail={"batch_key": key, "status_before": status},
        )
        period = r.raw_batches if kind == "batch" else r.quarantine
        due = period is not None and now - as_utc(received) >= period
        if owner.kind != "other" and not owner.dead and due and period is not None:
            owner.due = f"{'raw_batches' if kind == 'batch' else 'quarantine'} " + (
                f"{_period(period)}: {status}, received {as_utc(received):%Y-%m-%d}"
            )
        owners.append(owner)
    return owners


def _snapshot_owners(
    ws: Workspace, data: dict[str, Any], owners: list[Owner], now: datetime
) -> list[Owner]:
    """Protection by open runs, and snapshots that nothing refers to (orphans)."""
    model, period = ws.spec.model.name, ws.spec.retention.raw_batches
    runs = []
    for output in data["runs"]:
        ids = [d["id"] for k in ("train", "holdout") if isinstance(d := output.get(k), dict)]
        runs.append(
            Owner(
                "other",
                "an open run",
                dead=False,
                snapshots=tuple(ids),
                blobs=tuple((h, "an open run's output") for h in _hexes(output)),
            )
        )
    referenced = {i for o in [*owners, *runs] for i in o.snapshots}
    orphans = []
    for snap in data["snapshots"]:
        if snap.id in referenced or snap.model != model:
            continue
        owner = Owner(
            "snapshot",
            f"{model}/snapshot/{snap.id}",
            dead=snap.purged,
            snapshots=(snap.id,),
            since=snap.created_at,
            primary=snap.content_hash,
            detail={"snapshot_kind": snap.kind},
        )
        if not snap.purged and period is not None and now - snap.created_at >= period:
            owner.due = f"raw_batches {_period(period)}: {snap.kind} rows no version or batch uses"
        orphans.append(owner)
    return runs + orphans


def load_owners(
    ws: Workspace, now: datetime, *, previous: int | None
) -> tuple[list[Owner], dict[int, Snap]]:
    """Every owner in the store (read in one transaction) and every snapshot record."""
    data = ws.db.transaction(lambda s: _load(s, ws.spec.model.name))
    owners = _version_owners(ws, data, now, previous) + _batch_owners(ws, data, now)
    owners += _snapshot_owners(ws, data, owners, now)
    return owners, {s.id: s for s in data["snapshots"]}
