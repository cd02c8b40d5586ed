"""Store contract, audit chain: one event per change, append-only, tamper-evident (GOV-01)."""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import JSON, DateTime, bindparam, func, select, text
from sqlalchemy.exc import DBAPIError

from retrainer.errors import ConflictError, PolicyError
from retrainer.registry import (
    Database,
    Registry,
    append_event,
    list_events,
    promote,
    rollback,
    verify_chain,
)
from retrainer.registry.audit import GENESIS, event_hash
from retrainer.registry.tables import AuditEvent

SHA = "ab" * 32
PASSED = {"passed": True}


def _events(db: Database) -> list[AuditEvent]:
    with db.session() as s:
        return list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def _count(db: Database) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def _rows(db: Database) -> list[tuple[Any, ...]]:
    with db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT * FROM audit_events ORDER BY id"))]


def _verify(db: Database) -> Any:
    with db.session() as s:
        return verify_chain(s)


def _append(db: Database, subject: str, payload: dict[str, Any] | None = None) -> None:
    db.transaction(
        lambda s: append_event(
            s, at=db.clock(), actor="tester", action="test", subject=subject, payload=payload
        )
    )


# --- one event per state change ----------------------------------------------------------


def test_every_mutating_registry_call_appends_exactly_one_event(db: Database) -> None:
    reg = Registry(db)
    expected_actions: list[tuple[str, str]] = []

    def step(call: Callable[[], Any], action: str, subject: str) -> Any:
        before = _count(db)
        out = call()
        assert _count(db) == before + 1, f"{action} appended {_count(db) - before} events"
        last = _events(db)[-1]
        assert (last.action, last.subject) == (action, subject)
        expected_actions.append((action, subject))
        return out

    def new() -> int:
        return reg.create_version("rain", run_id="r1", actor="trainer", params={}, lineage={})

    v1 = step(new, "version.create", "rain:1")
    step(lambda: reg.attach_artifact("rain", v1, SHA, actor="t"), "version.artifact", "rain:1")
    step(
        lambda: reg.mark_ready("rain", v1, metrics={}, decision=PASSED, actor="t"),
        "version.ready",
        "rain:1",
    )
    step(
        lambda: promote(reg, "rain", v1, actor="a", reason="r", expected=None),
        "promote",
        "rain@champion",
    )
    v2 = step(new, "version.create", "rain:2")
    reg.attach_artifact("rain", v2, SHA, actor="t")
    reg.mark_ready("rain", v2, metrics={}, decision=PASSED, actor="t")
    step(
        lambda: reg.move_alias("rain", "challenger", v2, expected=None, actor="a", reason="r"),
        "alias.move",
        "rain@challenger",
    )
    step(
        lambda: promote(reg, "rain", v2, actor="a", reason="r", expected=v1),
        "promote",
        "rain@champion",
    )
    step(lambda: rollback(reg, "rain", actor="a", reason="r"), "rollback", "rain@champion")
    v3 = step(new, "version.create", "rain:3")
    step(
        lambda: reg.set_status("rain", v3, "FAILED", actor="t", reason="crash"),
        "version.failed",
        "rain:3",
    )
    step(
        lambda: reg.set_status("rain", v2, "QUARANTINED", actor="t", reason="leak"),
        "version.quarantined",
        "rain:2",
    )

    # a refused promotion is an attempt worth a record: one event each
    def refused(error: type[Exception], version: int, expected: int) -> Callable[[], None]:
        def call() -> None:
            with pytest.raises(error):
                promote(reg, "rain", version, actor="a", reason="r", expected=expected)

        return call

    step(refused(PolicyError, v2, v1), "promote.refused", "rain:2")
    step(refused(ConflictError, v1, v2), "promote.refused", "rain:1")

    # other refused or no-op calls append nothing
    before = _count(db)
    with pytest.raises(ConflictError):
        reg.mark_ready("rain", v3, metrics={}, decision=PASSED, actor="t")
    reg.set_status("rain", v3, "FAILED", actor="t", reason="again")
    assert _count(db) == before
    assert _verify(db).ok


def test_actor_and_payload_are_recorded(db: Database) -> None:
    reg = Registry(db)
    reg.create_version("rain", run_id="run-7", actor="svc-trainer", params={}, lineage={})
    (event,) = _events(db)
    assert event.actor == "svc-trainer"
    assert event.payload == {"run_id": "run-7"}


# --- the chain ---------------------------------------------------------------------------


def test_an_empty_chain_verifies(db: Database) -> None:
    report = _verify(db)
    assert (report.ok, report.events, report.head, report.first_broken_id) == (
        True,
        0,
        GENESIS,
        None,
    )


def test_a_fresh_chain_links_every_event_to_the_one_before(db: Database) -> None:
    for i in range(5):
        _append(db, f"thing/{i}", {"i": i, "nested": {"x": [1.5, None, "é"]}})
    events = _events(db)
    assert events[0].prev_hash == GENESIS
    for before, after in itertools.pairwise(events):
        assert after.prev_hash == before.hash
    report = _verify(db)
    assert (report.ok, report.events, report.head) == (True, 5, events[-1].hash)


def test_list_events_filters_by_literal_subject_prefix(db: Database) -> None:
    for subject in ("rain:1", "rain@champion", "rainy:1", "r%n:1", "snow:1"):
        _append(db, subject)
    assert [e.subject for e in _listed(db, "rain")] == ["rain:1", "rain@champion", "rainy:1"]
    assert [e.subject for e in _listed(db, "r%")] == ["r%n:1"]
    assert [e.subject for e in _listed(db, None, limit=2)] == ["r%n:1", "snow:1"]


def _listed(db: Database, prefix: str | None, limit: int = 50) -> list[AuditEvent]:
    with db.session() as s:
        return list_events(s, limit=limit, subject_prefix=prefix)


# --- append-only, enforced by the database -----------------------------------------------


REFUSED = [
    "UPDATE audit_events SET actor = 'mallory'",
    "UPDATE audit_events SET payload_hash = prev_hash WHERE id = 2",
    "DELETE FROM audit_events",
    "DELETE FROM audit_events WHERE id = 3",
]


def test_update_and_delete_are_refused_by_the_database(
    db: Database, subtests: pytest.Subtests
) -> None:
    for i in range(3):
        _append(db, f"thing/{i}")
    before = _rows(db)
    for statement in REFUSED:
        with subtests.test(msg=statement):
            with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
                conn.execute(text(statement))
            assert _rows(db) == before
    assert _verify(db).ok


# --- tampering is detected ---------------------------------------------------------------


def _forge(
    db: Database,
    *,
    prev_hash: str | None = None,
    hash_: str | None = None,
    payload_hash: str | None = None,
) -> int:
    """Insert an event by raw SQL (as an attacker with database access would); its id."""
    head = _events(db)[-1].hash
    at = datetime(2030, 1, 1, tzinfo=UTC)
    payload = {"to": 99}
    real_payload_hash = hashlib.sha256(b'{"to":99}').hexdigest()
    prev = prev_hash or head
    p_hash = payload_hash or real_payload_hash
    link = hash_ or event_hash(
        prev_hash=prev,
        at=at,
        actor="mallory",
        action="promote",
        subject="rain@champion",
        payload_hash=p_hash,
    )
    insert = text(
        "INSERT INTO audit_events (at, actor, action, subject, payload, payload_hash, "
        "prev_hash, hash) VALUES (:at, 'mallory', 'promote', 'rain@champion', :payload, "
        ":payload_hash, :prev_hash, :hash)"
    ).bindparams(bindparam("at", type_=DateTime(timezone=True)), bindparam("payload", type_=JSON))
    with db.engine.begin() as conn:
        conn.execute(
            insert,
            {"at": at, "payload": payload, "payload_hash": p_hash, "prev_hash": prev, "hash": link},
        )
        return int(conn.execute(text("SELECT max(id) FROM audit_events")).scalar_one())


def test_a_correctly_linked_raw_insert_still_verifies(db: Database) -> None:
    """The control for the forgery tests below: only the broken field makes them fail."""
    _append(db, "thing/1")
    _forge(db)
    assert _verify(db).ok


@pytest.mark.parametrize(
    ("forgery", "problem"),
    [
        ({"hash_": "f" * 64}, "fields do not match"),
        ({"prev_hash": "e" * 64}, "prev_hash"),
        ({"prev_hash": GENESIS}, "prev_hash"),
        ({"payload_hash": "d" * 64}, "payload"),
    ],
    ids=["wrong-hash", "wrong-prev", "genesis-prev", "wrong-payload-hash"],
)
def test_a_forged_row_is_the_first_broken_link(
    db: Database, forgery: dict[str, str], problem: str
) -> None:
    for i in range(3):
        _append(db, f"thing/{i}")
    forged = _forge(db, **forgery)
    _append(db, "after/forgery")  # honest appends after it do not hide it
    report = _verify(db)
    assert report.ok is False
    assert report.first_broken_id == forged
    assert problem in (report.problem or "")


def _disable_append_only(db: Database, conn: Any) -> None:
    if db.dialect == "sqlite":
        conn.execute(text("DROP TRIGGER audit_events_no_update"))
        conn.execute(text("DROP TRIGGER audit_events_no_delete"))
    else:
        conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))


@pytest.mark.parametrize(
    ("edit", "broken"),
    [
        ("UPDATE audit_events SET actor = 'mallory' WHERE id = 3", 3),
        ("UPDATE audit_events SET at = at WHERE id = 2", None),
        ("DELETE FROM audit_events WHERE id = 2", 3),
        ("DELETE FROM audit_events WHERE id = 5", None),
    ],
    ids=["edit-actor", "no-op-edit", "delete-middle", "delete-head"],
)
def test_edits_behind_the_triggers_back_are_detected(
    db: Database, edit: str, broken: int | None
) -> None:
    """A superuser who disables the triggers still cannot edit or delete unseen.

    (Truncating the newest event is only caught against an exported head: GOV-01.)
    """
    for i in range(5):
        _append(db, f"thing/{i}", {"i": i})
    with db.engine.begin() as conn:
        _disable_append_only(db, conn)
        conn.execute(text(edit))
    report = _verify(db)
    assert report.first_broken_id == broken
    assert report.ok is (broken is None)


# --- concurrency -------------------------------------------------------------------------


def test_concurrent_appends_keep_the_chain_linear(db: Database) -> None:
    threads_n, per_thread = 8, 5
    barrier = threading.Barrier(threads_n)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        barrier.wait(timeout=30)
        try:
            for i in range(per_thread):
                _append(db, f"thread/{t}/{i}")
        except BaseException as exc:  # noqa: BLE001 - any exception here fails the test
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    assert errors == []
    events = _events(db)
    assert len(events) == threads_n * per_thread
    prevs = [e.prev_hash for e in events]
    assert len(set(prevs)) == len(prevs), "two events share a prev_hash: the chain forked"
    report = _verify(db)
    assert (report.ok, report.events) == (True, threads_n * per_thread)


# --- timestamps --------------------------------------------------------------------------


def test_chain_verifies_when_the_clock_is_not_in_utc(db: Database) -> None:
    """The clock is injectable; an aware non-UTC clock must not break the chain."""
    cest = timezone(timedelta(hours=2))
    local = Database(db.engine, clock=lambda: datetime(2026, 6, 1, 14, 0, tzinfo=cest))
    Registry(local).create_version("rain", run_id=None, actor="t", params={}, lineage={})
    (event,) = _events(db)
    assert event.at.replace(tzinfo=event.at.tzinfo or UTC) == datetime(
        2026, 6, 1, 12, 0, tzinfo=UTC
    )
    assert _verify(db).ok
