"""Store contract, run journal: resumable runs, idempotent steps, idempotency keys (FT-06)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select

from retrainer.errors import NotFoundError
from retrainer.orchestrate.journal import Journal
from retrainer.registry import Database, verify_chain
from retrainer.registry.tables import AuditEvent, RunStep

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    """A clock that moves one second each time it is read."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def journal(db: Database) -> Journal:
    return Journal(Database(db.engine, clock=Clock()))


def _events(db: Database) -> list[AuditEvent]:
    with db.session() as s:
        return list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def _step_rows(db: Database, run_id: str) -> int:
    with db.session() as s:
        return int(
            s.scalar(select(func.count()).select_from(RunStep).where(RunStep.run_id == run_id)) or 0
        )


# --- open and resume ---------------------------------------------------------------------


def test_open_run_starts_a_run(journal: Journal, db: Database) -> None:
    run, resumed = journal.open_run("rain", actor="scheduler", request={"trigger": "drift"})
    assert resumed is False
    assert (run.model, run.status, run.actor) == ("rain", "running", "scheduler")
    assert run.trigger == {"trigger": "drift"}
    assert run.steps == {}
    assert run.finished_at is None
    assert journal.get(run.id).status == "running"
    (event_,) = _events(db)
    assert (event_.action, event_.subject) == ("run.start", f"run/{run.id}")


def test_an_unfinished_run_is_resumed_with_its_steps(journal: Journal, db: Database) -> None:
    run, _ = journal.open_run("rain", actor="scheduler", request={})
    journal.step_done(run.id, "ingest", {"batches": [1, 2]}, started_at=T0)
    journal.step_done(run.id, "train", {"version": 3}, started_at=T0)

    again, resumed = journal.open_run("rain", actor="scheduler", request={"other": True})
    assert resumed is True
    assert again.id == run.id
    assert again.trigger == {}  # the original request, not the new one
    assert again.steps == {"ingest": {"batches": [1, 2]}, "train": {"version": 3}}
    assert list(again.steps) == ["ingest", "train"]
    assert _events(db)[-1].action == "run.resume"

    other, other_resumed = journal.open_run("snow", actor="scheduler", request={})
    assert other_resumed is False
    assert other.id != run.id


def test_a_finished_run_is_not_resumed(journal: Journal) -> None:
    run, _ = journal.open_run("rain", actor="a", request={})
    journal.finish(run.id, status="succeeded", outcome="promoted 2", actor="a")
    fresh, resumed = journal.open_run("rain", actor="a", request={})
    assert resumed is False
    assert fresh.id != run.id
    assert [r.id for r in journal.runs("rain")] == [fresh.id, run.id]


# --- steps -------------------------------------------------------------------------------


def test_step_done_is_idempotent(journal: Journal, db: Database) -> None:
    run, _ = journal.open_run("rain", actor="a", request={})
    journal.step_done(run.id, "ingest", {"rows": 10}, started_at=T0)
    journal.step_done(run.id, "train", {"version": 1}, started_at=T0)
    journal.step_done(run.id, "ingest", {"rows": 10}, started_at=T0)
    journal.step_done(run.id, "ingest", {"rows": 12}, started_at=T0)
    assert _step_rows(db, run.id) == 2
    steps = journal.get(run.id).steps
    assert list(steps) == ["ingest", "train"]  # a repeat keeps the step's place
    assert steps["ingest"] == {"rows": 12}


# --- idempotency keys (FT-06) ------------------------------------------------------------


def test_the_second_run_claiming_a_key_gets_the_first_runs_id(journal: Journal) -> None:
    first, _ = journal.open_run("rain", actor="scheduler", request={})
    assert journal.claim_key(first.id, "k" * 64) is None
    assert journal.claim_key(first.id, "k" * 64) is None  # claiming again is harmless
    journal.finish(first.id, status="succeeded", outcome="done", actor="scheduler")

    second, _ = journal.open_run("rain", actor="manual", request={})
    assert journal.claim_key(second.id, "k" * 64) == first.id
    assert journal.claim_key(second.id, "j" * 64) is None


def test_ft06_concurrent_claims_of_one_key_have_one_owner(journal: Journal, db: Database) -> None:
    """Two runs claim the same key at once; on PostgreSQL both are held right after looking
    (and finding no holder) so that both really try to write the key."""
    a, _ = journal.open_run("rain", actor="scheduler", request={})
    b, _ = journal.open_run("rain-shadow", actor="manual", request={})
    start = threading.Barrier(2)
    both_looked = threading.Barrier(2)
    outcomes: dict[str, Any] = {}
    looked: set[int] = set()

    def hold(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        first_look = threading.get_ident() not in looked
        if first_look and statement.lstrip().startswith("SELECT runs.id"):
            looked.add(threading.get_ident())
            both_looked.wait(timeout=30)

    def claim(run_id: str) -> None:
        start.wait(timeout=30)
        try:
            outcomes[run_id] = journal.claim_key(run_id, "k" * 64)
        except BaseException as exc:  # noqa: BLE001 - the test inspects what came out
            outcomes[run_id] = exc

    if db.dialect == "postgresql":  # SQLite serialises the two transactions anyway
        event.listen(db.engine, "after_cursor_execute", hold)
    try:
        threads = [threading.Thread(target=claim, args=(r,)) for r in (a.id, b.id)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        if event.contains(db.engine, "after_cursor_execute", hold):
            event.remove(db.engine, "after_cursor_execute", hold)
    winners = [r for r, got in outcomes.items() if got is None]
    assert len(winners) == 1, outcomes
    (loser,) = {a.id, b.id} - set(winners)
    assert outcomes[loser] == winners[0]
    assert journal.claim_key(loser, "k" * 64) == winners[0]


# --- finish ------------------------------------------------------------------------------


def test_finish_sets_the_status_and_is_audited(journal: Journal, db: Database) -> None:
    run, _ = journal.open_run("rain", actor="scheduler", request={})
    before = len(_events(db))
    journal.finish(run.id, status="succeeded", outcome="promoted rain:2", actor="scheduler")
    done = journal.get(run.id)
    assert (done.status, done.outcome, done.error) == ("succeeded", "promoted rain:2", None)
    assert done.finished_at is not None
    assert done.finished_at > done.started_at
    events = _events(db)
    assert len(events) == before + 1
    assert (events[-1].action, events[-1].subject, events[-1].actor) == (
        "run.succeeded",
        f"run/{run.id}",
        "scheduler",
    )
    assert events[-1].payload == {"model": "rain", "outcome": "promoted rain:2", "error": None}
    with db.session() as s:
        assert verify_chain(s).ok


def test_a_failed_run_records_the_error_and_the_failed_step(journal: Journal, db: Database) -> None:
    run, _ = journal.open_run("rain", actor="a", request={})
    journal.step_done(run.id, "ingest", {"rows": 10}, started_at=T0)
    journal.finish(
        run.id,
        status="failed",
        outcome="train failed",
        actor="a",
        error="boom",
        failed_step="train",
    )
    failed = journal.get(run.id)
    assert (failed.status, failed.error) == ("failed", "boom")
    assert failed.steps == {"ingest": {"rows": 10}}  # a failed step is not a finished one
    assert _step_rows(db, run.id) == 2
    assert _events(db)[-1].action == "run.failed"


def test_unknown_runs_are_not_found(journal: Journal, db: Database) -> None:
    before = len(_events(db))
    with pytest.raises(NotFoundError, match="nope"):
        journal.get("nope")
    with pytest.raises(NotFoundError, match="nope"):
        journal.finish("nope", status="failed", outcome="x", actor="a")
    assert len(_events(db)) == before
