"""Store under stress, SQLite and PostgreSQL alike: many processes, and SIGKILLs.

- FT-04: 8 processes x 200 mixed registry writes on one store. Only the compare-and-swap
  losers' ConflictError may reach a worker (never "database is locked" or another
  OperationalError); every call that returned left exactly its audit event; version
  numbers are unique, increasing and without gaps; alias history and audit agree; the
  chain verifies. (FT-01's compare-and-swap, under load.)
- FT-02: a process promoting in a loop is SIGKILLed 10 times at seeded moments (by the
  parent after a random delay, or by itself before a random SQL statement, mostly one
  inside a promotion's transaction): one champion, READY, matching its history, and
  audit and history agree move for move (no half-committed promotion); promoting again
  works.
- FT-03: 20 processes register a version of one model at once.

Workers are real processes: a child Python (``sys.executable -c``) imports this module
once and forks them, each opening its own engine on the store, so a test does not pay
the imports (seconds) per process. Workers of one batch start together (they wait on a
pipe the fork server closes once all are forked).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from forkproc import ForkServerProcess
from retrainer.errors import ConflictError
from retrainer.registry import (
    CHAMPION,
    AliasMove,
    Database,
    Registry,
    append_event,
    build_engine,
    promote,
    verify_chain,
)
from retrainer.registry.tables import Alias, AuditEvent, ModelVersion

pytestmark = pytest.mark.slow

MODEL = "rain"
CHALLENGER = "challenger"
SHA = "ab" * 32
PASSED = {"passed": True, "gates": []}
SEED = 20261126
PROCESSES, WRITES = 8, 200
KILLS = 10
WORKER_ALARM_S = 300  # a hung worker kills itself instead of hanging the suite

SERVER = r"""
import json, os, signal, sys, traceback

sys.path[:0] = sys.argv[1:3]  # this folder, and tests/ for its helpers
import test_concurrency_stress as tests

print("ready", flush=True)
for line in sys.stdin:
    request = json.loads(line)
    if request["cmd"] == "wait":
        codes = [os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in request["pids"]]
        print(json.dumps(codes), flush=True)
        continue
    go_r, go_w = os.pipe()
    pids = []
    for call in request["calls"]:
        pid = os.fork()
        if pid == 0:  # a worker: wait for the whole batch, run one call, exit
            code = 1
            try:
                os.close(go_w)
                signal.alarm(request["alarm"])
                log = os.open(call["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(log, 1)
                os.dup2(log, 2)
                os.read(go_r, 1)  # EOF once the server closes its end: all are forked
                getattr(tests, call["func"])(**call["kwargs"])
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        pids.append(pid)
    os.close(go_r)
    os.close(go_w)
    print(json.dumps(pids), flush=True)
"""


# -- the fork server (parent side) -------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One worker: a function of this module, its keyword arguments and its log file."""

    func: str
    kwargs: dict[str, Any]
    log: Path


class ForkServer(ForkServerProcess):
    """A child Python that imported this module once; forks workers in batches."""

    def __init__(self, env: dict[str, str]) -> None:
        here = Path(__file__).parent
        super().__init__(SERVER, env, str(here), str(here.parent))
        self.running: set[int] = set()

    def _ask(self, request: dict[str, Any]) -> list[int]:
        answer: list[int] = json.loads(self.ask(json.dumps(request)))
        return answer

    def start(self, calls: list[Call]) -> list[int]:
        """Fork one worker per call, all released together; their pids."""
        request = {
            "cmd": "start",
            "alarm": WORKER_ALARM_S,
            "calls": [{"func": c.func, "kwargs": c.kwargs, "log": str(c.log)} for c in calls],
        }
        pids = self._ask(request)
        self.running.update(pids)
        return pids

    def wait(self, pids: list[int]) -> list[int]:
        """Wait for these workers; their exit codes (``-9`` when SIGKILLed)."""
        codes = self._ask({"cmd": "wait", "pids": pids})
        self.running.difference_update(pids)
        return codes

    def run(self, calls: list[Call]) -> list[int]:
        return self.wait(self.start(calls))

    def close(self) -> None:
        for pid in self.running:  # a failed test's workers: unreaped, so never a reused pid
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        super().close()


@pytest.fixture(scope="module")
def forks() -> Iterator[ForkServer]:
    dropped = ("RETRAINER_WORKSPACE", "RETRAINER_TOKEN")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    server = ForkServer(env)
    try:
        yield server
    finally:
        server.close()


def assert_exited(codes: list[int], calls: list[Call], expected: int = 0) -> None:
    for code, call in zip(codes, calls, strict=True):
        assert code == expected, f"{call.func} exited {code}:\n{call.log.read_text()[-3000:]}"


# -- workers (run in forked processes) ---------------------------------------------------


@dataclass
class _Mine:
    """What one worker knows: its versions by state, and its expected audit events."""

    ready: list[int]
    created: list[int] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)  # no artifact yet
    attached: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    events: list[tuple[str, str]] = field(default_factory=list)
    conflicts: Counter[str] = field(default_factory=Counter)


def _pick(rng: random.Random, mine: _Mine) -> str:
    weights = {
        "create": 3,
        "attach": 2 if mine.pending else 0,
        "ready": 2 if mine.attached else 0,
        "fail": 1 if mine.pending or mine.attached else 0,
        "promote": 3,
        "challenger": 2,
        "note": 2,
    }
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _take(rng: random.Random, versions: list[int]) -> int:
    return versions.pop(rng.randrange(len(versions)))


def _write(
    op: str, k: int, registry: Registry, rng: random.Random, actor: str, mine: _Mine
) -> None:
    """One registry write; records the audit event it must have left."""
    db = registry.db
    if op == "create":
        v = registry.create_version(MODEL, run_id=None, actor=actor, params={"k": k}, lineage={})
        mine.created.append(v)
        mine.pending.append(v)
        mine.events.append(("version.create", f"{MODEL}:{v}"))
    elif op == "attach":
        v = _take(rng, mine.pending)
        registry.attach_artifact(MODEL, v, SHA, actor=actor)
        mine.attached.append(v)
        mine.events.append(("version.artifact", f"{MODEL}:{v}"))
    elif op == "ready":
        v = _take(rng, mine.attached)
        registry.mark_ready(MODEL, v, metrics={"roc_auc": 0.8}, decision=PASSED, actor=actor)
        mine.ready.append(v)
        mine.events.append(("version.ready", f"{MODEL}:{v}"))
    elif op == "fail":
        v = _take(rng, rng.choice([pool for pool in (mine.pending, mine.attached) if pool]))
        registry.set_status(MODEL, v, "FAILED", actor=actor, reason="stress")
        mine.failed.append(v)
        mine.events.append(("version.failed", f"{MODEL}:{v}"))
    elif op == "promote":
        seen = registry.get_alias(MODEL, CHAMPION)
        v = rng.choice(mine.ready)
        try:
            promote(registry, MODEL, v, actor=actor, reason="stress", expected=seen)
        except ConflictError:
            mine.events.append(("promote.refused", f"{MODEL}:{v}"))  # a lost race, audited
            raise
        mine.events.append(("promote", f"{MODEL}@{CHAMPION}"))
    elif op == "challenger":
        seen = registry.get_alias(MODEL, CHALLENGER)
        registry.move_alias(
            MODEL, CHALLENGER, rng.choice(mine.ready), expected=seen, actor=actor, reason="s"
        )
        mine.events.append(("alias.move", f"{MODEL}@{CHALLENGER}"))
    else:
        subject = f"{actor}/{k}"
        db.transaction(
            lambda s: append_event(
                s, at=db.clock(), actor=actor, action="stress.note", subject=subject
            )
        )
        mine.events.append(("stress.note", subject))


def mixed_writes(
    url: str, base_dir: str, index: int, writes: int, seed: int, ready: list[int], out: str
) -> None:
    """``writes`` seeded registry writes as actor ``w{index}``; a JSON report to ``out``."""
    database = Database(build_engine(url, base_dir=Path(base_dir)))
    registry, actor = Registry(database), f"w{index}"
    rng = random.Random(seed * 1000 + index)
    mine = _Mine(ready=list(ready))
    error = None
    try:
        for k in range(writes):
            op = _pick(rng, mine)
            try:
                _write(op, k, registry, rng, actor, mine)
            except ConflictError:
                mine.conflicts[op] += 1
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the test
        error = f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
    finally:
        database.dispose()
    report = {
        "error": error,
        "created": mine.created,
        "status": {str(v): "READY" for v in mine.ready}
        | {str(v): "PENDING" for v in mine.pending + mine.attached}
        | {str(v): "FAILED" for v in mine.failed},
        "events": mine.events,
        "conflicts": dict(mine.conflicts),
    }
    Path(out).write_text(json.dumps(report))


def register_once(url: str, base_dir: str, index: int, out: str) -> None:
    """Register one version of ``MODEL``; its number to ``out``."""
    database = Database(build_engine(url, base_dir=Path(base_dir)))
    try:
        version = Registry(database).create_version(
            MODEL, run_id=None, actor=f"r{index}", params={}, lineage={}
        )
    finally:
        database.dispose()
    Path(out).write_text(json.dumps(version))


def promote_forever(
    url: str, base_dir: str, actor: str, versions: list[int], started: str, kill_at: int
) -> None:
    """Swap the champion between two versions (compare-and-swap) until killed.

    ``started`` is created after the first promotion; ``kill_at > 0`` SIGKILLs this
    process just before its ``kill_at``-th SQL statement.
    """
    database = Database(build_engine(url, base_dir=Path(base_dir)))
    registry = Registry(database)
    if kill_at:
        statements = itertools.count(1)

        @event.listens_for(database.engine, "before_cursor_execute")
        def _die(*_args: Any) -> None:
            if next(statements) == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    a, b = versions
    for n in itertools.count():
        seen = registry.get_alias(MODEL, CHAMPION)
        promote(
            registry, MODEL, b if seen == a else a, actor=actor, reason=f"loop {n}", expected=seen
        )
        if n == 0:
            Path(started).touch()


# -- checks (parent side) ----------------------------------------------------------------


def _ready(reg: Registry, actor: str = "setup") -> int:
    version = reg.create_version(MODEL, run_id=None, actor=actor, params={}, lineage={})
    reg.attach_artifact(MODEL, version, SHA, actor=actor)
    reg.mark_ready(MODEL, version, metrics={"roc_auc": 0.8}, decision=PASSED, actor=actor)
    return version


def _events(db: Database) -> list[AuditEvent]:
    with db.session() as s:
        return list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def _chain_ok(db: Database) -> int:
    """Verify the chain; the number of events."""
    with db.session() as s:
        report = verify_chain(s)
    assert report.ok, report
    return report.events


def _assert_alias_consistent(
    db: Database, reg: Registry, alias: str, events: list[AuditEvent]
) -> list[AliasMove]:
    """One row for ``alias``, on a READY version; history linked move by move and ending
    where the alias points; the epoch counts the moves; audit and history agree in order."""
    with db.session() as s:
        rows = s.execute(
            select(Alias.version, Alias.epoch).where(Alias.model == MODEL, Alias.alias == alias)
        ).all()
    assert len(rows) == 1, rows
    [(version, epoch)] = rows
    assert reg.get(MODEL, version).status == "READY"
    moves = reg.history(MODEL, alias)
    assert moves[0].from_version is None
    for before, after in itertools.pairwise(moves):
        assert after.from_version == before.to_version, (before, after)
    assert moves[-1].to_version == version
    assert epoch == len(moves)
    audited = [
        (e.actor, e.payload["from"], e.payload["to"])
        for e in events
        if e.subject == f"{MODEL}@{alias}" and e.action in ("promote", "alias.move")
    ]
    assert audited == [(m.actor, m.from_version, m.to_version) for m in moves]
    return moves


# -- FT-04: 8 processes x 200 mixed writes ---------------------------------------------------


def test_ft04_processes_interleaving_writes_lose_nothing(
    forks: ForkServer, db: Database, store_url: str, tmp_path: Path
) -> None:
    reg = Registry(db)
    first, second = _ready(reg), _ready(reg)
    promote(reg, MODEL, first, actor="setup", reason="start", expected=None)
    calls = [
        Call(
            "mixed_writes",
            {
                "url": store_url,
                "base_dir": str(tmp_path),
                "index": i,
                "writes": WRITES,
                "seed": SEED,
                "ready": [first, second],
                "out": str(tmp_path / f"w{i}.json"),
            },
            tmp_path / f"w{i}.log",
        )
        for i in range(PROCESSES)
    ]

    assert_exited(forks.run(calls), calls)

    reports = [json.loads((tmp_path / f"w{i}.json").read_text()) for i in range(PROCESSES)]
    assert [r["error"] for r in reports] == [None] * PROCESSES
    events = _events(db)
    # every call that returned (and every audited refusal) left exactly its event
    for i, report in enumerate(reports):
        got = Counter((e.action, e.subject) for e in events if e.actor == f"w{i}")
        assert got == Counter(tuple(pair) for pair in report["events"]), f"w{i}"
    setup_events = sum(e.actor == "setup" for e in events)
    assert _chain_ok(db) == setup_events + sum(len(r["events"]) for r in reports)
    # the workers overlapped (one after another would switch actors 7 times); how many
    # compare-and-swaps lost depends on the interleaving (a handful on SQLite, which
    # serialises writers, hundreds on PostgreSQL), so only where they may happen is checked
    actors = [e.actor for e in events if e.actor != "setup"]
    assert sum(a != b for a, b in itertools.pairwise(actors)) > PROCESSES
    conflicts = Counter[str]()
    for report in reports:
        conflicts.update(report["conflicts"])
    assert set(conflicts) <= {"promote", "challenger"}, conflicts

    # unique numbers, increasing in commit order, no gaps; each worker's in its order
    with db.session() as s:
        numbers = list(
            s.scalars(
                select(ModelVersion.version)
                .where(ModelVersion.model == MODEL)
                .order_by(ModelVersion.id)
            )
        )
    created = [v for r in reports for v in r["created"]]
    assert numbers == list(range(1, len(numbers) + 1))
    assert sorted(created) == numbers[2:]
    for report in reports:
        assert report["created"] == sorted(report["created"])
    # every write took effect
    status = {str(v.version): v.status for v in reg.versions(MODEL)}
    for report in reports:
        assert {v: status[v] for v in report["status"]} == report["status"]

    champion_moves = _assert_alias_consistent(db, reg, CHAMPION, events)
    challenger_moves = _assert_alias_consistent(db, reg, CHALLENGER, events)
    for i, report in enumerate(reports):
        mine = Counter(action for action, _ in report["events"])
        assert sum(m.actor == f"w{i}" for m in champion_moves) == mine["promote"]
        assert sum(m.actor == f"w{i}" for m in challenger_moves) == mine["alias.move"]


# -- FT-02: SIGKILL in the middle of promotions ------------------------------------------------


def _assert_after_kill(db: Database, reg: Registry, actor: str, versions: list[int]) -> None:
    events = _events(db)
    _chain_ok(db)
    moves = _assert_alias_consistent(db, reg, CHAMPION, events)
    assert moves[-1].to_version in versions
    by_actor = [m for m in moves if m.actor == actor]
    promotes = [e for e in events if e.actor == actor and e.action == "promote"]
    assert len(promotes) == len(by_actor), "a promotion half committed"
    assert not [e for e in events if e.actor == actor and e.action != "promote"]


def test_ft02_sigkill_during_promotions_leaves_one_consistent_champion(
    forks: ForkServer, db: Database, store_url: str, tmp_path: Path
) -> None:
    """Even rounds: the parent SIGKILLs the worker a random 0-300 ms after its first
    promotion. Odd rounds: the worker SIGKILLs itself before its n-th SQL statement
    (n random in 1..60, about seven promotions' worth), mostly inside a promotion."""
    rng = random.Random(SEED)
    reg = Registry(db)
    versions = [_ready(reg), _ready(reg)]
    promote(reg, MODEL, versions[0], actor="setup", reason="start", expected=None)
    for r in range(KILLS):
        actor, started = f"k{r}", tmp_path / f"started-{r}"
        by_parent = r % 2 == 0
        kill_at = 0 if by_parent else rng.randint(1, 60)
        call = Call(
            "promote_forever",
            {
                "url": store_url,
                "base_dir": str(tmp_path),
                "actor": actor,
                "versions": versions,
                "started": str(started),
                "kill_at": kill_at,
            },
            tmp_path / f"k{r}.log",
        )
        [pid] = forks.start([call])
        if by_parent:
            _wait_for(started)
            time.sleep(rng.uniform(0.0, 0.3))
            os.kill(pid, signal.SIGKILL)
        assert_exited(forks.wait([pid]), [call], expected=-signal.SIGKILL)

        _assert_after_kill(db, reg, actor, versions)
        # promoting again works, from where the killed process left the champion
        current = reg.get_alias(MODEL, CHAMPION)
        other = versions[1] if current == versions[0] else versions[0]
        promote(reg, MODEL, other, actor="parent", reason=f"after kill {r}", expected=current)
        _assert_after_kill(db, reg, actor, versions)


def _wait_for(path: Path) -> None:
    """Until ``path`` exists (a worker's signal); fails after a generous 60 s."""
    for _ in range(6000):
        if path.exists():
            return
        time.sleep(0.01)
    pytest.fail(f"the worker never created {path}")


# -- FT-03: concurrent registrations from processes ------------------------------------------


def test_ft03_concurrent_registrations_from_processes(
    forks: ForkServer, db: Database, store_url: str, tmp_path: Path
) -> None:
    n = 20
    calls = [
        Call(
            "register_once",
            {
                "url": store_url,
                "base_dir": str(tmp_path),
                "index": i,
                "out": str(tmp_path / f"r{i}.json"),
            },
            tmp_path / f"r{i}.log",
        )
        for i in range(n)
    ]

    assert_exited(forks.run(calls), calls)

    got = [json.loads((tmp_path / f"r{i}.json").read_text()) for i in range(n)]
    assert sorted(got) == list(range(1, n + 1))
    with db.session() as s:
        in_commit_order = list(
            s.scalars(
                select(ModelVersion.version)
                .where(ModelVersion.model == MODEL)
                .order_by(ModelVersion.id)
            )
        )
    assert in_commit_order == list(range(1, n + 1))
    creates = Counter((e.actor, e.action) for e in _events(db))
    assert creates == Counter({(f"r{i}", "version.create"): 1 for i in range(n)})
    assert _chain_ok(db) == n
    reg = Registry(db)
    assert reg.create_version(MODEL, run_id=None, actor="t", params={}, lineage={}) == n + 1
