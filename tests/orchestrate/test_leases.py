"""Store contract, leases: one live holder, fencing tokens, expiry, dead-PID take-over (FT-08)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import event

from retrainer.errors import ConflictError, LeaseHeldError
from retrainer.orchestrate.lease import Leases, new_holder_id
from retrainer.registry import Database

HOST = socket.gethostname()
TTL = timedelta(minutes=15)
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand (no sleeping)."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def leases(db: Database, clock: Clock) -> Leases:
    return Leases(Database(db.engine, clock=clock), ttl=TTL)


def _holder(pid: int, nonce: str = "n0nce") -> str:
    return f"{HOST}:{pid}:{nonce}"


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The pid of a process on this host that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=60)
    with pytest.raises(ProcessLookupError):
        os.kill(child.pid, 0)
    return child.pid


def test_new_holder_ids_name_this_host_and_process() -> None:
    a, b = new_holder_id(), new_holder_id()
    assert a.startswith(f"{HOST}:{os.getpid()}:")
    assert a != b


def test_tokens_start_at_one_and_grow_on_every_take_over(leases: Leases, clock: Clock) -> None:
    tokens = [leases.acquire("cycle:rain", "other-host:1:a")]
    for holder in ("other-host:2:b", "other-host:3:c"):
        clock.advance(TTL + timedelta(seconds=1))
        tokens.append(leases.acquire("cycle:rain", holder))
    assert tokens == [1, 2, 3]
    assert leases.acquire("cycle:snow", "other-host:1:a") == 1  # per name


def test_the_holder_itself_may_acquire_again(leases: Leases) -> None:
    holder = new_holder_id()
    first = leases.acquire("cycle:rain", holder)
    assert leases.acquire("cycle:rain", holder) > first


def test_a_live_holder_is_not_preempted_before_expiry(
    leases: Leases, clock: Clock, subtests: pytest.Subtests
) -> None:
    live = {
        "this pid, another nonce": _holder(os.getpid(), "another1"),
        "the parent pid": _holder(os.getppid()),
        "another host": "elsewhere.example:999999999:x",
    }
    for what, holder in live.items():
        with subtests.test(msg=what):
            name = f"cycle:{what}"
            assert leases.acquire(name, holder) == 1
            clock.advance(TTL - timedelta(seconds=1))
            with pytest.raises(LeaseHeldError, match=f"held by {holder}") as info:
                leases.acquire(name, new_holder_id())
            assert isinstance(info.value, ConflictError)
            assert name in str(info.value)
            # the holder still holds it with the same token: it can renew
            leases.renew(name, holder, 1)


def test_an_expired_lease_is_taken(leases: Leases, clock: Clock) -> None:
    holder = _holder(os.getppid())
    leases.acquire("cycle:rain", holder)
    clock.advance(TTL)  # expiry instant: free
    assert leases.acquire("cycle:rain", "next:1:x") == 2
    with pytest.raises(LeaseHeldError, match="held by next:1:x"):
        leases.acquire("cycle:rain", holder)


def test_ft08_a_dead_holder_on_this_host_is_taken_at_once(leases: Leases, dead_pid: int) -> None:
    dead = _holder(dead_pid)
    assert leases.acquire("cycle:rain", dead) == 1
    assert leases.acquire("cycle:rain", new_holder_id()) == 2  # no clock advance
    with pytest.raises(LeaseHeldError):
        leases.renew("cycle:rain", dead, 1)


def test_a_dead_pid_on_another_host_is_not_probed(leases: Leases, dead_pid: int) -> None:
    leases.acquire("cycle:rain", f"elsewhere.example:{dead_pid}:x")
    with pytest.raises(LeaseHeldError):
        leases.acquire("cycle:rain", new_holder_id())


def test_renew_extends_the_lease(leases: Leases, clock: Clock) -> None:
    holder = _holder(os.getppid())
    token = leases.acquire("cycle:rain", holder)
    clock.advance(TTL - timedelta(minutes=1))
    leases.renew("cycle:rain", holder, token)
    clock.advance(timedelta(minutes=5))  # past the first expiry, within the renewed one
    with pytest.raises(LeaseHeldError):
        leases.acquire("cycle:rain", "next:1:x")


def test_renew_with_a_stale_token_is_refused(leases: Leases, clock: Clock) -> None:
    old = _holder(os.getppid(), "old")
    stale = leases.acquire("cycle:rain", old)
    clock.advance(TTL + timedelta(seconds=1))
    fresh = leases.acquire("cycle:rain", "next:1:x")
    assert fresh == stale + 1
    with pytest.raises(LeaseHeldError, match="lost to next:1:x"):
        leases.renew("cycle:rain", old, stale)
    with pytest.raises(LeaseHeldError):
        leases.renew("cycle:rain", "next:1:x", stale)  # right holder, stale token
    with pytest.raises(LeaseHeldError, match="nobody"):
        leases.renew("cycle:never", old, 1)
    leases.renew("cycle:rain", "next:1:x", fresh)


def test_release_lets_another_holder_in(leases: Leases) -> None:
    first = _holder(os.getppid(), "first")
    token = leases.acquire("cycle:rain", first)
    leases.release("cycle:rain", first, token)
    assert leases.acquire("cycle:rain", "next:1:x") == token + 1


def test_a_stale_release_does_not_free_the_new_holders_lease(leases: Leases, clock: Clock) -> None:
    old = _holder(os.getppid(), "old")
    stale = leases.acquire("cycle:rain", old)
    clock.advance(TTL + timedelta(seconds=1))
    leases.acquire("cycle:rain", "next:1:x")
    leases.release("cycle:rain", old, stale)  # no-op
    with pytest.raises(LeaseHeldError, match="held by next:1:x"):
        leases.acquire("cycle:rain", "third:1:x")


def test_concurrent_first_acquires_have_exactly_one_winner(db: Database) -> None:
    """Two workers start on a lease nobody held yet: one wins, the other is told who holds it.

    On PostgreSQL both transactions are held right after their first ``SELECT ... FOR
    UPDATE`` (which finds no row, so locks nothing) until both have looked: a certain
    race, which the loser's insert loses on the primary key (a later look, on retry, is
    not held). SQLite serialises the two transactions (``BEGIN IMMEDIATE``), so no hook.
    """
    leases = Leases(db, ttl=TTL)
    start = threading.Barrier(2)
    both_looked = threading.Barrier(2)
    looked: set[int] = set()
    inserts: list[str] = []

    def hold(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM leases" in statement and "FOR UPDATE" in statement:
            me = threading.get_ident()
            if me not in looked:
                looked.add(me)
                both_looked.wait(timeout=30)

    def count_inserts(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("INSERT INTO leases"):
            inserts.append(statement)

    outcomes: list[object] = [None, None]

    def attempt(i: int) -> None:
        start.wait(timeout=30)
        try:
            outcomes[i] = leases.acquire("cycle:rain", f"other-host:{i}:x")
        except BaseException as exc:  # noqa: BLE001 - the test inspects what came out
            outcomes[i] = exc

    if db.dialect == "postgresql":
        event.listen(db.engine, "after_cursor_execute", hold)
        event.listen(db.engine, "before_cursor_execute", count_inserts)
    try:
        threads = [threading.Thread(target=attempt, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        if event.contains(db.engine, "after_cursor_execute", hold):
            event.remove(db.engine, "after_cursor_execute", hold)
        if event.contains(db.engine, "before_cursor_execute", count_inserts):
            event.remove(db.engine, "before_cursor_execute", count_inserts)
    assert sorted(map(type, outcomes), key=str) == sorted([int, LeaseHeldError], key=str), [
        repr(o) for o in outcomes
    ]
    assert 1 in outcomes
    winner = outcomes.index(1)
    (lost,) = [o for o in outcomes if isinstance(o, LeaseHeldError)]
    assert f"held by other-host:{winner}:x" in str(lost)
    if db.dialect == "postgresql":
        assert len(looked) == 2
        assert len(inserts) == 2  # the race was real: both looked, then both inserted


@pytest.mark.parametrize("hours", [2, -5])
def test_expiry_is_right_when_the_clock_is_not_in_utc(db: Database, hours: int) -> None:
    """The lease lasts exactly its TTL (not TTL plus or minus the clock's UTC offset)."""
    clock = Clock(T0.astimezone(timezone(timedelta(hours=hours))))
    leases = Leases(Database(db.engine, clock=clock), ttl=TTL)
    leases.acquire("cycle:rain", "other-host:1:a")
    clock.advance(TTL - timedelta(seconds=1))
    with pytest.raises(LeaseHeldError, match="until 2026-03-01 12:15:00 UTC"):
        leases.acquire("cycle:rain", "other-host:2:b")
    clock.advance(timedelta(seconds=2))
    assert leases.acquire("cycle:rain", "other-host:2:b") == 2
