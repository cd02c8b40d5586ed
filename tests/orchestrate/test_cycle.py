"""The cycle runner end to end, on SQLite and on PostgreSQL, on the local executor and
on a Dask cluster alike.

Each test builds a small workspace (SYNTHETIC_SPEC: LogisticRegression on a few hundred
synthetic rows), writes batches into its source folder and runs whole cycles through
``run_cycle``, then checks what the store holds: versions, aliases and their history,
lineage, decision records, the journal and the audit chain.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sklearn.metrics import roc_auc_score
from sqlalchemy import func, select

from conftest import add_batch, synthetic_batch
from retrainer.errors import LeaseHeldError, PolicyError
from retrainer.orchestrate import STEPS, CycleResult, run_cycle, workspace_status
from retrainer.orchestrate.evidence import reference_profile
from retrainer.registry import CHAMPION, list_events, load_model, promote, verify_chain
from retrainer.registry.tables import Base
from retrainer.spec import spec_hash
from retrainer.workspace import Workspace

MODEL = "toy"
NewWorkspace = Callable[..., Path]


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("sqlite-dask", marks=pytest.mark.dask),
        pytest.param("postgresql-dask", marks=[pytest.mark.postgres, pytest.mark.dask]),
    ]
)
def new_ws(request: pytest.FixtureRequest, make_workspace: NewWorkspace) -> NewWorkspace:
    """``new_ws(approval="auto") -> Path``: a workspace on SQLite (default) or PostgreSQL,
    on the local executor or on a Dask cluster (``-dask``)."""
    backend, _, on = str(request.param).partition("-")
    store = None if backend == "sqlite" else request.getfixturevalue("pg_schema_url")
    executor = request.getfixturevalue("dask_scheduler") if on == "dask" else "local"

    def make(*, approval: str = "auto") -> Path:
        return make_workspace(approval=approval, store=store, executor=executor)

    return make


def cycle(root: Path, **kwargs: Any) -> CycleResult:
    with Workspace.open(root) as ws:
        return run_cycle(ws, actor=kwargs.pop("actor", "t"), **kwargs)


def edit_spec(root: Path, old: str, new: str) -> None:
    path = root / "retrainer.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def audit_events(ws: Workspace) -> list[dict[str, Any]]:
    return ws.db.transaction(
        lambda s: [
            {"actor": e.actor, "action": e.action, "subject": e.subject, "payload": e.payload}
            for e in list_events(s, limit=100_000)
        ]
    )


def chain_ok(ws: Workspace) -> bool:
    return ws.db.transaction(verify_chain).ok


def table_counts(ws: Workspace) -> dict[str, int]:
    return ws.db.transaction(
        lambda s: {
            t.name: int(s.scalar(select(func.count()).select_from(t)) or 0)
            for t in Base.metadata.sorted_tables
        }
    )


def model_from(ws: Workspace, version: int) -> Any:
    info = ws.registry.get(MODEL, version)
    assert info.artifact_sha256 is not None
    return load_model(ws.artifacts.get(info.artifact_sha256, what=f"model {MODEL} v{version}"))


# -- the first cycle ------------------------------------------------------------------------


def test_first_cycle_trains_promotes_and_records_lineage(new_ws: NewWorkspace) -> None:
    root = new_ws()
    add_batch(root, "b1", synthetic_batch(1, 400, start_day=0))

    result = cycle(root)

    assert (result.status, result.resumed, result.version, result.promoted) == (
        "succeeded",
        False,
        1,
        True,
    )
    assert result.outcome == "version 1 promoted (champion was none)"
    assert list(result.steps) == list(STEPS)
    with Workspace.open(root) as ws:
        info = ws.registry.get(MODEL, 1)
        assert info.status == "READY"
        assert info.aliases == (CHAMPION,)
        assert ws.registry.get_alias(MODEL, CHAMPION) == 1
        assert info.run_id == result.run_id
        assert info.artifact_sha256 == result.steps["train"]["sha256"]

        ds = result.steps["datasets"]
        lineage = info.lineage
        train_snap = ws.ledger.get_snapshot(lineage["train_snapshot"])
        hold_snap = ws.ledger.get_snapshot(lineage["holdout_snapshot"])
        assert lineage["train_sha256"] == train_snap.content_hash == ds["train"]["content_hash"]
        assert lineage["holdout_sha256"] == hold_snap.content_hash == ds["holdout"]["content_hash"]
        assert train_snap.row_count + hold_snap.row_count == 400
        assert hold_snap.row_count == 100  # holdout fraction 0.25, newest rows
        assert train_snap.time_max is not None and hold_snap.time_min is not None
        assert train_snap.time_max < hold_snap.time_min
        assert lineage["spec_sha256"] == spec_hash(ws.spec)
        assert lineage["environment"]["python"]
        assert "scikit-learn" in lineage["environment"]["packages"]
        assert lineage["trigger"]["kind"] == "bootstrap"
        assert lineage["trigger"]["fire"] is True
        assert lineage["seed"] == 3
        assert result.steps["train"]["executor"] == ws.spec.executor
        in_parts = ws.spec.executor != "local"  # the window stays on the cluster
        assert (ws.ledger.parts(train_snap) is not None) == in_parts
        assert (ws.ledger.parts(hold_snap) is not None) == in_parts
        # the profile built partition by partition on the executor: the local bytes
        stored = ws.artifacts.get(lineage["reference_profile_sha256"])
        train = ws.ledger.load_frame(train_snap)
        assert stored == reference_profile(ws.spec, train).to_bytes()

        decision = info.decision
        assert decision["passed"] is True
        assert decision["metric"] == "roc_auc"
        assert decision["champion_version"] is None
        assert decision["holdout_rows"] == 100
        assert {g["name"] for g in decision["gates"]} == {"scores", "vs_champion"}
        assert decision["candidate_metric"] > 0.8
        assert info.metrics["roc_auc"] == decision["candidate_metric"]

        model = model_from(ws, 1)
        holdout = ws.ledger.load_frame(hold_snap)
        proba = model.predict_proba(holdout[["x1", "x2", "color"]])[:, 1]
        assert roc_auc_score(holdout["y"], proba) == pytest.approx(decision["candidate_metric"])

        run = ws.journal.get(result.run_id)
        assert run.status == "succeeded"
        assert list(run.steps) == list(STEPS)
        assert chain_ok(ws)


def test_no_data_at_all_ends_without_training(new_ws: NewWorkspace) -> None:
    root = new_ws()
    result = cycle(root)
    assert result.status == "succeeded"
    assert result.outcome == "no retrain: no accepted data yet"
    assert "train" not in result.steps
    with Workspace.open(root) as ws:
        assert ws.registry.versions(MODEL) == []


# -- a concept change -------------------------------------------------------------------------


def test_concept_change_fires_performance_trigger_and_promotes(new_ws: NewWorkspace) -> None:
    root = new_ws()
    add_batch(root, "b1", synthetic_batch(1, 400, start_day=0))
    first = cycle(root)
    add_batch(root, "b2", synthetic_batch(2, 400, start_day=1, flipped=True))

    result = cycle(root)

    assert result.status == "succeeded"
    assert (result.version, result.promoted) == (2, True)
    assert result.outcome == "version 2 promoted (champion was version 1)"

    monitor = result.steps["monitor"]
    assert monitor["champion"] == 1
    [seen] = monitor["batches"]
    assert (seen["key"], seen["rows"], seen["labelled"]) == ("b2.parquet", 400, 400)
    v1_holdout_auc = first.steps["evaluate"]["decision"]["candidate_metric"]
    assert seen["metrics"]["roc_auc"] < 0.7 < v1_holdout_auc  # the champion's metric dropped

    decide = result.steps["decide"]
    assert (decide["fire"], decide["kind"]) == (True, "performance")
    assert decide["numbers"]["value"] == seen["metrics"]["roc_auc"]
    assert decide["numbers"]["threshold"] == 0.7

    decision = result.steps["evaluate"]["decision"]
    assert result.steps["evaluate"]["champion"] == 1
    assert decision["champion_version"] == 1
    assert decision["passed"] is True
    vs = next(g for g in decision["gates"] if g["name"] == "vs_champion")
    numbers = vs["numbers"]
    assert numbers["ci_low"] <= numbers["improvement"] <= numbers["ci_high"]
    assert numbers["confidence"] == 0.95
    assert decision["candidate_metric"] > decision["champion_metric"]

    with Workspace.open(root) as ws:
        # both were scored on the same holdout rows: recompute each from the stored snapshot
        hold_snap = ws.ledger.get_snapshot(result.steps["datasets"]["holdout"]["id"])
        holdout = ws.ledger.load_frame(hold_snap)
        assert len(holdout) == decision["holdout_rows"] == hold_snap.row_count
        for version, key in ((1, "champion_metric"), (2, "candidate_metric")):
            proba = model_from(ws, version).predict_proba(holdout[["x1", "x2", "color"]])[:, 1]
            assert roc_auc_score(holdout["y"], proba) == pytest.approx(decision[key])

        v2 = ws.registry.get(MODEL, 2)
        assert (v2.status, v2.aliases, v2.gates_passed) == ("READY", (CHAMPION,), True)
        assert v2.decision == decision
        assert v2.lineage["trigger"]["kind"] == "performance"
        assert ws.registry.get(MODEL, 1).aliases == ()

        history = ws.registry.history(MODEL, CHAMPION)
        assert [(m.from_version, m.to_version) for m in history] == [(None, 1), (1, 2)]
        assert all(m.actor == "t" for m in history)

        events = audit_events(ws)
        actions = [e["action"] for e in events]
        for action in ("run.start", "version.create", "version.artifact", "version.ready"):
            assert actions.count(action) == 2, action
        assert actions.count("run.succeeded") == 2
        promotions = [e for e in events if e["action"] == "promote"]
        assert [(e["payload"]["from"], e["payload"]["to"]) for e in promotions] == [
            (None, 1),
            (1, 2),
        ]
        assert promotions[1]["payload"]["sha256"] == v2.artifact_sha256
        assert all(e["subject"] == f"{MODEL}@{CHAMPION}" for e in promotions)
        assert chain_ok(ws)


# -- no retrain -------------------------------------------------------------------------------


def test_no_new_data_ends_without_training(new_ws: NewWorkspace) -> None:
    root = new_ws()
    add_batch(root, "b1", synthetic_batch(1, 400, start_day=0))
    cycle(root)

    result = cycle(root)

    assert result.status == "succeeded"
    assert result.outcome.startswith("no retrain:")
    assert list(result.steps) == ["ingest", "contract", "monitor", "decide"]
    assert result.steps["ingest"]["batches"] == []
    assert result.steps["decide"]["fire"] is False
    assert result.version is None and not result.promoted
    with Workspace.open(root) as ws:
        assert [v.version for v in ws.registry.versions(MODEL)] == [1]
        assert ws.registry.get_alias(MODEL, CHAMPION) == 1
        assert ws.journal.get(result.run_id).status == "succeeded"


def test_few_new_rows_with_good_performance_do_not_retrain(new_ws: NewWorkspace) -> None:
    root = new_ws()
    add_batch(root, "b1", synthetic_batch(1, 400, start_day=0))
    cycle(root)
    add_batch(root, "b2", synthetic_batch(2, 120, start_day=1))

    result = cycle(root)

    assert result.status == "succeeded"
    assert result.outcome.startswith("no retrain: no trigger fired")
    [seen] = result.steps["monitor"]["batches"]
    assert seen["rows"] == 120 and seen["metrics"]["roc_auc"] >= 0.7
    assert "120/600 new rows" in result.steps["decide"]["reason"]
    assert "within bounds" in result.steps["decide"]["reason"]
    assert "train" not in result.steps
    with Workspace.open(root) as ws:
        assert [v.version for v in ws.registry.versions(MODEL)] == [1]
        assert [b.status for b in ws.ledger.batches(MODEL)] == ["accepted", "accepted"]


# -- manual approval --------------------------------------------------------------------------


def test_manual_approval_waits_without_retraining_then_promote_works(
    new_ws: NewWorkspace,
) -> None:
    root = new_ws(approval="manual")
    add_batch(root, "b1", synthetic_batch(1, 400, start_day=0))

    result = cycle(root)

    assert result.status == "succeeded"
    assert (result.version, result.promoted) == (1, False)
    assert "awaits approval" in result.outcome
    with Workspace.open(root) as ws:
        info = ws.registry.get(MODEL, 1)
        assert (info.status, info.gates_passed, info.aliases) == ("READY", True, ())
        assert ws.registry.get_alias(MODEL, CHAMPION) is None
        assert workspace_status(ws)["awaiting_approval"] == [1]

    # While it waits, new data (enough to fire the volume trigger) does not train again.
    add_batch(root, "b2", synthetic_batch(2, 700, start_day=1))
    waiting = cycle(root)
    assert waiting.status == "succeeded"
    assert waiting.outcome == "no retrain: version 1 awaits approval"
    assert "train" not in waiting.steps
    assert cycle(root).outcome == "no retrain: version 1 awaits approval"

    with Workspace.open(root) as ws:
        assert [v.version for v in ws.registry.versions(MODEL)] == [1]
        move = promote(ws.registry, MODEL, 1, actor="approver", reason="reviewed", expected=None)
        assert (move.from_version, move.to_version, move.actor) == (None, 1, "approver")
        assert ws.registry.get_alias(MODEL, CHAMPION) == 1
        assert workspace_status(ws)["awaiting_approval"] == []
        promoted = [e for e in audit_events(ws) if e["action"] == "promote"]
        assert [(e["actor"], e["payload"]["to"]) for e in promoted] == [("approver", 1)]
        assert chain_ok(ws)


def test_manual_approval_over_a_champion_does_not_train_while_a_candidate_waits(
    new_ws: NewWorkspace,
) -> None:
    root = new_ws(approval="manual")
    add_batch(root, "b1", synthetic_batch(1, 400, start_day=0))
    cycle(root)
    with Workspace.open(root) as ws:
        promote(ws.registry, MODEL, 1, actor="approver", reason="reviewed")
    add_batch(root, "b2", synthetic_batch(2, 300, start_day=1, flipped=True))
    assert "awaits approval" in cycle(root).outcome  # version 2 waits
    add_batch(root, "b3", synthetic_batch(3, 300, start_day=2, flipped=True))

    result = cycle(root)

    assert result.outcome == "no retrain: version 2 awaits approval"
    with Workspace.open(root) as ws:
        assert [v.version for v in ws.registry.versions(MODEL)] == [2, 1]
        assert workspace_status(ws)["awaiting_approval"] == [2]


# -- idempotency ------------------------------------------------------------------------------


def test_manual_retrain_twice_on_unchanged_data_is_skipped(new_ws: NewWorkspace) -> None:
    root = new_ws()
    add_batch(root, "b1", synthetic_batch(1, 400, start_day=0))
    cycle(root)

    retrain = cycle(root, manual_reason="refresh")
    assert retrain.status == "succeeded"
    assert retrain.steps["decide"]["kind"] == "manual"
    assert retrain.version == 2

    again = cycle(root, manual_reason="refresh again")

    assert again.status == "skipped"
    assert again.steps["datasets"]["duplicate_of"] == retrain.run_id
    assert (
        again.steps["datasets"]["idempotency_key"] == retrain.steps["datasets"]["idempotency_key"]
    )
    assert retrain.run_id in again.outcome
    assert "train" not in again.steps and again.version is None
    with Workspace.open(root) as ws:
        assert [v.version for v in ws.registry.versions(MODEL)] == [2, 1]
        assert ws.journal.get(again.run_id).status == "skipped"
        assert "run.skipped" in [e["action"] for e in audit_events(ws)]


# -- a worse candidate --------------------------------------------------------------------------


def test_worse_candidate_is_rejected_and_cannot_be_promoted(new_ws: NewWorkspace) -> None:
    root = new_ws()
    add_batch(root, "b1", synthetic_batch(1, 400, start_day=0))
    cycle(root)
    # the next candidate ignores its features: roc_auc 0.5 against a champion near 0.9
    edit_spec(
        root,
        "estimator: sklearn.linear_model.LogisticRegression\n  params: {max_iter: 200}",
        "estimator: sklearn.dummy.DummyClassifier\n  params: {strategy: prior}",
    )

    result = cycle(root, manual_reason="try a baseline")

    assert result.status == "succeeded"
    assert (result.version, result.promoted) == (2, False)
    assert result.outcome.startswith("version 2 rejected: failed:")
    decision = result.steps["evaluate"]["decision"]
    assert decision["passed"] is False
    assert decision["candidate_metric"] < decision["champion_metric"]
    vs = next(g for g in decision["gates"] if g["name"] == "vs_champion")
    assert vs["passed"] is False
    assert "worse than the champion" in vs["reason"]
    with Workspace.open(root) as ws:
        v2 = ws.registry.get(MODEL, 2)
        assert (v2.status, v2.gates_passed, v2.aliases) == ("READY", False, ())
        assert v2.decision["passed"] is False
        assert ws.registry.get_alias(MODEL, CHAMPION) == 1
        with pytest.raises(PolicyError, match="gates"):
            promote(ws.registry, MODEL, 2, actor="approver", reason="force it")
        assert ws.registry.get_alias(MODEL, CHAMPION) == 1
        assert [(m.from_version, m.to_version) for m in ws.registry.history(MODEL)] == [(None, 1)]


# -- one cycle at a time -------------------------------------------------------------------------


@pytest.fixture
def live_process() -> Iterator[subprocess.Popen[bytes]]:
    """A live process of this host, to stand for another cycle holding the lease."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_lease_held_by_live_holder_blocks_the_cycle_and_changes_nothing(
    new_ws: NewWorkspace, live_process: subprocess.Popen[bytes]
) -> None:
    root = new_ws()
    add_batch(root, "b1", synthetic_batch(1, 400, start_day=0))
    holder = f"{socket.gethostname()}:{live_process.pid}:othercycle"
    with Workspace.open(root) as ws:
        ws.leases.acquire(f"cycle:{MODEL}", holder)
        before = table_counts(ws)

        with pytest.raises(LeaseHeldError, match=holder):
            run_cycle(ws, actor="t")

        assert table_counts(ws) == before
        assert ws.journal.runs(MODEL) == []
        assert ws.ledger.batches(MODEL) == []

    # once that holder is gone, the dead-PID probe frees the lease for the next cycle
    live_process.kill()
    live_process.wait()
    result = cycle(root)
    assert (result.status, result.version, result.promoted) == ("succeeded", 1, True)


def test_a_schedule_tick_is_used_up_when_another_trigger_fired_first(
    make_workspace: NewWorkspace,
) -> None:
    """Data volume and an hourly schedule fire together: the version is recorded under
    data volume, and the tick it also covered must not retrain the same data again."""
    root = make_workspace()
    edit_spec(
        root,
        "  - manual: {}\n",
        '  - manual: {}\n  - schedule: {cron: "0 * * * *", timezone: UTC}\n',
    )
    now = [datetime(2026, 11, 25, 10, 30, tzinfo=UTC)]

    def run() -> CycleResult:
        with Workspace.open(root, clock=lambda: now[0]) as ws:
            return run_cycle(ws, actor="t")

    add_batch(root, "b1", synthetic_batch(1, 400, start_day=0))
    assert run().version == 1
    now[0] += timedelta(hours=2)
    add_batch(root, "b2", synthetic_batch(2, 700, start_day=1))
    both = run()
    decide = both.steps["decide"]
    assert (decide["kind"], [a["kind"] for a in decide["numbers"]["also"]]) == (
        "data_volume",
        ["schedule"],
    )
    again = run()
    assert again.version is None, again.outcome
    assert "schedule '0 * * * *': next at 2026-11-25 13:00 UTC" in again.outcome
