"""``retrainer watch``: one leader per model, take-over, clean stops, due work, no duplicates.

Leadership, take-over and signals run the real CLI as processes (``python -m retrainer
watch --json``) on real SQLite; a reader thread collects each process's JSON events so
a test waits for an event (with a timeout), never for a fixed time. Schedules, backoff
and a busy model run the loop in-process with a clock the test moves by hand.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from conftest import add_batch, synthetic_batch
from retrainer.orchestrate import STEPS, WatchEvent, watch
from retrainer.orchestrate.lease import Leases
from retrainer.registry import CHAMPION, list_events
from retrainer.registry.db import as_utc
from retrainer.registry.tables import Lease, RunStep
from retrainer.workspace import Workspace

MODEL = "toy"
RETRAINER_WATCH = [sys.executable, "-m", "retrainer", "watch"]
HERE = Path(__file__).resolve().parent
TIMEOUT = 120.0  # generous upper bounds for slow machines; nothing waits for them on success
NewWorkspace = Callable[..., Path]
Event = dict[str, Any]


# -- helpers -------------------------------------------------------------------------------------


def child_env(**extra: str) -> dict[str, str]:
    env = os.environ.copy()
    path = env.get("PYTHONPATH")
    env |= {
        "PYTHONPATH": f"{HERE}{os.pathsep}{path}" if path else str(HERE),
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        **extra,
    }
    return env


class WatchProcess:
    """``python -m retrainer watch --json`` in the background, its events read as they come."""

    def __init__(self, root: Path, name: str, *args: str, env: dict[str, str] | None = None):
        self.name = name
        self.stderr_path = root.parent / f"{name}.stderr"
        with self.stderr_path.open("w") as err:
            self.proc = subprocess.Popen(
                [*RETRAINER_WATCH, "-w", str(root), "--json", "--interval", "1s", *args],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=env or child_env(),
            )
        self.events: list[Event] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                event = {"kind": "not-json", "message": line}
            with self._cond:
                self.events.append(event)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def holder(self) -> str:
        return f"{socket.gethostname()}:{self.proc.pid}"

    def wait_for(self, want: Callable[[Event], bool], *, after: int = 0) -> tuple[int, Event]:
        """The first event from index ``after`` on that ``want``s, and its index."""
        deadline = time.monotonic() + TIMEOUT
        with self._cond:
            while True:
                for i, event in enumerate(self.events[after:], start=after):
                    if want(event):
                        return i, event
                if time.monotonic() > deadline or not self._reader.is_alive():
                    break
                self._cond.wait(0.2)
        raise AssertionError(f"{self.name}: no such event in {self.events}\n{self.stderr()}")

    def kinds(self) -> list[str]:
        with self._cond:
            return [e["kind"] for e in self.events]

    def finish(self) -> int:
        code = self.proc.wait(timeout=TIMEOUT)
        self._reader.join(timeout=TIMEOUT)
        return code

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.finish()


@pytest.fixture
def processes() -> Iterator[list[WatchProcess]]:
    """Started watch processes, killed at the end whatever happened."""
    started: list[WatchProcess] = []
    yield started
    for p in started:
        p.kill()


def kind(name: str, **fields: Any) -> Callable[[Event], bool]:
    return lambda e: e["kind"] == name and all(e.get(k) == v for k, v in fields.items())


def trained_cycle(e: Event) -> bool:
    return e["kind"] == "cycle" and e["version"] is not None


def elected(e: Event) -> bool:
    return e["kind"] in ("leader", "waiting")


def settled(proc: WatchProcess) -> bool:
    """A cycle ended after the last time the model was busy."""
    kinds = proc.kinds()
    cycles = [i for i, k in enumerate(kinds) if k == "cycle"]
    busy = [i for i, k in enumerate(kinds) if k == "busy"]
    return bool(cycles) and (not busy or cycles[-1] > busy[-1])


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def wait_path(path: Path, proc: WatchProcess) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not path.exists():
        assert proc.proc.poll() is None, f"{proc.name} exited: {proc.events}\n{proc.stderr()}"
        assert time.monotonic() < deadline, f"{path} never appeared\n{proc.stderr()}"
        time.sleep(0.05)


class Clock:
    """A clock the test moves by hand (safe to read from the heartbeat thread)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def edit_spec(root: Path, old: str, new: str) -> None:
    path = root / "retrainer.yaml"
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))


AUTOMATIC_TRIGGERS = "  - performance: {below: 0.7, min_rows: 50}\n  - data_volume: {rows: 600}\n"
HOURLY = '  - schedule: {cron: "0 * * * *"}\n'


def versions(ws: Workspace) -> list[tuple[int, str]]:
    return [(v.version, v.status) for v in ws.registry.versions(MODEL)]


def runs_that_trained(ws: Workspace) -> list[str]:
    return ws.db.transaction(
        lambda s: list(s.scalars(select(RunStep.run_id).where(RunStep.name == "train")))
    )


def lease_free(ws: Workspace, name: str) -> bool:
    row = ws.db.transaction(lambda s: s.get(Lease, name))
    return row is None or as_utc(row.expires_at) <= ws.db.clock()


def run_watch(root: Path, **kwargs: Any) -> list[WatchEvent]:
    events: list[WatchEvent] = []
    watch(root, actor="t", on_event=events.append, **kwargs)
    return events


# -- processes: one leader, take-over after SIGKILL, a manual run on the same evidence -----------


def test_one_leader_takes_each_batch_once_and_a_survivor_takes_over_after_sigkill(
    make_workspace: NewWorkspace, processes: list[WatchProcess]
) -> None:
    root = make_workspace()
    add_batch(root, "b1", synthetic_batch(1, 400, start_day=0))
    # two watchers and a manual run start together, all seeing b1
    processes += [WatchProcess(root, "a"), WatchProcess(root, "b")]
    manual = subprocess.Popen(
        [sys.executable, "-m", "retrainer", "run", "-w", str(root), "--json"],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, manual_err = manual.communicate(timeout=TIMEOUT)
    assert manual.returncode in (0, 4), manual_err  # 4: a watcher's cycle held the model

    first = {p.name: p.wait_for(elected)[1] for p in processes}
    assert sorted(e["kind"] for e in first.values()) == ["leader", "waiting"]
    leader, follower = processes if first["a"]["kind"] == "leader" else processes[::-1]
    assert first[leader.name]["holder"].startswith(leader.holder + ":")
    assert first[follower.name]["message"] == f"waiting: leader is {leader.holder}"

    wait_until(lambda: settled(leader))  # its catch-up cycle, after 'busy' if it met the run
    with Workspace.open(root) as ws:
        assert versions(ws) == [(1, "READY")]  # b1 trained once, by whichever came first
        assert len(runs_that_trained(ws)) == 1
        [b1] = ws.ledger.batches(MODEL)
        assert ws.registry.get_alias(MODEL, CHAMPION) == 1

    seen = len(leader.events)
    add_batch(root, "b2", synthetic_batch(2, 700, start_day=1))
    _, second = leader.wait_for(trained_cycle, after=seen)
    assert (second["status"], second["version"], second["promoted"]) == ("succeeded", 2, True)
    assert second["reason"] == "1 new batch(es) at the source"
    assert set(follower.kinds()) == {"waiting"}  # the follower never ran a cycle

    leader.proc.send_signal(signal.SIGKILL)
    assert leader.finish() == -signal.SIGKILL
    add_batch(root, "b3", synthetic_batch(3, 700, start_day=2, flipped=True))
    took = follower.wait_for(kind("leader"))[0]  # the dead-PID probe: no TTL to wait out
    _, third = follower.wait_for(trained_cycle, after=took)
    assert (third["status"], third["version"]) == ("succeeded", 3)

    follower.proc.send_signal(signal.SIGTERM)
    assert follower.finish() == 0, follower.stderr()
    assert follower.events[-1]["kind"] == "stopped"
    with Workspace.open(root) as ws:
        assert versions(ws) == [(3, "READY"), (2, "READY"), (1, "READY")]
        trained = runs_that_trained(ws)
        assert len(trained) == len(set(trained)) == 3  # one training run per batch set
        batches = ws.ledger.batches(MODEL)
        assert [b.batch_key for b in batches] == ["b1.parquet", "b2.parquet", "b3.parquet"]
        assert len({b.run_id for b in batches}) == 3  # each batch ingested by one run
        assert batches[0].id == b1.id
        assert ws.journal.runs(MODEL, status="running") == []
        assert lease_free(ws, f"watch:{MODEL}")


# -- processes: SIGTERM inside a cycle -----------------------------------------------------------


def test_sigterm_during_a_cycle_stops_after_the_step_and_the_run_resumes(
    make_workspace: NewWorkspace, processes: list[WatchProcess], tmp_path: Path
) -> None:
    root = make_workspace()
    edit_spec(
        root,
        "  estimator: sklearn.linear_model.LogisticRegression\n  params: {max_iter: 200}\n",
        "  entrypoint: watch_gate:fit\n",
    )
    add_batch(root, "b1", synthetic_batch(1, 400, start_day=0))
    gate = tmp_path / "gate"
    gate.mkdir()
    proc = WatchProcess(root, "w", env=child_env(WATCH_TEST_GATE=str(gate)))
    processes.append(proc)

    wait_path(gate / "training", proc)  # inside the train step
    proc.proc.send_signal(signal.SIGTERM)
    (gate / "go").touch()

    assert proc.finish() == 0, proc.stderr()
    assert proc.kinds() == ["leader", "cycle", "stopped"]
    cycle = proc.events[1]
    assert cycle["status"] == "interrupted"
    assert cycle["outcome"].startswith("interrupted after step train: run ")
    assert "resumes it at step evaluate" in cycle["outcome"]
    assert "Traceback" not in proc.stderr()
    with Workspace.open(root) as ws:
        [run] = ws.journal.runs(MODEL, status="running")
        assert run.id == cycle["run_id"]
        before = ws.journal.get(run.id).steps
        assert list(before) == list(STEPS[: STEPS.index("train") + 1])
        assert versions(ws) == [(1, "PENDING")]
        assert lease_free(ws, f"watch:{MODEL}")
        assert lease_free(ws, f"cycle:{MODEL}")

    events = run_watch(root, once=True)  # the next watch completes the run

    assert [e.kind for e in events] == ["leader", "cycle", "stopped"]
    done = events[1]
    assert (done.run_id, done.status, done.version, done.promoted) == (run.id, "succeeded", 1, True)
    assert "(resumed)" in done.message
    with Workspace.open(root) as ws:
        after = ws.journal.get(run.id)
        assert after.status == "succeeded"
        assert list(after.steps) == list(STEPS)
        assert {k: after.steps[k] for k in before} == before  # finished steps not redone
        assert versions(ws) == [(1, "READY")]
        actions = ws.db.transaction(lambda s: [e.action for e in list_events(s, limit=10_000)])
        assert actions.count("version.create") == 1
        assert actions.count("run.resume") == 1


# -- in-process: schedules after downtime, the same tick twice ------------------------------------


def test_downtime_over_many_schedule_ticks_trains_one_catch_up(
    make_workspace: NewWorkspace,
) -> None:
    root = make_workspace()
    edit_spec(root, AUTOMATIC_TRIGGERS, HOURLY)
    add_batch(root, "b1", synthetic_batch(1, 400, start_day=0))
    clock = Clock(datetime(2026, 3, 2, 10, 30, tzinfo=UTC))
    [first] = [e for e in run_watch(root, once=True, clock=clock) if e.kind == "cycle"]
    assert (first.version, first.promoted) == (1, True)  # bootstrap

    clock.advance(timedelta(hours=5))  # down from 10:30 to 15:30: five ticks missed
    stop = threading.Event()
    events: list[WatchEvent] = []

    def on_event(event: WatchEvent) -> None:
        events.append(event)
        idle = sum(e.kind == "idle" for e in events)
        if event.kind != "idle":
            return
        if idle == 2:  # suspended for three more ticks, while a batch arrived
            clock.advance(timedelta(hours=3))
            add_batch(root, "b2", synthetic_batch(2, 300, start_day=1))
        elif idle < 5:
            clock.advance(timedelta(minutes=1))
        else:
            stop.set()

    watch(
        root,
        actor="t",
        interval=timedelta(milliseconds=1),
        clock=clock,
        stop_event=stop,
        on_event=on_event,
    )

    assert [e.kind for e in events] == (
        ["leader", "cycle", "idle", "idle", "cycle", "idle", "idle", "idle", "stopped"]
    )
    catch_up, later = (e for e in events if e.kind == "cycle")
    assert catch_up.reason == "catch-up on taking the lead"
    assert later.reason == "schedule '0 * * * *' ticked at 2026-03-02 18:00 UTC"
    assert (catch_up.status, catch_up.version) == ("succeeded", 2)
    assert (later.status, later.version) == ("succeeded", 3)
    with Workspace.open(root) as ws:
        ticks = [ws.registry.get(MODEL, v).lineage["trigger"]["numbers"]["tick"] for v in (2, 3)]
        assert ticks == ["2026-03-02T15:00:00+00:00", "2026-03-02T18:00:00+00:00"]

    # the same tick seen again (a restarted or duplicated watcher): one run, no training
    [again] = [e for e in run_watch(root, once=True, clock=clock) if e.kind == "cycle"]
    assert again.status == "succeeded" and again.version is None
    assert again.outcome is not None and again.outcome.startswith("no retrain: ")
    assert "schedule '0 * * * *': next at 2026-03-02 19:00 UTC" in again.outcome
    with Workspace.open(root) as ws:
        assert [v for v, _ in versions(ws)] == [3, 2, 1]
        assert len(runs_that_trained(ws)) == 3


# -- in-process: failures back off, a busy model is waited for ------------------------------------


def test_a_failing_cycle_is_reported_with_its_run_and_retried_after_a_growing_backoff(
    make_workspace: NewWorkspace,
) -> None:
    root = make_workspace()
    add_batch(root, "b1", synthetic_batch(1, 400, start_day=0))
    run_watch(root, once=True)
    edit_spec(root, "  params: {max_iter: 200}\n", "  params: {max_iter: 200, C: -1}\n")
    add_batch(root, "b2", synthetic_batch(2, 700, start_day=1))
    clock = Clock(datetime.now(UTC))
    stop = threading.Event()
    events: list[WatchEvent] = []

    def on_event(event: WatchEvent) -> None:
        events.append(event)
        errors = [e for e in events if e.kind == "error"]
        if len(errors) == 2:
            stop.set()
        elif event.kind == "idle" and events[-2].kind == "idle":  # waited twice: time passes
            assert errors[-1].retry_in is not None
            clock.advance(timedelta(seconds=errors[-1].retry_in))

    watch(
        root,
        actor="t",
        interval=timedelta(milliseconds=10),
        clock=clock,
        stop_event=stop,
        on_event=on_event,
    )

    errors = [e for e in events if e.kind == "error"]
    assert [e.retry_in for e in errors] == [0.01, 0.02]
    assert [e.kind for e in events][:5] == ["leader", "error", "idle", "idle", "error"]
    assert events[-1].kind == "stopped"
    with Workspace.open(root) as ws:
        failed = {r.id: r for r in ws.journal.runs(MODEL, status="failed")}
        assert {e.run_id for e in errors} == set(failed)
        for e in errors:
            assert e.error is not None and e.error.startswith("TRAINING_FAILED: ")
            assert f"run {e.run_id} failed" in e.message
            assert "the champion keeps serving" in e.message
            assert failed[str(e.run_id)].error == e.error.removeprefix("TRAINING_FAILED: ")
        assert ws.registry.get_alias(MODEL, CHAMPION) == 1


def test_a_cycle_held_by_another_process_is_waited_for(make_workspace: NewWorkspace) -> None:
    root = make_workspace()
    add_batch(root, "b1", synthetic_batch(1, 400, start_day=0))
    other = "elsewhere:1:manual"  # another host: alive as far as this one can tell
    with Workspace.open(root) as ws:
        token = ws.leases.acquire(f"cycle:{MODEL}", other)
    stop = threading.Event()
    events: list[WatchEvent] = []

    def on_event(event: WatchEvent) -> None:
        events.append(event)
        if event.kind not in ("leader", "busy"):
            stop.set()

    def free_soon() -> None:
        while not any(e.kind == "busy" for e in events):
            time.sleep(0.01)
        with Workspace.open(root) as ws:
            Leases(ws.db).release(f"cycle:{MODEL}", other, token)  # the manual run ends

    freer = threading.Thread(target=free_soon, daemon=True)
    freer.start()
    watch(root, actor="t", interval=timedelta(milliseconds=10), stop_event=stop, on_event=on_event)
    freer.join(timeout=TIMEOUT)

    assert [e.kind for e in events] == ["leader", "busy", "cycle", "stopped"]
    busy, cycle = events[1], events[2]
    assert "is held by elsewhere:1:manual" in busy.message
    assert cycle.reason == "retry: another cycle was running"
    assert (cycle.status, cycle.version) == ("succeeded", 1)


# -- in-process, PostgreSQL: one leader; --once while another leads --------------------------------


@pytest.mark.postgres
def test_leader_election_on_postgresql(make_workspace: NewWorkspace, pg_schema_url: str) -> None:
    root = make_workspace(store=pg_schema_url)
    stop = threading.Event()
    led: list[WatchEvent] = []
    leader = threading.Thread(
        target=watch,
        args=(root,),
        kwargs={
            "actor": "t",
            "interval": timedelta(milliseconds=20),
            "stop_event": stop,
            "on_event": led.append,
        },
        daemon=True,
    )
    leader.start()
    try:
        wait_until(lambda: any(e.kind == "cycle" for e in led))

        follower = run_watch(root, once=True)  # another leads: report it, run nothing

        assert [e.kind for e in follower] == ["waiting", "stopped"]
        assert follower[0].holder == led[0].holder
        add_batch(root, "b1", synthetic_batch(1, 400, start_day=0))
        wait_until(lambda: any(e.kind == "cycle" and e.version == 1 for e in led))
    finally:
        stop.set()
        leader.join(timeout=TIMEOUT)
    assert led[-1].kind == "stopped"
    assert [e.kind for e in run_watch(root, once=True)] == ["leader", "cycle", "stopped"]
    with Workspace.open(root) as ws:
        assert versions(ws) == [(1, "READY")]


# -- the command line -----------------------------------------------------------------------------


def test_cli_rejects_a_bad_interval_and_shows_an_example() -> None:
    from typer.testing import CliRunner

    from retrainer.cli.app import app

    bad = CliRunner().invoke(app, ["watch", "--interval", "soon"])
    assert bad.exit_code == 2
    assert "--interval" in bad.output
    helped = CliRunner().invoke(app, ["watch", "--help"])
    assert helped.exit_code == 0
    assert "Example: retrainer watch" in " ".join(helped.output.split())
