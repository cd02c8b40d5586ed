"""Store contract, schema: migrations (idempotent, race-safe: FT-05), models match, SQLite setup."""

from __future__ import annotations

import multiprocessing
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from retrainer.registry import (
    Database,
    Registry,
    build_engine,
    current_revision,
    head_revision,
    migrate,
)
from retrainer.registry.tables import Base

TABLES = {*Base.metadata.tables, "alembic_version"}


def _schema(db: Database) -> dict[str, Any]:
    """Tables, their columns and indexes, the revision rows and the audit triggers."""
    with db.engine.connect() as conn:
        insp = inspect(conn)
        tables = {
            t: (
                [c["name"] for c in insp.get_columns(t)],
                sorted(i["name"] or "" for i in insp.get_indexes(t)),
            )
            for t in insp.get_table_names()
        }
        revisions = [r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))]
        if db.dialect == "sqlite":
            triggers = conn.execute(
                text("SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name")
            ).all()
        else:
            triggers = conn.execute(
                text(
                    "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal "
                    "AND tgrelid = 'audit_events'::regclass ORDER BY tgname"
                )
            ).all()
    return {"tables": tables, "revisions": revisions, "triggers": [r[0] for r in triggers]}


def _assert_schema_is_head(db: Database) -> None:
    schema = _schema(db)
    assert set(schema["tables"]) == TABLES
    assert schema["revisions"] == [head_revision()]
    expected_triggers = (
        ["audit_events_no_delete", "audit_events_no_update"]
        if db.dialect == "sqlite"
        else ["audit_events_append_only"]
    )
    assert set(expected_triggers) <= set(schema["triggers"])
    assert current_revision(db) == head_revision()


def test_a_fresh_store_has_no_revision(store_url: str, tmp_path: Path) -> None:
    db = Database(build_engine(store_url, base_dir=tmp_path))
    try:
        assert current_revision(db) is None
        migrate(db)
        assert current_revision(db) == head_revision()
    finally:
        db.dispose()


def test_migrated_store_is_at_head(db: Database) -> None:
    _assert_schema_is_head(db)


def test_migrating_again_is_a_no_op(db: Database) -> None:
    Registry(db).create_version("rain", run_id=None, actor="t", params={}, lineage={})
    before = _schema(db)
    migrate(db)
    migrate(db)
    assert _schema(db) == before
    assert [v.version for v in Registry(db).versions("rain")] == [1]
    _assert_schema_is_head(db)


def test_table_models_match_the_migrated_schema(db: Database) -> None:
    with db.engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
        )
    assert diff == []


# --- FT-05: racing migrations ------------------------------------------------------------


def _migrate_at_once(url: str, base_dir: str, barrier: Any) -> str:
    """Wait for the other process, then create the store and migrate; "ok" or the error."""
    try:
        barrier.wait(timeout=120)
        database = Database(build_engine(url, base_dir=Path(base_dir)))
        try:
            migrate(database)
        finally:
            database.dispose()
        return "ok"
    except Exception as exc:  # noqa: BLE001 - reported, and the test fails on it
        return repr(exc)


def _migrate_in_child(
    url: str, base_dir: str, barrier: Any, results: Any
) -> None:  # pragma: no cover - runs in a spawned process
    results.put(_migrate_at_once(url, base_dir, barrier))


def test_ft05_two_processes_migrate_a_fresh_sqlite_file_at_once(tmp_path: Path) -> None:
    """This process and a spawned one migrate the same new file at the same moment."""
    url = f"sqlite:///{tmp_path / 'fresh' / 'store.db'}"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    child = ctx.Process(target=_migrate_in_child, args=(url, str(tmp_path), barrier, results))
    child.start()
    try:
        here = _migrate_at_once(url, str(tmp_path), barrier)
        there = results.get(timeout=120)
        child.join(timeout=30)
    finally:
        if child.is_alive():
            child.kill()
    assert (here, there) == ("ok", "ok")
    assert child.exitcode == 0
    db = Database(build_engine(url, base_dir=tmp_path))
    try:
        _assert_schema_is_head(db)
    finally:
        db.dispose()


@pytest.mark.postgres
def test_ft05_two_engines_migrate_a_fresh_postgresql_schema_at_once(
    pg_schema_url: str, tmp_path: Path
) -> None:
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def run() -> None:
        database = Database(build_engine(pg_schema_url, base_dir=tmp_path))
        try:
            barrier.wait(timeout=30)
            migrate(database)
            outcomes.append("ok")
        except BaseException as exc:  # noqa: BLE001 - any exception here fails the test
            outcomes.append(repr(exc))
        finally:
            database.dispose()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert outcomes == ["ok", "ok"]
    db = Database(build_engine(pg_schema_url, base_dir=tmp_path))
    try:
        _assert_schema_is_head(db)
    finally:
        db.dispose()


# --- SQLite file and connection setup ----------------------------------------------------


def test_sqlite_store_file_is_private(tmp_path: Path) -> None:
    """0o600 file in a 0o700 folder, even under a permissive umask."""
    folder = tmp_path / "ws" / ".retrainer"
    old = os.umask(0)
    try:
        db = Database(build_engine("sqlite:///ws/.retrainer/store.db", base_dir=tmp_path))
        migrate(db)  # also creates the -wal and -shm files
    finally:
        os.umask(old)
    try:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        files = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
        assert files["store.db"] == 0o600
        assert all(mode == 0o600 for mode in files.values()), files
    finally:
        db.dispose()


def test_sqlite_connections_use_wal_and_wait_for_locks(tmp_path: Path) -> None:
    db = Database(build_engine(f"sqlite:///{tmp_path / 'store.db'}", base_dir=tmp_path))
    try:
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() >= 5000
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    finally:
        db.dispose()
