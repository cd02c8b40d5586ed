"""Leases: one holder of a named lease at a time, across processes and crashes.

A lease row holds the holder's identity (``host:pid:nonce``), a fencing token that
grows on every take-over, and an expiry. A lease can be taken when it is free, when it
has expired, or when its holder is a process on this host that no longer exists (a
dead-PID probe, so a SIGKILLed cycle does not block the next one for a whole TTL).
A live holder is never preempted before its lease expires. A released lease keeps its
row (so the next token still grows) with its holder marked ``... (released)``: free to
take at once, and told apart from a lease whose holder stopped renewing without
releasing it (``retrainer doctor`` reports those).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from retrainer.errors import ConflictError, LeaseHeldError
from retrainer.registry.db import Database, as_utc
from retrainer.registry.tables import Lease

__all__ = ["RELEASED", "Leases", "holder_is_dead", "is_released", "lease_state", "new_holder_id"]

DEFAULT_TTL = timedelta(minutes=15)
RELEASED = " (released)"
"""What a released lease's holder ends with."""
_INSERT_RACE_RETRIES = 3
log = logging.getLogger(__name__)


def new_holder_id() -> str:
    """``host:pid:nonce`` for this process."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def is_released(holder: str) -> bool:
    """Whether a lease with this holder was released (free whatever its expiry)."""
    return holder.endswith(RELEASED)


def holder_is_dead(holder: str) -> bool:
    """Whether ``holder`` (``host:pid:nonce``) names a process on this host that has
    exited. False for another host, this process, or a pid this user cannot probe."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def lease_state(holder: str, expires_at: datetime, now: datetime) -> str:
    """What a lease row means at ``now``: ``released``; ``held`` (live); ``dead`` (its
    holder, a process of this host, has exited); ``overdue`` (expired unreleased, but its
    holder on this host still runs: a step longer than the lease, or hung); ``expired``
    (unreleased and not renewed in time: its holder elsewhere crashed or was cut off)."""
    if is_released(holder):
        return "released"
    if holder_is_dead(holder):
        return "dead"
    if as_utc(expires_at) > now:
        return "held"
    host, _, rest = holder.partition(":")
    here = host == socket.gethostname() and rest.partition(":")[0].isdigit()
    return "overdue" if here else "expired"


class Leases:
    """Acquire, renew and release named leases in the store."""

    def __init__(self, db: Database, *, ttl: timedelta = DEFAULT_TTL) -> None:
        self.db = db
        self.ttl = ttl

    def acquire(self, name: str, holder: str) -> int:
        """Take ``name`` for ``holder`` and return the fencing token.

        Raises LeaseHeldError naming the live holder and when its lease expires. Two
        callers racing to create a lease nobody held yet behave as if one came first:
        the loser's insert fails on the primary key, and it looks again (and is told
        who holds the lease, or takes it if that holder is already gone).
        """

        def fn(s: Session) -> int:
            now = self.db.clock()
            row = s.get(Lease, name, with_for_update=True)
            if row is None:
                s.add(Lease(name=name, holder=holder, token=1, expires_at=now + self.ttl))
                s.flush()  # a racing first insert fails here, on the primary key
                return 1
            free = (
                row.holder == holder
                or is_released(row.holder)
                or as_utc(row.expires_at) <= now
                or holder_is_dead(row.holder)
            )
            if not free:
                raise LeaseHeldError(_held(name, row.holder, as_utc(row.expires_at)))
            row.holder, row.token, row.expires_at = holder, row.token + 1, now + self.ttl
            return row.token

        for attempt in range(_INSERT_RACE_RETRIES):
            try:
                return self.db.transaction(fn)
            except IntegrityError as exc:
                if attempt == _INSERT_RACE_RETRIES - 1:
                    raise ConflictError(
                        f"lease {name!r} kept changing while it was being taken; retry"
                    ) from exc
                log.debug("lease %r was created concurrently; looking again", name)
        raise AssertionError("unreachable")  # pragma: no cover

    def renew(self, name: str, holder: str, token: int) -> None:
        """Extend the lease. Raises LeaseHeldError if it was taken over (stale token)."""

        def fn(s: Session) -> None:
            row = s.get(Lease, name, with_for_update=True)
            if row is None or row.holder != holder or row.token != token:
                who = "nobody" if row is None else row.holder
                raise LeaseHeldError(f"lease {name!r} was lost to {who}; stopping")
            row.expires_at = self.db.clock() + self.ttl

        self.db.transaction(fn)

    def release(self, name: str, holder: str, token: int) -> None:
        """Give the lease up (a no-op if it was already taken over or released)."""

        def fn(s: Session) -> None:
            row = s.get(Lease, name, with_for_update=True)
            if row is not None and row.holder == holder and row.token == token:
                row.holder = holder + RELEASED
                row.expires_at = self.db.clock() - timedelta(seconds=1)

        self.db.transaction(fn)


def _held(name: str, holder: str, expires: datetime) -> str:
    return (
        f"{name!r} is held by {holder} until {expires:%Y-%m-%d %H:%M:%S} UTC; "
        "another cycle is running (wait for it, or for the lease to expire)"
    )
