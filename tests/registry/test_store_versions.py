"""Store contract, model versions: numbering, lifecycle, lookups (SQLite and PostgreSQL alike)."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from retrainer.errors import ConflictError, NotFoundError, SpecError
from retrainer.registry import (
    Database,
    Registry,
    VersionRef,
    build_engine,
    migrate,
    parse_ref,
    verify_chain,
)
from retrainer.registry.tables import AuditEvent, ModelVersion

SHA = "ab" * 32
PASSED = {"passed": True, "gates": []}


@pytest.fixture
def reg(db: Database) -> Registry:
    return Registry(db)


def _new(reg: Registry, model: str = "rain", actor: str = "trainer") -> int:
    return reg.create_version(model, run_id=None, actor=actor, params={}, lineage={})


def _ready(reg: Registry, model: str = "rain") -> int:
    version = _new(reg, model)
    reg.attach_artifact(model, version, SHA, actor="trainer")
    reg.mark_ready(model, version, metrics={"roc_auc": 0.8}, decision=PASSED, actor="trainer")
    return version


def _audit_count(db: Database) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(AuditEvent)) or 0)


# --- numbering ---------------------------------------------------------------------------


def test_numbers_increase_per_model_and_are_independent_across_models(reg: Registry) -> None:
    assert [_new(reg, "rain") for _ in range(3)] == [1, 2, 3]
    assert [_new(reg, "snow") for _ in range(2)] == [1, 2]
    assert _new(reg, "rain") == 4
    assert [v.version for v in reg.versions("rain")] == [4, 3, 2, 1]
    assert [v.version for v in reg.versions("snow")] == [2, 1]
    assert reg.versions("hail") == []
    assert reg.models() == ["rain", "snow"]


def test_a_failed_version_keeps_its_number(reg: Registry) -> None:
    _new(reg)
    failed = _new(reg)
    reg.set_status("rain", failed, "FAILED", actor="sweeper", reason="stale")
    assert _new(reg) == 3
    assert reg.get("rain", failed).status == "FAILED"


def test_a_new_version_is_pending_and_keeps_what_was_given(reg: Registry) -> None:
    version = reg.create_version(
        "rain",
        run_id="run-1",
        actor="trainer",
        params={"max_iter": 100, "nested": {"a": [1, 2]}},
        lineage={"data": "h" * 64},
    )
    info = reg.get("rain", version)
    assert (info.model, info.version, info.status) == ("rain", 1, "PENDING")
    assert info.artifact_sha256 is None
    assert info.run_id == "run-1"
    assert info.created_by == "trainer"
    assert info.params == {"max_iter": 100, "nested": {"a": [1, 2]}}
    assert info.lineage == {"data": "h" * 64}
    assert info.created_at.tzinfo is not None
    assert not info.gates_passed


# --- lifecycle ---------------------------------------------------------------------------


def test_pending_becomes_ready_only_with_an_artifact(reg: Registry, db: Database) -> None:
    version = _new(reg)
    events = _audit_count(db)
    with pytest.raises(ConflictError, match="without an artifact"):
        reg.mark_ready("rain", version, metrics={}, decision=PASSED, actor="trainer")
    assert reg.get("rain", version).status == "PENDING"
    assert _audit_count(db) == events

    reg.attach_artifact("rain", version, SHA, actor="trainer")
    info = reg.mark_ready(
        "rain", version, metrics={"roc_auc": 0.81}, decision=PASSED, actor="trainer"
    )
    assert info.status == "READY"
    stored = reg.get("rain", version)
    assert stored.status == "READY"
    assert stored.artifact_sha256 == SHA
    assert stored.metrics == {"roc_auc": 0.81}
    assert stored.decision == PASSED
    assert stored.gates_passed


def test_pending_can_fail(reg: Registry) -> None:
    version = _new(reg)
    reg.set_status("rain", version, "FAILED", actor="runner", reason="training crashed")
    assert reg.get("rain", version).status == "FAILED"


def test_ready_can_be_quarantined(reg: Registry) -> None:
    version = _ready(reg)
    reg.set_status("rain", version, "QUARANTINED", actor="auditor", reason="leak found")
    assert reg.get("rain", version).status == "QUARANTINED"


def _to(reg: Registry, state: str) -> int:
    """A version of ``rain`` in ``state``."""
    if state == "READY":
        return _ready(reg)
    version = _new(reg)
    if state == "FAILED":
        reg.set_status("rain", version, "FAILED", actor="t", reason="r")
    elif state == "QUARANTINED":
        reg.attach_artifact("rain", version, SHA, actor="t")
        reg.mark_ready("rain", version, metrics={}, decision=PASSED, actor="t")
        reg.set_status("rain", version, "QUARANTINED", actor="t", reason="r")
    return version


def _mark_ready(reg: Registry, v: int) -> None:
    reg.mark_ready("rain", v, metrics={}, decision=PASSED, actor="t")


def _fail(reg: Registry, v: int) -> None:
    reg.set_status("rain", v, "FAILED", actor="t", reason="r")


def _quarantine(reg: Registry, v: int) -> None:
    reg.set_status("rain", v, "QUARANTINED", actor="t", reason="r")


def _attach(reg: Registry, v: int) -> None:
    reg.attach_artifact("rain", v, "cd" * 32, actor="t")


ILLEGAL = [
    ("PENDING", "quarantine", _quarantine),
    ("READY", "mark_ready", _mark_ready),
    ("READY", "fail", _fail),
    ("READY", "attach", _attach),
    ("FAILED", "mark_ready", _mark_ready),
    ("FAILED", "quarantine", _quarantine),
    ("FAILED", "attach", _attach),
    ("QUARANTINED", "mark_ready", _mark_ready),
    ("QUARANTINED", "fail", _fail),
]


def test_illegal_transitions_raise_conflict_and_change_nothing(
    reg: Registry, db: Database, subtests: pytest.Subtests
) -> None:
    for state, name, op in ILLEGAL:
        with subtests.test(msg=f"{state} -> {name}"):
            version = _to(reg, state)
            before = reg.get("rain", version)
            events = _audit_count(db)
            with pytest.raises(ConflictError, match=f"rain:{version}"):
                op(reg, version)
            after = reg.get("rain", version)
            assert after.status == state
            assert after.artifact_sha256 == before.artifact_sha256
            assert _audit_count(db) == events


def test_set_status_rejects_other_statuses(reg: Registry, subtests: pytest.Subtests) -> None:
    version = _new(reg)
    for status in ("READY", "PENDING", "DELETED", "failed"):
        with subtests.test(msg=status):
            with pytest.raises(SpecError, match=status):
                reg.set_status("rain", version, status, actor="t", reason="r")
            assert reg.get("rain", version).status == "PENDING"


# --- lookups -----------------------------------------------------------------------------


def test_get_and_resolve_by_version_and_alias(reg: Registry) -> None:
    first, second = _ready(reg), _ready(reg)
    _new(reg)
    reg.move_alias("rain", "champion", first, expected=None, actor="t", reason="r")
    reg.move_alias("rain", "challenger", second, expected=None, actor="t", reason="r")

    assert reg.resolve("rain").version == first
    assert reg.resolve("rain@champion").version == first
    assert reg.resolve("rain@challenger").version == second
    assert reg.resolve("rain:2").version == second
    assert reg.resolve("rain:3").status == "PENDING"
    assert reg.resolve(VersionRef("rain", version=1)).version == first
    assert reg.get("rain", first).aliases == ("champion",)
    assert reg.get("rain", 3).aliases == ()
    assert reg.aliases("rain") == {"champion": first, "challenger": second}


def test_not_found_errors_name_the_model(reg: Registry) -> None:
    _new(reg)
    with pytest.raises(NotFoundError, match=r"'rain'.*version 9"):
        reg.get("rain", 9)
    with pytest.raises(NotFoundError, match=r"'rain'.*version 9"):
        reg.resolve("rain:9")
    with pytest.raises(NotFoundError, match=r"'rain'.*'champion'"):
        reg.resolve("rain")
    with pytest.raises(NotFoundError, match=r"'rain'.*'shadow'"):
        reg.resolve("rain@shadow")
    with pytest.raises(NotFoundError, match=r"'snow'.*known models: rain"):
        reg.resolve("snow@champion")


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("rain", VersionRef("rain")),
        ("rain@champion", VersionRef("rain", alias="champion")),
        ("rain:2", VersionRef("rain", version=2)),
        ("rain-v2.eu_west@canary", VersionRef("rain-v2.eu_west", alias="canary")),
        (" rain:10 ", VersionRef("rain", version=10)),
    ],
)
def test_parse_ref_accepts_the_three_forms(ref: str, expected: VersionRef) -> None:
    assert parse_ref(ref) == expected


@pytest.mark.parametrize(
    "ref",
    [
        "",
        "   ",
        "Rain",
        "rain@",
        "rain:",
        "rain:x",
        "rain:-1",
        "rain:1.5",
        "rain@champion:2",
        "rain:2@champion",
        "@champion",
        ":2",
        "rain@@champion",
        "rain@Champion",
        "rain@1st",
        "rain champion",
        "../etc/passwd",
        "rain;drop table",
        "-rain",
        "r" * 64,
    ],
)
def test_parse_ref_rejects_garbage(ref: str) -> None:
    with pytest.raises(SpecError, match="NAME@ALIAS"):
        parse_ref(ref)


# --- FT-03: concurrent registrations -----------------------------------------------------


def _assert_distinct_and_increasing(db: Database, got: list[int], n: int) -> None:
    assert len(got) == n
    assert len(set(got)) == n, f"duplicate version numbers: {sorted(got)}"
    with db.session() as s:
        in_commit_order = list(
            s.scalars(
                select(ModelVersion.version)
                .where(ModelVersion.model == "rain")
                .order_by(ModelVersion.id)
            )
        )
        creates = s.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "version.create")
        )
        chain = verify_chain(s)
    assert sorted(in_commit_order) == sorted(got)
    assert in_commit_order == sorted(in_commit_order), "numbers must increase in commit order"
    assert creates == n
    assert chain.ok, chain


def _register_concurrently(database: Database, n: int) -> tuple[list[int], list[str]]:
    """``n`` threads, each with its own Registry, register a version of ``rain`` at once."""
    barrier = threading.Barrier(n)
    got: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()

    def register() -> None:
        registry = Registry(database)
        barrier.wait(timeout=60)
        try:
            version = _new(registry)
        except Exception as exc:  # noqa: BLE001 - any exception here fails the test
            with lock:
                errors.append(repr(exc))
            return
        with lock:
            got.append(version)

    threads = [threading.Thread(target=register) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    if any(t.is_alive() for t in threads):
        errors.append("a registration did not finish")
    return got, errors


def test_ft03_concurrent_registrations_from_threads(db: Database) -> None:
    got, errors = _register_concurrently(db, 20)
    assert errors == []
    _assert_distinct_and_increasing(db, got, 20)
    # nothing was left poisoned: the next registration simply takes the next number
    assert _new(Registry(db)) == max(got) + 1


def _register_in_child(
    url: str, base_dir: str, threads: int, barrier: Any, results: Any
) -> None:  # pragma: no cover - runs in a spawned process
    database = Database(build_engine(url, base_dir=Path(base_dir)))
    try:
        barrier.wait(timeout=120)
        results.put(_register_concurrently(database, threads))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the test
        results.put(([], [repr(exc)]))
    finally:
        database.dispose()


def test_ft03_concurrent_registrations_from_processes_on_sqlite(tmp_path: Path) -> None:
    """20 registrations at once: 10 threads in this process and 10 in a spawned one, each
    process with its own engine on the same file."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    here = Database(build_engine(url, base_dir=tmp_path))
    migrate(here)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    child = ctx.Process(target=_register_in_child, args=(url, str(tmp_path), 10, barrier, results))
    child.start()
    try:
        barrier.wait(timeout=120)
        got_here, errors_here = _register_concurrently(here, 10)
        got_there, errors_there = results.get(timeout=120)
        child.join(timeout=30)
        assert errors_here + errors_there == []
        assert child.exitcode == 0
        _assert_distinct_and_increasing(here, got_here + got_there, 20)
    finally:
        here.dispose()
        if child.is_alive():
            child.kill()
