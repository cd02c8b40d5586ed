"""``retrainer audit verify`` names the first broken event after an edited payload, a
deleted event, two swapped events, and (against the anchor) a rewritten chain."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from retrainer.governance.anchor import read_anchors, verify_audit
from retrainer.registry import promote
from retrainer.registry.audit import GENESIS, event_hash
from retrainer.workspace import Workspace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))

from cliproc import finish, ok_json, start

MODEL = "toy"


@pytest.fixture
def ws_root(make_workspace: Callable[..., Path]) -> Path:
    """Five versions, two promotions (each exports the anchor): about 20 events."""
    root = make_workspace()
    with (root / "retrainer.yaml").open("a") as f:
        f.write("audit:\n  anchor: anchor/head.jsonl\n")
    with Workspace.open(root) as ws:
        reg = ws.registry
        for _ in range(5):
            v = reg.create_version(MODEL, run_id=None, actor="t", params={}, lineage={})
            reg.attach_artifact(MODEL, v, f"{v:064x}", actor="t")
            reg.mark_ready(MODEL, v, metrics={}, decision={"passed": True}, actor="t")
        promote(reg, MODEL, 1, actor="t", reason="first", expected=None)
        promote(reg, MODEL, 3, actor="t", reason="second")
    return root


def tamper(root: Path, *statements: str | tuple[str, tuple[object, ...]]) -> None:
    """Run SQL on the store with the append-only triggers lifted (an attacker's view)."""
    con = sqlite3.connect(root / ".retrainer" / "retrainer.db")
    triggers = con.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_events'"
    ).fetchall()
    for name, _ in triggers:
        con.execute(f"DROP TRIGGER {name}")
    for statement in statements:
        sql, params = statement if isinstance(statement, tuple) else (statement, ())
        con.execute(sql, params)
    for _, sql in triggers:
        con.execute(sql)
    con.commit()
    con.close()


def verdict(root: Path) -> dict[str, object]:
    with Workspace.open(root) as ws:
        return verify_audit(ws.db, ws.anchor_uri).to_dict()


def test_a_healthy_chain_verifies_against_its_anchors(ws_root: Path) -> None:
    anchors = read_anchors(str(ws_root / "anchor" / "head.jsonl"))
    assert len(anchors) == 2  # one per champion move
    result = ok_json(finish(start("audit", "verify", "-w", ws_root, "--json", cwd=ws_root)))
    assert result["ok"] is True and result["anchors_checked"] == 2
    assert result["head"] == anchors[-1].hash


def test_an_edited_payload_is_named(ws_root: Path) -> None:
    tamper(ws_root, 'UPDATE audit_events SET payload = \'{"reason": "nothing"}\' WHERE id = 7')
    done = finish(start("audit", "verify", "-w", ws_root, cwd=ws_root))
    assert done.returncode == 1
    assert "broken at event 7" in done.stdout and "payload does not match" in done.stdout


def test_a_deleted_event_breaks_the_next_link(ws_root: Path) -> None:
    tamper(ws_root, "DELETE FROM audit_events WHERE id = 5")
    result = verdict(ws_root)
    assert (result["ok"], result["first_broken_id"]) == (False, 6)
    assert "prev_hash" in str(result["problem"])


def test_two_swapped_events_are_caught_at_the_first(ws_root: Path) -> None:
    cols = "at, actor, action, subject, payload, payload_hash, prev_hash, hash"
    tamper(
        ws_root,
        f"CREATE TEMP TABLE t AS SELECT id, {cols} FROM audit_events WHERE id IN (4, 5)",
        "UPDATE audit_events SET hash = 'x' || hash WHERE id IN (4, 5)",  # free the unique
        *(
            f"UPDATE audit_events SET ({cols}) = (SELECT {cols} FROM t WHERE t.id = {b}) "
            f"WHERE id = {a}"
            for a, b in ((4, 5), (5, 4))
        ),
    )
    result = verdict(ws_root)
    assert (result["ok"], result["first_broken_id"]) == (False, 4)


def test_a_rewritten_chain_passes_the_links_but_not_the_anchor(ws_root: Path) -> None:
    """Edit event 3, then recompute every hash from there on: a consistent forgery."""
    con = sqlite3.connect(ws_root / ".retrainer" / "retrainer.db")
    rows = con.execute(
        "SELECT id, at, actor, action, subject, payload FROM audit_events ORDER BY id"
    ).fetchall()
    con.close()
    forged: list[tuple[str, tuple[object, ...]]] = []
    prev = GENESIS
    for i, at, actor, action, subject, payload in rows:
        body = json.loads(payload)
        if i == 3:
            body = {**body, "reason": "forged"}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        payload_hash = hashlib.sha256(canonical).hexdigest()
        when = datetime.fromisoformat(at).replace(tzinfo=UTC)  # stored as naive UTC
        h = event_hash(
            prev_hash=prev,
            at=when,
            actor=actor,
            action=action,
            subject=subject,
            payload_hash=payload_hash,
        )
        forged.append(
            (
                "UPDATE audit_events SET payload = ?, payload_hash = ?, prev_hash = ?, hash = ? "
                "WHERE id = ?",
                (json.dumps(body), payload_hash, prev, h, i),
            )
        )
        prev = h
    # Temporary hashes first, so the unique index never sees two rows with one hash.
    tamper(ws_root, "UPDATE audit_events SET hash = 'tmp-' || id", *forged)
    with Workspace.open(ws_root) as ws:
        assert verify_audit(ws.db, None).ok  # the links alone: a perfect forgery
    result = verdict(ws_root)
    assert result["ok"] is False
    assert "was rewritten" in str(result["problem"])
    first_anchor = read_anchors(str(ws_root / "anchor" / "head.jsonl"))[0]
    assert result["first_broken_id"] == first_anchor.event_id


def test_a_missing_or_wrong_anchor_is_not_a_pass(ws_root: Path, tmp_path: Path) -> None:
    (ws_root / "anchor" / "head.jsonl").unlink()
    result = verdict(ws_root)
    assert result["ok"] is False and "holds no anchor" in str(result["problem"])
    wrong = tmp_path / "typo.jsonl"
    done = finish(start("audit", "verify", "-w", ws_root, "--anchor", wrong, cwd=ws_root))
    assert done.returncode == 1 and "holds no anchor" in done.stdout
