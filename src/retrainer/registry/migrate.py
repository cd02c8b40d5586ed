"""Schema migrations (Alembic), run programmatically and safely from several processes.

``migrate`` takes a lock for its whole run, so that two processes starting on a fresh
store at once do not both run migrations: ``BEGIN IMMEDIATE`` on SQLite (our engine
opens every transaction so), a transaction-scoped advisory lock on PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from retrainer.registry.db import Database

__all__ = ["current_revision", "head_revision", "migrate"]

_LOCK_KEY = 0x7265747261696E  # "retrain"


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    return cfg


def head_revision() -> str:
    """The newest migration this version of retrainer knows."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(db: Database) -> str | None:
    """The migration the store is at, or None for an empty store."""
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(db: Database) -> None:
    """Bring the store's schema to the newest revision. Idempotent; safe to race."""
    cfg = _config()
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
