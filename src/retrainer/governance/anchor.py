"""Audit anchors: the chain's head copied outside the store, and checks against them.

``verify_chain`` proves the chain is internally consistent, but someone with write access
to the store could rewrite the whole chain consistently. An anchor is the head (event id,
hash, number of events, time) appended as one JSON line to a file or fsspec URI the store
cannot write; a rewritten chain no longer has the anchored hash at the anchored id.
The spec's ``audit.anchor`` exports one after every champion move (promotion, rollback).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from typing import Any

import fsspec
from sqlalchemy import func, select

from retrainer.errors import SpecError
from retrainer.registry.audit import GENESIS, ChainReport, verify_chain
from retrainer.registry.db import Database, as_utc
from retrainer.registry.tables import AuditEvent

__all__ = ["Anchor", "AuditVerdict", "export_anchor", "read_anchors", "verify_audit"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Anchor:
    """The chain's head at one moment."""

    event_id: int
    hash: str
    events: int
    at: str


@dataclass(frozen=True)
class AuditVerdict:
    """``ok``, the chain report, and the first anchor the store contradicts (if any)."""

    ok: bool
    chain: ChainReport
    anchors_checked: int
    first_broken_id: int | None
    problem: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.chain.events,
            "head": self.chain.head,
            "anchors_checked": self.anchors_checked,
            "first_broken_id": self.first_broken_id,
            "problem": self.problem,
        }


def _head(db: Database) -> Anchor:
    def read(s: Any) -> Anchor:
        last = s.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).first()
        count = int(s.scalar(select(func.count()).select_from(AuditEvent)) or 0)
        if last is None:
            return Anchor(0, GENESIS, 0, as_utc(db.clock()).isoformat())
        return Anchor(last.id, last.hash, count, as_utc(db.clock()).isoformat())

    return db.transaction(read)


def read_anchors(uri: str) -> list[Anchor]:
    """The anchors in ``uri`` (oldest first); [] when it does not exist yet.

    Raises SpecError naming the line when a line is not an anchor.
    """
    fs, path = fsspec.core.url_to_fs(uri)
    if not fs.exists(path):
        return []
    out = []
    with fs.open(path, "r") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
                out.append(
                    Anchor(
                        int(raw["event_id"]), str(raw["hash"]), int(raw["events"]), str(raw["at"])
                    )
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise SpecError(
                    f"audit anchor {uri}: line {n} is not an anchor "
                    f'({{"event_id", "hash", "events", "at"}}): {exc}'
                ) from exc
    return out


def export_anchor(db: Database, uri: str) -> Anchor:
    """Append the chain's current head to ``uri`` (a path or fsspec URI) and return it."""
    head = _head(db)
    fs, path = fsspec.core.url_to_fs(uri)
    parent = fs._parent(path)
    if parent:
        fs.makedirs(parent, exist_ok=True)
    existing = fs.cat_file(path) if fs.exists(path) else b""
    line = json.dumps(asdict(head), sort_keys=True).encode() + b"\n"
    with fs.open(path, "wb") as fh:  # object stores cannot append: rewrite the whole
        fh.write(existing + line)
    return head


def verify_audit(db: Database, anchor: str | None = None) -> AuditVerdict:
    """Verify the chain link by link, then against every anchor in ``anchor``.

    The first broken link is named (an edited payload, a deleted or reordered event);
    then each anchored (id, hash) must still be in the store: a rewritten chain (every
    hash recomputed after a change) passes the link check but not this one.
    """
    chain = db.transaction(verify_chain)
    if not chain.ok:
        return AuditVerdict(False, chain, 0, chain.first_broken_id, chain.problem)
    anchors = read_anchors(anchor) if anchor else []
    if anchor and not anchors and _has_champion_moves(db):
        return AuditVerdict(
            False,
            chain,
            0,
            None,
            f"anchor {anchor} holds no anchor although the champion has moved: "
            "it was deleted, emptied or never written (wrong path?)",
        )

    def stored(s: Any) -> dict[int, str]:
        ids = [a.event_id for a in anchors if a.event_id]
        if not ids:
            return {}
        rows = s.execute(select(AuditEvent.id, AuditEvent.hash).where(AuditEvent.id.in_(ids)))
        return {int(i): str(h) for i, h in rows}

    hashes = db.transaction(stored)
    for i, a in enumerate(anchors, start=1):
        if a.event_id == 0:
            continue
        have = hashes.get(a.event_id)
        if have != a.hash:
            what = "is missing" if have is None else f"has hash {have[:12]}…"
            return AuditVerdict(
                False,
                chain,
                i,
                a.event_id,
                f"anchor {i} (exported {a.at}) says event {a.event_id} has hash "
                f"{a.hash[:12]}…, the store's event {what}: the chain was rewritten "
                "or truncated after the anchor",
            )
        if chain.events < a.events:
            return AuditVerdict(
                False,
                chain,
                i,
                a.event_id,
                f"anchor {i} counted {a.events} events, the store holds {chain.events}",
            )
    return AuditVerdict(True, chain, len(anchors), None, None)


def _has_champion_moves(db: Database) -> bool:
    from retrainer.registry.tables import AliasHistory

    def read(s: Any) -> bool:
        query = select(AliasHistory.id).where(AliasHistory.alias == "champion").limit(1)
        return s.scalar(query) is not None

    return bool(db.transaction(read))


def export_after_move(db: Database, uri: str) -> None:
    """The workspace's hook after a champion move: export, and log a failure (never raise:
    the move has committed; ``retrainer audit verify`` shows a stale anchor)."""
    try:
        export_anchor(db, uri)
    except Exception:
        logger.exception("could not export the audit anchor to %s", uri)
