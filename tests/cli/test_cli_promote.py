"""``retrainer promote`` and ``retrainer rollback`` through the real CLI (FT-01).

Versions are made in-process by real cycles on a manual-approval workspace: v1 is
promoted, then each batch of flipped labels yields a candidate that passed its gates and
awaits approval. Only the commands under test run as processes; independent ones at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cliproc import cli_all, ok_json
from sqlalchemy import select

from conftest import add_batch, synthetic_batch
from retrainer.errors import TrainingError
from retrainer.governance.approvals import record_decision
from retrainer.governance.identity import Actor
from retrainer.orchestrate.cycle import run_cycle
from retrainer.registry import CHAMPION, list_events, promote
from retrainer.registry.tables import Alias
from retrainer.workspace import Workspace

REVIEWER = Actor("reviewer", "approver")


def folded(text: str) -> str:
    return " ".join(text.split())


def champion_rows(root: Path) -> list[tuple[str, str, int]]:
    with Workspace.open(root) as ws, ws.db.session() as s:
        rows = s.scalars(select(Alias).where(Alias.model == "toy", Alias.alias == CHAMPION))
        return [(a.model, a.alias, a.version) for a in rows]


def history(root: Path) -> list[tuple[int | None, int | None, str, str]]:
    with Workspace.open(root) as ws:
        return [
            (m.from_version, m.to_version, m.actor, m.reason)
            for m in ws.registry.history("toy", CHAMPION)
        ]


def setup_champion(make_workspace: Callable[..., Path]) -> Path:
    """A manual-approval workspace whose v1 (trained on two batches) is champion."""
    root = make_workspace(approval="manual")
    add_batch(root, "b0", synthetic_batch(0, 300, start_day=0))
    add_batch(root, "b1", synthetic_batch(1, 300, start_day=1))
    with Workspace.open(root) as ws:
        result = run_cycle(ws, actor="setup")
        assert result.version == 1
        assert not result.promoted  # manual approval: it waits
        promote(ws.registry, "toy", 1, actor="setup", reason="first", expected=None)
    return root


def add_candidates(root: Path, versions: list[int]) -> None:
    """One batch of flipped labels and one manual retrain per version (a waiting candidate
    holds back automatic retrains): READY, gates passed, approved by a reviewer, waiting for
    someone to promote them."""
    with Workspace.open(root) as ws:
        for v in versions:
            add_batch(root, f"flip{v}", synthetic_batch(v, 300, start_day=v, flipped=True))
            result = run_cycle(ws, actor="setup", manual_reason=f"candidate {v}")
            assert result.version == v, result.outcome
            assert "awaits approval" in result.outcome
            assert ws.registry.get("toy", v).gates_passed
        for v in versions:  # after all: the cycle would release an approved candidate
            record_decision(ws, REVIEWER, "toy", v, "approve", "reviewed in the test setup")


@pytest.fixture
def two_candidates(make_workspace: Callable[..., Path]) -> Path:
    """Champion v1; v2 and v3 READY with passing gates, awaiting approval."""
    root = setup_champion(make_workspace)
    add_candidates(root, [2, 3])
    return root


def test_promote_then_rollback_with_history_and_audit(two_candidates: Path) -> None:
    root, cwd = two_candidates, two_candidates.parent

    (promoted,) = cli_all(  # no -w: the workspace is the current directory
        ("promote", "toy", 2, "--expect-champion", 1, "--reason", "review 42", "--json"),
        cwd=root,
    )
    move = ok_json(promoted)
    assert (move["from_version"], move["to_version"]) == (1, 2)
    assert (move["actor"], move["reason"]) == ("tester", "review 42")

    # sequential compare-and-swap: the champion is no longer 1, so this one must lose
    (stale,) = cli_all(("promote", "toy", 3, "--expect-champion", 1, "-w", "ws"), cwd=cwd)
    assert stale.returncode == 4, stale.stderr
    assert stale.stdout == ""
    err = folded(stale.stderr)
    assert "[CONFLICT]" in err
    assert "toy@champion is now version 2, not version 1 as expected" in err
    assert champion_rows(root) == [("toy", "champion", 2)]

    (rolled,) = cli_all(("rollback", "toy", "--reason", "ops complaint", "-w", "ws"), cwd=cwd)
    assert rolled.returncode == 0, rolled.stderr
    assert "toy@champion: v2 -> v1 (rolled back)" in rolled.stdout

    show, audit = cli_all(
        ("models", "show", "toy", "-w", "ws", "--json"),
        ("audit", "log", "--subject", "toy@", "-w", "ws", "--json"),
        cwd=cwd,
    )
    shown = ok_json(show)
    assert shown["version"]["version"] == 1
    assert shown["version"]["aliases"] == ["champion"]
    moves = [
        (h["from_version"], h["to_version"], h["actor"], h["reason"]) for h in shown["history"]
    ]
    assert moves == [
        (None, 1, "setup", "first"),
        (1, 2, "tester", "review 42"),
        (2, 1, "tester", "ops complaint"),
    ]
    assert {v["version"]: v["status"] for v in shown["versions"]} == {
        1: "READY",
        2: "READY",
        3: "READY",
    }
    assert {v["version"]: v["aliases"] for v in shown["versions"]}[3] == []

    events = ok_json(audit)
    assert [
        (e["action"], e["actor"], e["payload"]["from"], e["payload"]["to"]) for e in events
    ] == [
        ("promote", "setup", None, 1),
        ("promote", "tester", 1, 2),
        ("rollback", "tester", 2, 1),
    ]
    assert all(e["subject"] == "toy@champion" for e in events)
    assert events[2]["payload"]["reason"] == "ops complaint"
    assert champion_rows(root) == [("toy", "champion", 1)]


def test_refusals_exit_codes_and_change_nothing(make_workspace: Callable[..., Path]) -> None:
    """Rollback without a previous champion: 3. Promoting a rejected (gates failed) or a
    FAILED version: 6. A version that does not exist: 3."""
    root = setup_champion(make_workspace)
    spec_path = root / "retrainer.yaml"
    spec = spec_path.read_text()
    spec_path.write_text(spec.replace("evaluate:\n", "evaluate:\n  min_metric: 0.999\n"))
    with Workspace.open(root) as ws:  # v2: trained and registered, but below the floor
        result = run_cycle(ws, actor="setup", manual_reason="floor")
        assert (result.version, result.promoted) == (2, False)
        assert "rejected" in result.outcome
    spec_path.write_text(spec.replace("max_iter: 200", "max_iter: -5"))
    add_batch(root, "b2", synthetic_batch(2, 300, start_day=2))
    with Workspace.open(root) as ws, pytest.raises(TrainingError):  # v3: training failed
        run_cycle(ws, actor="setup", manual_reason="boom")
    spec_path.write_text(spec)
    with Workspace.open(root) as ws:
        assert ws.registry.get("toy", 2).status == "READY"
        assert not ws.registry.get("toy", 2).gates_passed
        assert ws.registry.get("toy", 3).status == "FAILED"

    rollback, rejected, failed, missing = cli_all(
        ("rollback", "toy", "-w", "ws"),
        ("promote", "toy", 2, "-w", "ws"),
        ("promote", "toy", 3, "-w", "ws"),
        ("promote", "toy", 9, "-w", "ws"),
        cwd=root.parent,
    )
    assert rollback.returncode == 3, rollback.stderr
    assert "[NOT_FOUND]" in rollback.stderr
    assert "no previous champion" in folded(rollback.stderr)
    assert rejected.returncode == 6, rejected.stderr
    assert "[POLICY]" in rejected.stderr
    assert "toy:2 has no decision record whose gates all passed" in folded(rejected.stderr)
    assert failed.returncode == 6, failed.stderr
    assert "toy:3 is FAILED; only READY versions can be champion" in folded(failed.stderr)
    assert missing.returncode == 3, missing.stderr
    assert "'toy' has no version 9" in folded(missing.stderr)
    for r in (rollback, rejected, failed, missing):
        assert r.stdout == ""
        assert "Traceback" not in r.stderr

    assert champion_rows(root) == [("toy", "champion", 1)]
    assert history(root) == [(None, 1, "setup", "first")]


def audit_events(root: Path) -> list[dict[str, Any]]:
    with Workspace.open(root) as ws, ws.db.session() as s:
        return [
            {"action": e.action, "actor": e.actor, "subject": e.subject, "payload": e.payload}
            for e in list_events(s, limit=1000)
        ]


def test_concurrent_promotions_exactly_one_wins(two_candidates: Path) -> None:
    """Two processes started together, both expecting champion 1: one wins, one gets 4."""
    root = two_candidates
    first, second = cli_all(
        ("promote", "toy", 2, "--expect-champion", 1, "-w", "ws", "--json"),
        ("promote", "toy", 3, "--expect-champion", 1, "-w", "ws", "--json"),
        cwd=root.parent,
    )
    results = {2: first, 3: second}
    codes = sorted(r.returncode for r in results.values())
    assert codes == [0, 4], {v: (r.returncode, r.stderr) for v, r in results.items()}
    winner = next(v for v, r in results.items() if r.returncode == 0)
    loser = next(r for r in results.values() if r.returncode == 4)
    move = json.loads(results[winner].stdout)
    assert (move["from_version"], move["to_version"]) == (1, winner)
    assert loser.stdout == ""
    err = folded(loser.stderr)
    assert "[CONFLICT]" in err
    assert "toy@champion" in err
    assert f"is now version {winner}, not version 1 as expected" in err
    assert "nothing was changed" in err

    assert champion_rows(root) == [("toy", "champion", winner)]
    assert history(root) == [(None, 1, "setup", "first"), (1, winner, "tester", "manual promotion")]
    promotions = [e for e in audit_events(root) if e["action"] == "promote"]
    assert [(e["actor"], e["payload"]["to"]) for e in promotions] == [
        ("setup", 1),
        ("tester", winner),
    ]


def test_a_refused_promotion_is_audited(two_candidates: Path) -> None:
    """FT-01: "both attempts are audited" - the losing compare-and-swap leaves a record."""
    root = two_candidates
    with Workspace.open(root) as ws:
        promote(ws.registry, "toy", 2, actor="setup", reason="won", expected=1)
    (stale,) = cli_all(("promote", "toy", 3, "--expect-champion", 1, "-w", "ws"), cwd=root.parent)
    assert stale.returncode == 4, stale.stderr
    refused = [
        e
        for e in audit_events(root)
        if e["actor"] == "tester" and e["subject"] in ("toy@champion", "toy:3")
    ]
    assert refused, "the refused promotion of toy:3 left no audit event"
    assert refused[-1]["payload"].get("to") == 3
