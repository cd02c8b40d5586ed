"""``retrainer doctor``: each check finds its broken state, made for real on SQLite and on
PostgreSQL; ``--repair`` fixes what is safe (audited), and a second repair is a no-op;
what needs a person is never touched."""

from __future__ import annotations

import importlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text
from typer.testing import CliRunner

from retrainer.cli.app import app
from retrainer.errors import LeaseHeldError
from retrainer.governance.identity import Actor, TokenStore
from retrainer.orchestrate import doctor as doctor_module
from retrainer.orchestrate.doctor import ORPHANED, DoctorReport, diagnose, open_unmigrated
from retrainer.orchestrate.lease import RELEASED, Leases, new_holder_id
from retrainer.registry import CHAMPION, Database, list_events
from retrainer.registry.migrate import current_revision, head_revision
from retrainer.registry.tables import AuditEvent, Lease
from retrainer.workspace import Workspace

MODEL = "toy"
HOST = socket.gethostname()
NewWorkspace = Callable[..., Path]


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The pid of a process on this host that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=60)
    with pytest.raises(ProcessLookupError):
        os.kill(child.pid, 0)
    return child.pid


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def root(request: pytest.FixtureRequest, make_workspace: NewWorkspace) -> Path:
    """A migrated workspace on SQLite, then on PostgreSQL (a fresh schema)."""
    store = None if request.param == "sqlite" else request.getfixturevalue("pg_schema_url")
    made = make_workspace(store=store)
    Workspace.open(made).close()
    return made


def run_doctor(root: Path, *, repair: bool = False) -> DoctorReport:
    with open_unmigrated(root) as ws:
        return diagnose(ws, repair=repair, authorize=lambda: "tester")


def statuses(report: DoctorReport) -> dict[str, str]:
    return {c.name: c.status for c in report.checks}


def detail(report: DoctorReport, name: str) -> str:
    return next(c.detail for c in report.checks if c.name == name)


def add_version(
    ws: Workspace,
    *,
    model: str = MODEL,
    run_id: str | None = None,
    blob: bytes | None = None,
    ready: bool = True,
) -> tuple[int, str | None]:
    """A version through the registry API: PENDING, with an artifact if ``blob``, READY."""
    reg = ws.registry
    version = reg.create_version(model, run_id=run_id, actor="tester", params={}, lineage={})
    sha = None
    if blob is not None:
        sha = ws.artifacts.put(blob)
        reg.attach_artifact(model, version, sha, actor="tester")
    if ready:
        reg.mark_ready(model, version, metrics={}, decision={"passed": True}, actor="tester")
    return version, sha


def crown(ws: Workspace, version: int, model: str = MODEL) -> None:
    ws.registry.move_alias(model, CHAMPION, version, expected=None, actor="tester", reason="t")


def downgrade_one(ws: Workspace) -> str:
    """Take the store's schema one migration back; return that revision."""
    return downgrade_one_from(ws, head_revision())


def downgrade_one_from(ws: Workspace, revision: str | None) -> str:
    """Take the store's schema from ``revision`` one migration back; return that one."""
    cfg = Config()
    migrations = Path(importlib.import_module("retrainer.registry.migrate").__file__ or "")
    cfg.set_main_option("script_location", str(migrations.parent / "migrations"))
    assert revision is not None
    previous = ScriptDirectory.from_config(cfg).get_revision(revision).down_revision
    assert isinstance(previous, str)
    with ws.db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, previous)
    return previous


def stale_temp(ws: Workspace, name: str, age: timedelta) -> Path:
    path = Path(ws.artifacts.root, "tmp", name)
    path.write_bytes(b"half a model")
    then = time.time() - age.total_seconds()
    os.utime(path, (then, then))
    return path


def events(ws: Workspace, action: str) -> list[AuditEvent]:
    with ws.db.session() as s:
        return [e for e in list_events(s, limit=10_000) if e.action == action]


# -- healthy: no false alarm ----------------------------------------------------------------


def test_a_healthy_busy_workspace_is_all_ok(root: Path) -> None:
    with Workspace.open(root) as ws:
        crown(ws, add_version(ws, blob=b"v1")[0])
        released = new_holder_id()
        ws.leases.release("watch:toy", released, ws.leases.acquire("watch:toy", released))
        ws.leases.acquire("cycle:toy", new_holder_id())  # this live process: a cycle runs
        run, _ = ws.journal.open_run(MODEL, actor="tester", request={})
        add_version(ws, run_id=run.id, blob=None, ready=False)  # the running cycle trains it
        before = len(events(ws, "doctor.repair"))

    report = run_doctor(root)

    assert statuses(report) == dict.fromkeys(doctor_module.CHECKS, "ok"), report
    assert report.ok
    assert "toy@champion = toy:1" in detail(report, "champion")
    assert "cycle:toy held by" in detail(report, "leases")
    assert "toy:2" in detail(report, "pending")
    with Workspace.open(root) as ws:
        assert len(events(ws, "doctor.repair")) == before


# -- repairable: found read-only, repaired once, then all ok --------------------------------


def test_repair_fixes_what_is_safe_once_and_a_second_repair_does_nothing(
    root: Path, dead_pid: int
) -> None:
    with Workspace.open(root) as ws:
        crown(ws, add_version(ws, blob=b"v1")[0])
        journal = ws.journal
        gone, _ = journal.open_run(MODEL, actor="tester", request={})  # a run that failed
        failed_pending, _ = add_version(ws, run_id=gone.id, ready=False)
        journal.finish(gone.id, status="failed", outcome="failed at train", actor="tester")
        killed, _ = journal.open_run(MODEL, actor="tester", request={})  # killed mid-train
        killed_pending, _ = add_version(ws, run_id=killed.id, blob=b"half", ready=False)
        resumable, _ = add_version(ws, run_id=killed.id, blob=b"done", ready=False)
        journal.step_done(killed.id, "train", {"version": resumable}, started_at=ws.db.clock())
        dead_holder = f"{HOST}:{dead_pid}:killed"
        dead_token = ws.leases.acquire("cycle:toy", dead_holder)  # the killed cycle's
        past = Database(ws.db.engine, clock=lambda: ws.db.clock() - timedelta(hours=2))
        Leases(past).acquire("watch:toy", "elsewhere:42:crashed")  # expired 1h45 ago
        old = stale_temp(ws, f"{'a' * 64}.x1.partial", timedelta(hours=2))
        fresh = stale_temp(ws, f"{'b' * 64}.x2.partial", timedelta(minutes=5))  # a live writer
        behind = downgrade_one(ws)
        audit_before = len(events(ws, "doctor.repair"))

    found = run_doctor(root)

    assert statuses(found) == {
        "store": "ok",
        "migrations": "fail",
        "artifacts": "ok",
        "temp_files": "warn",
        "leases": "warn",
        "pending": "warn",
        "audit": "ok",
        "champion": "ok",
        "executor": "ok",
    }, found
    assert f"at revision {behind}" in detail(found, "migrations")
    assert old.name in detail(found, "temp_files") and fresh.name not in detail(found, "temp_files")
    leases = detail(found, "leases")
    assert f"cycle:toy: held by {dead_holder}, a process of this host that has exited" in leases
    assert "watch:toy: expired at" in leases and "elsewhere:42:crashed" in leases
    pending = detail(found, "pending")
    assert f"toy:{failed_pending} (run {gone.id}): its run is not running" in pending
    assert f"toy:{killed_pending} (run {killed.id}): its run is 'running' with no live" in pending
    assert f"toy:{resumable} " not in pending  # its run resumes and registers it
    with open_unmigrated(root) as ws:  # read-only: nothing changed
        assert current_revision(ws.db) == behind
        assert len(events(ws, "doctor.repair")) == audit_before
        assert old.exists()
        assert ws.registry.get(MODEL, failed_pending).status == "PENDING"

    repaired = run_doctor(root, repair=True)

    assert repaired.ok
    assert statuses(repaired) == {
        **dict.fromkeys(doctor_module.CHECKS, "ok"),
        "migrations": "repaired",
        "temp_files": "repaired",
        "leases": "repaired",
        "pending": "repaired",
    }, repaired
    assert all(c.repaired for c in repaired.checks if c.status == "repaired")
    with Workspace.open(root) as ws:
        assert current_revision(ws.db) == head_revision()
        assert not old.exists() and fresh.exists()
        states = {v.version: v.status for v in ws.registry.versions(MODEL)}
        assert states == {
            1: "READY",
            failed_pending: "FAILED",
            killed_pending: "FAILED",
            resumable: "PENDING",
        }
        failures = {e.subject: e.payload["reason"] for e in events(ws, "version.failed")}
        assert failures == {f"toy:{failed_pending}": ORPHANED, f"toy:{killed_pending}": ORPHANED}
        fixes = {e.subject: e for e in events(ws, "doctor.repair")}
        assert set(fixes) == {"store/schema", "artifacts/tmp", "lease/cycle:toy", "lease/watch:toy"}
        assert fixes["lease/cycle:toy"].payload["token"] == dead_token
        assert all(e.actor == "tester" for e in fixes.values())
        with ws.db.session() as s:
            holders = dict(s.execute(select(Lease.name, Lease.holder)).all())
        assert holders == {
            "cycle:toy": dead_holder + RELEASED,
            "watch:toy": "elsewhere:42:crashed" + RELEASED,
        }
        assert ws.leases.acquire("cycle:toy", "next:1:x") == dead_token + 1  # free, token grows

    again = run_doctor(root, repair=True)

    assert statuses(again) == dict.fromkeys(doctor_module.CHECKS, "ok"), again
    assert not any(c.repaired for c in again.checks)


def test_a_lease_taken_over_meanwhile_is_not_freed(
    make_workspace: NewWorkspace, dead_pid: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The release is a compare-and-swap on holder and token: the new holder keeps it."""
    root = make_workspace()
    dead = f"{HOST}:{dead_pid}:killed"
    with Workspace.open(root) as ws:
        ws.leases.acquire("cycle:toy", dead)
    seen = doctor_module.lease_state
    newcomer = new_holder_id()

    def racing(holder: str, *args: Any) -> str:
        state = seen(holder, *args)
        if holder == dead:  # the next cycle takes the lease between the look and the repair
            with Workspace.open(root) as other:
                other.leases.acquire("cycle:toy", newcomer)
        return state

    monkeypatch.setattr(doctor_module, "lease_state", racing)
    report = run_doctor(root, repair=True)

    assert statuses(report)["leases"] == "ok"
    with Workspace.open(root) as ws:
        with ws.db.session() as s:
            row = s.get(Lease, "cycle:toy")
            assert row is not None and row.holder == newcomer
        assert events(ws, "doctor.repair") == []


def test_a_released_lease_is_marked_free_at_once_and_cannot_be_renewed(
    make_workspace: NewWorkspace,
) -> None:
    """What tells a released lease from an abandoned one: its holder is marked released."""
    with Workspace.open(make_workspace()) as ws:
        holder = new_holder_id()
        token = ws.leases.acquire("cycle:toy", holder)
        ws.leases.release("cycle:toy", holder, token)
        with pytest.raises(LeaseHeldError, match="lost to"):
            ws.leases.renew("cycle:toy", holder, token)
        behind = Database(ws.db.engine, clock=lambda: ws.db.clock() - timedelta(hours=1))
        assert Leases(behind).acquire("cycle:toy", "slow-clock:1:x") == token + 1  # free


# -- never repaired: reported, with what to do ----------------------------------------------


def test_broken_artifacts_audit_chain_and_champion_are_reported_never_touched(root: Path) -> None:
    with Workspace.open(root) as ws:
        champion, corrupt_sha = add_version(ws, blob=b"champion bytes")
        crown(ws, champion)
        lost, lost_sha = add_version(ws, blob=b"lost bytes")
        assert corrupt_sha and lost_sha
        Path(ws.artifacts.path_of(corrupt_sha)).write_bytes(b"champion bytes, one flipped")
        Path(ws.artifacts.path_of(lost_sha)).unlink()
        other, _ = add_version(ws, model="other", blob=b"other bytes")
        crown(ws, other, model="other")
        ws.registry.set_status("other", other, "QUARANTINED", actor="tester", reason="t")
        with ws.db.session() as s:
            edited = s.scalars(select(AuditEvent.id).order_by(AuditEvent.id)).all()[2]
        with ws.db.engine.begin() as conn:
            if ws.db.dialect == "sqlite":
                conn.execute(text("DROP TRIGGER audit_events_no_update"))
            else:
                conn.execute(
                    text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only")
                )
            conn.execute(text(f"UPDATE audit_events SET actor = 'mallory' WHERE id = {edited}"))

    for _ in range(2):
        report = run_doctor(root, repair=True)

        assert statuses(report) == {
            **dict.fromkeys(doctor_module.CHECKS, "ok"),
            "artifacts": "fail",
            "audit": "fail",
            "champion": "fail",
        }, report
        assert not any(c.repaired for c in report.checks)
        artifacts = detail(report, "artifacts")
        assert f"toy:{champion} (READY) sha256 {corrupt_sha}: blob corrupt" in artifacts
        assert "it is the champion: 'retrainer rollback toy'" in artifacts
        assert f"toy:{lost} (READY) sha256 {lost_sha}: blob missing" in artifacts
        assert f"broken at event {edited}:" in detail(report, "audit")
        assert f"other@champion points at other:{other}, which is QUARANTINED" in detail(
            report, "champion"
        )
    with Workspace.open(root) as ws:
        assert ws.registry.get_alias(MODEL, CHAMPION) == champion
        assert ws.registry.get_alias("other", CHAMPION) == other
        assert not Path(ws.artifacts.path_of(lost_sha)).exists()
        assert ws.registry.get(MODEL, lost).status == "READY"


# -- the command line (in-process) ----------------------------------------------------------


def test_cli_table_json_and_exit_codes(make_workspace: NewWorkspace) -> None:
    root = make_workspace()
    with Workspace.open(root) as ws:
        crown(ws, add_version(ws, blob=b"v1")[0])
    runner = CliRunner()

    table = runner.invoke(app, ["doctor", "-w", str(root)])
    assert table.exit_code == 0, table.output
    assert "Doctor: " in table.output and "healthy" in table.output
    for name in doctor_module.CHECKS:
        assert name in table.output

    with Workspace.open(root) as ws:
        sha = ws.registry.get(MODEL, 1).artifact_sha256
        assert sha
        Path(ws.artifacts.path_of(sha)).unlink()
        stale_temp(ws, f"{'c' * 64}.x.partial", timedelta(hours=3))
    broken = runner.invoke(app, ["doctor", "-w", str(root), "--json"])
    assert broken.exit_code == 5, broken.output
    body = json.loads(broken.output)
    assert body["ok"] is False and body["workspace"] == str(root)
    rows = {c["name"]: c for c in body["checks"]}
    assert list(rows) == list(doctor_module.CHECKS)
    assert rows["artifacts"]["status"] == "fail" and sha in rows["artifacts"]["detail"]
    assert rows["temp_files"] == {**rows["temp_files"], "status": "warn", "repaired": []}

    fixed = runner.invoke(app, ["doctor", "-w", str(root), "--repair", "--json"])
    assert fixed.exit_code == 5  # the lost blob stays a failure
    rows = {c["name"]: c for c in json.loads(fixed.output)["checks"]}
    assert rows["temp_files"]["status"] == "repaired" and rows["temp_files"]["repaired"]


def test_cli_unreachable_store_exits_7_and_never_shows_the_password(
    make_workspace: NewWorkspace,
) -> None:
    root = make_workspace(store="postgresql+psycopg://app:${env:DOCTOR_PW}@127.0.0.1:1/x")
    result = CliRunner().invoke(
        app, ["doctor", "-w", str(root), "--json"], env={"DOCTOR_PW": "hunter22-secret"}
    )
    assert result.exit_code == 7, result.output
    assert "hunter22" not in result.output
    rows = {c["name"]: c for c in json.loads(result.output)["checks"]}
    assert rows["store"]["status"] == "fail"
    assert "postgresql+psycopg://app:***@127.0.0.1:1/x: unreachable" in rows["store"]["detail"]
    assert {r["status"] for n, r in rows.items() if n != "store"} == {"warn"}


@pytest.mark.postgres
def test_cli_on_postgresql_needs_a_token_viewer_reads_operator_repairs(
    make_workspace: NewWorkspace, pg_schema_url: str
) -> None:
    store = pg_schema_url.replace("postgres@", "postgres:${env:DOCTOR_PW}@", 1)
    root = make_workspace(store=store)
    env = {"DOCTOR_PW": "hunter22-secret"}
    with Workspace.open(root, env=env) as ws:
        tokens = TokenStore(ws.db)
        admin = Actor("root", "admin")
        viewer = tokens.create("vera", "viewer", by=admin).token
        operator = tokens.create("olga", "operator", by=admin).token
    runner = CliRunner()
    args = ["doctor", "-w", str(root), "--json"]

    anonymous = runner.invoke(app, args, env=env)
    assert anonymous.exit_code == 6, anonymous.output
    looked = runner.invoke(app, args, env={**env, "RETRAINER_TOKEN": viewer})
    assert looked.exit_code == 0, looked.output
    assert "hunter22" not in looked.output
    assert "postgres:***@127.0.0.1:5432/test" in json.loads(looked.output)["checks"][0]["detail"]
    refused = runner.invoke(app, [*args, "--repair"], env={**env, "RETRAINER_TOKEN": viewer})
    assert refused.exit_code == 6
    assert "'operator' or 'admin'" in " ".join(refused.output.split())
    repaired = runner.invoke(app, [*args, "--repair"], env={**env, "RETRAINER_TOKEN": operator})
    assert repaired.exit_code == 0, repaired.output


def test_a_token_on_a_store_from_before_tokens_gets_a_way_out_not_a_traceback(
    make_workspace: NewWorkspace, pg_schema_url: str
) -> None:
    root = make_workspace(store=pg_schema_url)
    with Workspace.open(root) as ws:
        token = TokenStore(ws.db).create("olga", "operator", by=Actor("root", "admin")).token
        while "tokens" in inspect(ws.db.engine).get_table_names():
            downgrade_one_from(ws, current_revision(ws.db))  # back before migration 0005
        behind = current_revision(ws.db)
    result = CliRunner().invoke(app, ["doctor", "-w", str(root)], env={"RETRAINER_TOKEN": token})
    assert result.exit_code == 7, result.output
    text = " ".join(result.output.split())
    assert f"the store's schema is at {behind}, behind this retrainer's {head_revision()}" in text
    assert "retrainer status -w" in text and "Traceback" not in text
    with Workspace.open(root) as ws:  # what the message says to do: opening migrates
        assert current_revision(ws.db) == head_revision()


@pytest.mark.dask
def test_the_executor_must_answer_a_probe(
    make_workspace: NewWorkspace, dask_scheduler: str
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = make_workspace(executor=dask_scheduler)
    gone = make_workspace(executor=f"dask://127.0.0.1:{port}", name="gone")
    for ws_root in (root, gone):  # migrated, as any command but doctor leaves a store
        with Workspace.open(ws_root) as ws:
            assert ws.spec.executor != "local"
    runner = CliRunner()
    healthy = runner.invoke(app, ["doctor", "-w", str(root), "--json"])
    rows = {c["name"]: c for c in json.loads(healthy.output)["checks"]}
    assert healthy.exit_code == 0, healthy.output
    assert rows["executor"]["detail"] == f"{dask_scheduler}: ran a probe task"
    result = runner.invoke(app, ["doctor", "-w", str(gone), "--json"])
    assert result.exit_code == 7, result.output
    rows = {c["name"]: c for c in json.loads(result.output)["checks"]}
    assert rows["executor"]["status"] == "fail"
    detail = rows["executor"]["detail"]
    assert f"cannot reach the Dask scheduler at dask://127.0.0.1:{port}" in detail
