"""The watch loop: run a cycle whenever work may be due, with one leader per model.

``watch`` elects a leader through a lease ``watch:<model>`` in the store (a fencing
token, a TTL renewed by a heartbeat thread, and the dead-PID probe of
:class:`~retrainer.orchestrate.lease.Leases`), so any number of ``retrainer watch``
processes can point at one workspace: one leads, the others poll the lease and take
over when the leader stops, dies (at once on the same host) or its lease expires.

The leader runs the ordinary :func:`~retrainer.orchestrate.cycle.run_cycle`, which
decides through the spec's triggers and retrain policy and never trains twice on the
same evidence. Watch only decides *when to look*. A cycle is **due**:

* on taking the lead: one catch-up cycle (resumes an interrupted run, ingests what
  arrived while nobody watched, fires a schedule missed during the downtime once);
* when the source has batches past its watermark;
* when a schedule trigger has ticked since the last cycle of this leader (however many
  ticks passed, that is one cycle: the trigger itself fires once for missed ticks);
* when an unfinished run is waiting to be resumed;
* after a failed cycle, once its backoff has passed (no other cycle runs before that);
* after another process's cycle held the model (``retrainer run`` by hand), at the
  next check.

Otherwise the leader sleeps ``interval`` (the stop event wakes it). A stop request
ends the running cycle between two steps, leaving its run resumable, then releases
the lease.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrainer.errors import LeaseHeldError, RetrainerError
from retrainer.monitor.triggers import schedule_tick
from retrainer.orchestrate.cycle import CycleResult, run_cycle
from retrainer.orchestrate.lease import Leases, new_holder_id
from retrainer.registry.db import Clock, as_utc, utc_now
from retrainer.registry.tables import Lease

if TYPE_CHECKING:
    from retrainer.workspace import Workspace

__all__ = [
    "DEFAULT_INTERVAL",
    "DEFAULT_LEASE_TTL",
    "MAX_BACKOFF",
    "EventCallback",
    "WatchEvent",
    "watch",
]

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = timedelta(seconds=30)
DEFAULT_LEASE_TTL = timedelta(seconds=60)
MAX_BACKOFF = timedelta(hours=1)
"""Backoff after failed cycles doubles from ``interval`` up to this (or ``interval``)."""


@dataclass(frozen=True)
class WatchEvent:
    """Something the watch did, with a one-line ``message`` for people.

    ``kind`` is one of: ``leader`` (this process took the lead), ``waiting`` (another
    process leads; ``holder`` names it), ``lost`` (the lead was taken over), ``cycle``
    (a cycle ended: ``run_id``, ``status``, ``outcome``, ``version``, ``promoted``,
    and the ``reason`` it was due), ``busy`` (another cycle of the model was running;
    retried at the next check), ``error`` (a cycle failed: ``run_id`` if a run was
    opened, ``error`` as ``CODE: message``, ``retry_in`` seconds), ``idle`` (nothing
    was due) and ``stopped`` (the last event).
    """

    kind: str
    message: str
    at: datetime
    model: str
    holder: str | None = None
    reason: str | None = None
    run_id: str | None = None
    status: str | None = None
    outcome: str | None = None
    version: int | None = None
    promoted: bool | None = None
    error: str | None = None
    retry_in: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``at`` as ISO 8601)."""
        return {**asdict(self), "at": self.at.isoformat()}


EventCallback = Callable[[WatchEvent], None]


def watch(
    workspace_path: Path | str,
    *,
    actor: str,
    interval: timedelta = DEFAULT_INTERVAL,
    lease_ttl: timedelta = DEFAULT_LEASE_TTL,
    once: bool = False,
    stop_event: threading.Event | None = None,
    clock: Clock = utc_now,
    on_event: EventCallback | None = None,
) -> None:
    """Watch the workspace and run cycles for its model until stopped. Blocking.

    Args:
        workspace_path: The workspace folder (or its ``retrainer.yaml``).
        actor: Who the cycles run as (audit trail).
        interval: How often the leader looks for due work; followers poll the lease
            every ``min(interval, lease_ttl / 3)``.
        lease_ttl: Lifetime of the leader lease; renewed every ``lease_ttl / 3``.
        once: Take the lead, run one (catch-up) cycle and return. If another process
            leads, report ``waiting`` and return without a cycle.
        stop_event: Set it to stop: between two steps of a running cycle (its run
            stays resumable), or at once while waiting. The lease is released.
        clock: The store's clock; also decides when schedule triggers are due.
        on_event: Called with every :class:`WatchEvent`, from the calling thread.

    Raises:
        ValueError: ``interval`` or ``lease_ttl`` is not positive.
        RetrainerError: the workspace cannot be opened (bad spec, store unreachable).
            Errors inside a cycle do not end the watch: they are reported as ``error``
            events and the cycle is retried after a backoff.
    """
    for name, value in (("interval", interval), ("lease_ttl", lease_ttl)):
        if value <= timedelta(0):
            raise ValueError(f"watch: {name} must be a positive duration; got {value}")
    from retrainer.workspace import Workspace  # the composition root imports this package

    with Workspace.open(Path(workspace_path), clock=clock) as ws:
        _Watcher(
            ws,
            actor=actor,
            interval=interval,
            lease_ttl=lease_ttl,
            once=once,
            stop=stop_event or threading.Event(),
            on_event=on_event,
        ).run()


class _Heartbeat:
    """Renews the leader lease every ``period`` in a daemon thread.

    ``lost`` is set when the lease was taken over (or the thread died): the leader must
    step down. Store errors are retried at the next beat (the TTL leaves room for two).
    """

    def __init__(self, leases: Leases, name: str, holder: str, token: int, period: float) -> None:
        self.leases, self.name, self.holder, self.token = leases, name, holder, token
        self.period = period
        self.lost = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease {name}", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        try:
            while not self._done.wait(self.period):
                try:
                    self.leases.renew(self.name, self.holder, self.token)
                except LeaseHeldError:
                    return
                except RetrainerError as exc:
                    log.warning("could not renew lease %r (retrying): %s", self.name, exc)
        finally:
            if not self._done.is_set():
                self.lost.set()


class _Watcher:
    """The loop of one watch process: elect, lead (check, cycle, sleep), step down."""

    def __init__(
        self,
        ws: Workspace,
        *,
        actor: str,
        interval: timedelta,
        lease_ttl: timedelta,
        once: bool,
        stop: threading.Event,
        on_event: EventCallback | None,
    ) -> None:
        self.ws, self.actor, self.once, self.stop = ws, actor, once, stop
        self.interval, self.lease_ttl = interval, lease_ttl
        self.on_event = on_event
        self.clock = ws.db.clock
        self.model = ws.spec.model.name
        self.lease = f"watch:{self.model}"
        self.leases = Leases(ws.db, ttl=lease_ttl)
        self.holder = new_holder_id()
        self.schedules = [t.schedule for t in ws.spec.triggers if t.schedule is not None]
        self.failures = 0
        self.retry_at: datetime | None = None
        self.busy = False

    # -- the loop -----------------------------------------------------------------------

    def run(self) -> None:
        while not self.stop.is_set():
            token = self._elect()
            if token is None:
                break
            try:
                self._lead(token)
            finally:
                self.leases.release(self.lease, self.holder, token)
            if self.once:
                break
        self._emit("stopped", "stopped")

    def _elect(self) -> int | None:
        """Take the lead (the token), polling while another process leads; None if stopped."""
        poll = min(self.interval, self.lease_ttl / 3).total_seconds()
        shown: list[str | None] = []  # the leader last reported (once per leader)
        while not self.stop.is_set():
            try:
                token = self.leases.acquire(self.lease, self.holder)
            except LeaseHeldError:
                leader = self._leader()
                if shown != [leader]:
                    shown = [leader]
                    self._emit("waiting", f"waiting: leader is {_who(leader)}", holder=leader)
                if self.once:
                    return None
            except RetrainerError as exc:
                if self.once:
                    raise
                self._emit(
                    "error",
                    f"error: cannot take the lease {self.lease!r}: [{exc.code}] {exc}",
                    error=f"{exc.code}: {exc}",
                    retry_in=poll,
                )
            else:
                self._emit(
                    "leader",
                    f"leader: {_who(self.holder)} watches {self.model} "
                    f"(lease {self.lease}, ttl {_human(self.lease_ttl)}, "
                    f"checks every {_human(self.interval)})",
                    holder=self.holder,
                )
                return token
            self.stop.wait(poll)
        return None

    def _lead(self, token: int) -> None:
        """Check, cycle when due, sleep; until stopped or the lead is lost."""
        period = self.lease_ttl.total_seconds() / 3
        self.failures, self.retry_at, self.busy = 0, None, False
        with _Heartbeat(self.leases, self.lease, self.holder, token, period) as beat:
            ticks: list[datetime] = []  # the schedule ticks the last cycle covered
            first = True
            while not self.stop.is_set():
                if beat.lost.is_set():
                    leader = self._leader()
                    self._emit("lost", f"lost: the lead was taken by {_who(leader)}", holder=leader)
                    return
                reason = "catch-up on taking the lead" if first else self._due(ticks)
                first = False
                if reason is not None:
                    ticks = self._ticks(self.clock())  # this cycle covers the current ticks
                    self._cycle(reason, lambda: self.stop.is_set() or beat.lost.is_set())
                else:
                    self._emit("idle", f"idle: nothing due; next check in {_human(self.interval)}")
                if self.once:
                    return
                self.stop.wait(self.interval.total_seconds())

    def _due(self, ticks: list[datetime]) -> str | None:
        """Why a cycle should run now, or None."""
        now = self.clock()
        if self.retry_at is not None:  # after a failure nothing runs before the backoff
            return "retry after a failed cycle" if now >= self.retry_at else None
        if self.busy:
            return "retry: another cycle was running"
        for sched, handled in zip(self.schedules, ticks, strict=True):
            tick = schedule_tick(sched.cron, sched.timezone, as_utc(now))
            if tick > handled:
                return f"schedule '{sched.cron}' ticked at {tick:%Y-%m-%d %H:%M %Z}"
        try:
            unfinished = self.ws.journal.runs(self.model, limit=1, status="running")
            if unfinished:
                return f"run {unfinished[0].id} is unfinished"
            source = self.ws.source()
            new = source.discover(self.ws.ledger.watermark(self.model, source.uri))
        except RetrainerError as exc:  # the cycle meets it again and reports it with its run
            return f"checking for new batches failed ({exc.code})"
        return f"{len(new)} new batch(es) at the source" if new else None

    def _ticks(self, now: datetime) -> list[datetime]:
        return [schedule_tick(s.cron, s.timezone, as_utc(now)) for s in self.schedules]

    def _cycle(self, reason: str, stop: Callable[[], bool]) -> None:
        """One cycle; its end (or failure) becomes an event. Only RetrainerErrors are caught."""
        try:
            result = run_cycle(self.ws, actor=self.actor, stop=stop)
        except LeaseHeldError as exc:
            if not self.busy:
                self._emit(
                    "busy",
                    f"busy: another cycle of {self.model} is running ({exc}); "
                    f"retrying in {_human(self.interval)}",
                    reason=reason,
                    retry_in=self.interval.total_seconds(),
                )
            self.busy = True
            return
        except RetrainerError as exc:
            self._failed(reason, exc)
            return
        self.failures, self.retry_at, self.busy = 0, None, False
        self._emit_result(reason, result)

    def _failed(self, reason: str, exc: RetrainerError) -> None:
        self.busy = False
        self.failures += 1
        cap = max(self.interval, MAX_BACKOFF)
        backoff = min(self.interval * 2 ** min(self.failures - 1, 20), cap)
        self.retry_at = self.clock() + backoff
        run_id = self._failed_run(exc)
        where = f"run {run_id} failed" if run_id else "cycle failed"
        log.debug("cycle failed", exc_info=exc)
        self._emit(
            "error",
            f"error: {where} ({reason}): [{exc.code}] {exc}; the champion keeps serving; "
            f"retrying in {_human(backoff)}",
            reason=reason,
            run_id=run_id,
            status="failed",
            error=f"{exc.code}: {exc}",
            retry_in=backoff.total_seconds(),
        )

    def _emit_result(self, reason: str, result: CycleResult) -> None:
        resumed = " (resumed)" if result.resumed else ""
        self._emit(
            "cycle",
            f"cycle: run {result.run_id}{resumed} {result.status} ({reason}): {result.outcome}",
            reason=reason,
            run_id=result.run_id,
            status=result.status,
            outcome=result.outcome,
            version=result.version,
            promoted=result.promoted,
        )

    # -- helpers ------------------------------------------------------------------------

    def _failed_run(self, exc: RetrainerError) -> str | None:
        """The run the failed cycle opened (it is journaled with the error), if any."""
        try:
            newest = self.ws.journal.runs(self.model, limit=1)
        except RetrainerError:
            return None
        if newest and newest[0].status == "failed" and newest[0].error == str(exc):
            return newest[0].id
        return None

    def _leader(self) -> str | None:
        """The current holder of the watch lease, as stored (None if unknown)."""
        try:
            return self.ws.db.transaction(
                lambda s: getattr(s.get(Lease, self.lease), "holder", None)
            )
        except RetrainerError:
            return None

    def _emit(self, kind: str, message: str, **fields: Any) -> None:
        log.log(logging.DEBUG if kind == "idle" else logging.INFO, "%s", message)
        if self.on_event is not None:
            self.on_event(WatchEvent(kind, message, self.clock(), self.model, **fields))


def _who(holder: str | None) -> str:
    """``host:pid`` of a lease holder (``host:pid:nonce``)."""
    return "unknown" if holder is None else holder.rsplit(":", 1)[0]


def _human(value: timedelta) -> str:
    """``30s``, ``5m``, ``1h``, ``1m30s``, ``0.01s``."""
    seconds = value.total_seconds()
    if seconds >= 60 and seconds.is_integer():
        h, rest = divmod(int(seconds), 3600)
        m, s = divmod(rest, 60)
        return "".join(f"{n}{u}" for n, u in ((h, "h"), (m, "m"), (s, "s")) if n)
    return f"{seconds:g}s"
