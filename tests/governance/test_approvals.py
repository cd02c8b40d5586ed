"""Approvals on real cycles (GOV-02, invariant 3): separation of duties, binding to the
artifact and decision record, quorum, expiry, rejection, the ``auto_if`` envelope."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from conftest import add_batch, synthetic_batch
from retrainer.errors import ConflictError, ForbiddenError, PolicyError
from retrainer.governance.approvals import approval_check, pending, record_decision, status
from retrainer.governance.identity import Actor
from retrainer.governance.release import decide
from retrainer.orchestrate.cycle import run_cycle
from retrainer.registry import CHAMPION, list_events, promote, verify_chain
from retrainer.registry.tables import ModelVersion
from retrainer.workspace import Workspace

MODEL = "toy"
TRAINER = "trainer-bot"
ALICE, BOB = Actor("alice", "approver"), Actor("bob", "approver")


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 1, 12, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def first_candidate(make_workspace: Callable[..., Path], approval: str) -> Path:
    """A workspace whose first version passed its gates; returns the root."""
    root = make_workspace(approval=approval)
    add_batch(root, "b1", synthetic_batch(1, 400, start_day=0))
    with Workspace.open(root) as ws:
        result = run_cycle(ws, actor=TRAINER)
    assert result.version == 1, result.outcome
    return root


def events(ws: Workspace, action: str) -> list[dict[str, Any]]:
    with ws.db.session() as s:
        return [
            {"actor": e.actor, "subject": e.subject, **e.payload}
            for e in list_events(s)
            if e.action == action
        ]


def test_manual_candidate_waits_and_its_trainer_cannot_approve_it(
    make_workspace: Callable[..., Path],
) -> None:
    root = first_candidate(make_workspace, "manual")
    with Workspace.open(root) as ws:
        (st,) = pending(ws, MODEL)
        assert (st.version, st.state, st.needs) == (1, "pending", ("approval.mode is manual",))
        assert st.responsible == (TRAINER,)

        with pytest.raises(ForbiddenError, match="separation of duties: trainer-bot"):
            record_decision(ws, Actor(TRAINER, "admin"), MODEL, 1, "approve", "mine")
        with pytest.raises(ForbiddenError, match="needs the role 'approver' or 'admin'"):
            record_decision(ws, Actor("olga", "operator"), MODEL, 1, "approve", "ok")
        denied = events(ws, "approval.denied")
        assert [d["actor"] for d in denied] == [TRAINER, "olga"]
        assert "separation of duties" in denied[0]["reason"]

        with pytest.raises(PolicyError, match="needs 1 approval"):  # no approval yet
            check = approval_check(ws, list(st.needs))
            promote(ws.registry, MODEL, 1, actor="x", reason="r", expected=None, check=check)

        out = decide(ws, ALICE, MODEL, 1, "approve", "slices and fairness checked")
        assert out["status"]["state"] == "approved"
        assert out["released"]["how"] == "promoted"
        assert ws.registry.get_alias(MODEL, CHAMPION) == 1
        (given,) = events(ws, "approval.approve")
        info = ws.registry.get(MODEL, 1)
        assert given["sha256"] == info.artifact_sha256
        assert given["actor"] == "alice" and given["comment"] == "slices and fairness checked"
        assert pending(ws, MODEL) == []
        with ws.db.session() as s:
            assert verify_chain(s).ok


def test_an_approval_is_void_once_the_artifact_or_decision_record_changes(
    make_workspace: Callable[..., Path],
) -> None:
    root = first_candidate(make_workspace, "manual\n  quorum: 1")
    with Workspace.open(root) as ws:
        record_decision(ws, ALICE, MODEL, 1, "approve", "looked at it")
        assert status(ws, MODEL, 1).state == "approved"
        ws.db.transaction(  # a different artifact is re-uploaded
            lambda s: s.execute(
                update(ModelVersion)
                .where(ModelVersion.model == MODEL, ModelVersion.version == 1)
                .values(artifact_sha256="0" * 64)
            )
        )
        st = status(ws, MODEL, 1)
        assert st.state == "pending"
        assert [why for _, why in st.void] == ["the artifact changed since (sha256 differs)"]
        out = decide(ws, BOB, MODEL, 1, "approve", "approved the new bytes")
        assert out["status"]["state"] == "approved"  # bob's approval binds to the new sha


def test_quorum_needs_distinct_approvers_and_approvals_expire(
    make_workspace: Callable[..., Path],
) -> None:
    root = first_candidate(make_workspace, "manual\n  quorum: 2\n  expires: 2h")
    clock = Clock()
    with Workspace.open(root, clock=clock) as ws:
        first = decide(ws, ALICE, MODEL, 1, "approve", "first look")
        assert (first["status"]["state"], first["released"]) == ("pending", None)
        with pytest.raises(ConflictError, match="alice already approved"):
            record_decision(ws, ALICE, MODEL, 1, "approve", "and again")
        clock.now += timedelta(hours=3)  # alice's approval expires
        second = decide(ws, BOB, MODEL, 1, "approve", "second look")
        assert second["status"]["state"] == "pending"
        assert [w for _, w in status(ws, MODEL, 1).void] == ["expired"]
        third = decide(ws, ALICE, MODEL, 1, "approve", "looked again")
        assert third["status"]["state"] == "approved"
        assert third["released"]["how"] == "promoted"
        assert ws.registry.get_alias(MODEL, CHAMPION) == 1


def test_a_rejection_stops_the_candidate_and_the_loop_trains_again(
    make_workspace: Callable[..., Path],
) -> None:
    root = first_candidate(make_workspace, "manual")
    with Workspace.open(root) as ws:
        out = decide(ws, ALICE, MODEL, 1, "reject", "worse on red")
        assert out["status"]["state"] == "rejected"
        assert pending(ws, MODEL) == []
        with pytest.raises(PolicyError, match="rejected by alice"):
            record_decision(ws, BOB, MODEL, 1, "approve", "overrule")
    add_batch(root, "b2", synthetic_batch(2, 700, start_day=1))
    with Workspace.open(root) as ws:
        result = run_cycle(ws, actor=TRAINER)
    assert result.version == 2, result.outcome  # no longer held back by version 1


def test_an_admin_override_needs_a_justification_and_is_flagged(
    make_workspace: Callable[..., Path],
) -> None:
    root = first_candidate(make_workspace, "manual")
    boss = Actor(TRAINER, "admin")
    with Workspace.open(root) as ws:
        with pytest.raises(PolicyError, match="justification of at least 20"):
            record_decision(ws, boss, MODEL, 1, "approve", "trust me", override=True)
        with pytest.raises(ForbiddenError, match="needs the role 'admin'"):
            record_decision(ws, ALICE, MODEL, 1, "approve", "x" * 30, override=True)
        out = decide(
            ws, boss, MODEL, 1, "approve", "incident 77: sole on-call, reviewed", override=True
        )
        assert out["released"]["how"] == "promoted"
        (given,) = events(ws, "approval.approve")
        assert given["override"] is True


def test_auto_if_promotes_inside_the_envelope_and_waits_outside(
    make_workspace: Callable[..., Path],
) -> None:
    root = first_candidate(make_workspace, "auto_if\n  auto_if: {metric_change: [-0.05, 0.05]}")
    with Workspace.open(root) as ws:
        (st,) = pending(ws, MODEL)  # no champion: nothing to compare the change with
        assert st.needs == (
            "outside the auto_if envelope: there is no champion to compare the change against",
        )
        decide(ws, ALICE, MODEL, 1, "approve", "first model reviewed")
    add_batch(root, "b2", synthetic_batch(2, 400, start_day=1))
    with Workspace.open(root) as ws:
        inside = run_cycle(ws, actor=TRAINER, manual_reason="refresh")
        assert inside.version == 2 and inside.promoted, inside.outcome
        assert [e["subject"] for e in events(ws, "approval.auto")] == [f"{MODEL}:2"]

    spec = (root / "retrainer.yaml").read_text()
    (root / "retrainer.yaml").write_text(spec.replace("[-0.05, 0.05]", "[0.5, 1.0]"))
    add_batch(root, "b3", synthetic_batch(3, 400, start_day=2))
    with Workspace.open(root) as ws:
        outside = run_cycle(ws, actor=TRAINER, manual_reason="refresh")
        assert outside.version == 3 and not outside.promoted
        assert "outside the auto_if envelope: roc_auc change" in outside.outcome
        assert "is outside the band [+0.5000, +1.0000]" in outside.outcome
        assert ws.registry.get_alias(MODEL, CHAMPION) == 2
