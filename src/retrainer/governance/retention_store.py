"""Retention over the store and the artifact store: batches, versions and snapshots.

Every batch, version, open run and unreferenced snapshot is an *owner* of snapshot
records and blobs (:mod:`.retention_owners`). An owner past its period and not
protected is purged: its records are marked, and the blobs only it (and other purged
owners) refers to are deleted. A blob that anything kept refers to (any model in the
store) is never deleted, so content-addressed blobs shared by two owners survive while
one of them is kept. An owner already purged whose blobs are still there (a deletion
that did not finish) is planned again as a ``finish`` item.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from retrainer.governance.retention_items import Blob, KeptItem, RetentionItem
from retrainer.governance.retention_owners import Owner, Snap, load_owners
from retrainer.registry.artifacts import ArtifactStore
from retrainer.registry.audit import append_event
from retrainer.registry.tables import Alias, Batch, ModelVersion, Snapshot

if TYPE_CHECKING:
    from retrainer.workspace import Workspace

__all__ = ["Changed", "apply_store_item", "blob_size", "delete_blob", "scan_store"]


class Changed(Exception):
    """The item's state changed since it was planned; it is skipped, not deleted."""


def blob_size(store: ArtifactStore, sha256: str) -> int | None:
    """The blob's size in bytes, or None when it is not there."""
    try:
        return int(store.fs.size(store.path_of(sha256)))
    except FileNotFoundError:
        return None


def delete_blob(store: ArtifactStore, sha256: str) -> None:
    """Delete one blob (idempotent: a missing blob is not an error)."""
    try:
        store.fs.rm_file(store.path_of(sha256))
    except FileNotFoundError:
        return


def scan_store(
    ws: Workspace, now: datetime, *, previous: int | None
) -> tuple[list[RetentionItem], list[KeptItem]]:
    """Items past their period and things kept, over batches, versions and snapshots."""
    owners, snaps = load_owners(ws, now, previous=previous)
    purging = [o for o in owners if o.due and not o.kept and not o.dead and o.kind != "other"]
    gone = {id(o) for o in purging} | {id(o) for o in owners if o.dead}
    live = [o for o in owners if id(o) not in gone]
    live_snaps = {i for o in live for i in o.snapshots}
    protected: dict[str, str] = {}
    for o in live:
        for sha in [b for b, _ in o.blobs] + [snaps[i].artifact for i in o.snapshots if i in snaps]:
            protected.setdefault(sha, o.subject)
    items: list[RetentionItem] = []
    kept = _kept(owners, snaps)
    assigned: set[str] = set()
    marked: set[int] = set()
    for o in [o for o in owners if id(o) in gone and o.kind != "other"]:
        rows = [i for i in o.snapshots if i in snaps and i not in live_snaps]
        mark = tuple(i for i in rows if not snaps[i].purged and i not in marked)
        marked.update(mark)
        wanted = list(o.blobs) + [
            (snaps[i].artifact, f"snapshot {i} ({snaps[i].kind})") for i in rows
        ]
        blobs, shared = [], []
        for sha, what in _unique(wanted):
            if sha in assigned or (size := blob_size(ws.artifacts, sha)) is None:
                continue  # deleted by an earlier item, gone already, or not a blob at all
            if sha in protected:
                shared.append(f"{what}, shared with {protected[sha]}")
            else:
                assigned.add(sha)
                blobs.append(Blob(sha, size, what))
        if o.dead and not blobs and not mark:
            continue
        if not o.dead and not blobs and not mark:
            if shared:
                kept.append(KeptItem(o.kind, o.subject, (f"past its period, kept: {shared[0]}",)))
            continue
        since = o.since or now
        reason = o.due if not o.dead else "finishes a deletion that was recorded but not done"
        first = snaps[rows[0]] if rows else None
        primary = o.primary or (first.content_hash if first else "") or blobs[0].sha256
        detail = dict(o.detail)
        if rows:
            detail["snapshot_rows"] = [
                {
                    "id": i,
                    "kind": snaps[i].kind,
                    "content_hash": snaps[i].content_hash,
                    "artifact_sha256": snaps[i].artifact,
                    "rows": snaps[i].rows,
                }
                for i in rows
            ]
        if shared:
            detail["kept_shared"] = shared
        items.append(
            RetentionItem(
                o.kind,
                o.subject,
                since,
                now - since,
                sum(b.size for b in blobs),
                primary,
                str(reason),
                tuple(blobs),
                mark,
                finish=o.dead,
                detail=detail,
            )
        )
    return items, kept


def _unique(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for sha, what in pairs:
        seen.setdefault(sha, what)
    return list(seen.items())


def _kept(owners: list[Owner], snaps: dict[int, Snap]) -> list[KeptItem]:
    """Protected versions (always when strongly protected) and their training data."""
    out = []
    for o in owners:
        if o.kind != "artifact" or o.dead or not (o.strong or (o.due and o.weak)):
            continue
        reasons = o.strong + (o.weak if o.due else [])
        out.append(KeptItem("artifact", o.subject, tuple(reasons)))
        for i in o.snapshots:
            if i in snaps and not snaps[i].purged:
                why = f"{snaps[i].kind} data of {o.subject}, kept with it"
                out.append(KeptItem("snapshot", f"{o.subject.split(':')[0]}/snapshot/{i}", (why,)))
    return out


def apply_store_item(ws: Workspace, item: RetentionItem, *, actor: str) -> int:
    """Record one item's deletion (state and audit event, one transaction), then delete
    its blobs. Returns the event id.

    The audit event is written first: if deleting a blob fails, the event says what was
    being deleted, the error propagates, and the next plan finishes it (``finish``).

    Raises:
        Changed: the owner is no longer in the state it was planned in.
    """

    def fn(s: Session) -> int:
        now = ws.db.clock()
        _change_state(s, ws, item, actor, now)
        for sid in item.snapshots:
            row = s.get(Snapshot, sid)
            if row is not None and row.purged_at is None:
                row.purged_at = now
        event = append_event(
            s,
            at=now,
            actor=actor,
            action="retention.delete",
            subject=item.subject,
            payload=item.audit_payload(),
        )
        return event.id

    event_id = ws.db.transaction(fn)
    for blob in item.blobs:
        delete_blob(ws.artifacts, blob.sha256)
    return event_id


def _change_state(
    s: Session, ws: Workspace, item: RetentionItem, actor: str, now: datetime
) -> None:
    """Re-check the owner under the transaction and mark it purged."""
    model = ws.spec.model.name
    before = item.detail.get("status_before")
    if item.kind == "artifact":
        version = int(item.detail["version"])
        row = s.scalar(
            select(ModelVersion).where(ModelVersion.model == model, ModelVersion.version == version)
        )
        if row is None:
            raise Changed(f"{item.subject} no longer exists")
        if item.finish:
            if row.status != "PURGED":
                raise Changed(f"{item.subject} is {row.status}, no longer PURGED")
            return
        alias = s.scalar(
            select(Alias.alias).where(Alias.model == model, Alias.version == version).limit(1)
        )
        if alias is not None:
            raise Changed(f"{item.subject} holds the {alias} alias now")
        if version in ws.spec.retention.legal_hold:
            raise Changed(f"{item.subject} is under legal hold")
        if row.status != before:
            raise Changed(f"{item.subject} is {row.status} now, not {before}")
        row.status, row.updated_at = "PURGED", now
    elif item.kind in ("batch", "quarantine"):
        batch = s.get(Batch, int(item.subject.rsplit("/", 1)[1]))
        if batch is None:
            raise Changed(f"{item.subject} no longer exists")
        if item.finish:
            if batch.status != "purged":
                raise Changed(f"{item.subject} is {batch.status}, no longer purged")
            return
        if batch.status != before:
            raise Changed(f"{item.subject} is {batch.status} now, not {before}")
        mark = {"status": before, "at": now.isoformat(), "actor": actor}
        batch.status, batch.reasons = "purged", {**batch.reasons, "retention": mark}
    elif item.kind == "snapshot":
        snap = s.get(Snapshot, int(item.subject.rsplit("/", 1)[1]))
        if snap is None:
            raise Changed(f"{item.subject} no longer exists")
        if not item.finish and snap.purged_at is not None:
            raise Changed(f"{item.subject} was purged meanwhile")
    else:  # pragma: no cover - the caller routes only store kinds here
        raise ValueError(f"not a store item: {item.kind!r}")
