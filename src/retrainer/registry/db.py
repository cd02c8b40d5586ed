"""Engines and transactions for the metadata store (SQLite by default, PostgreSQL for teams).

SQLite is set up for several processes sharing one file: WAL journal, a busy timeout,
foreign keys on, ``synchronous=FULL``, and every transaction opened with
``BEGIN IMMEDIATE`` so that writers are serialised by the database instead of failing
half-way with "database is locked". A small bounded retry covers the rest.
PostgreSQL is used as is; appends to the audit chain take a table lock there.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from retrainer.errors import SpecError, StoreError
from retrainer.fsmode import create_private_file, make_private_dirs

__all__ = ["Clock", "Database", "as_utc", "build_engine", "safe_url", "utc_now"]

log = logging.getLogger(__name__)
T = TypeVar("T")
Clock = Callable[[], datetime]
_RETRIES = 8


def utc_now() -> datetime:
    """The default clock: timezone-aware UTC now."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """``value`` as aware UTC; naive values are taken as UTC.

    The store writes UTC and reads back aware UTC on every dialect (``UTCDateTime``);
    naive values only come from raw SQL over SQLite, whose text is naive UTC.
    """
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def safe_url(url: str | URL) -> str:
    """The URL with any password masked, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def build_engine(url: str, *, base_dir: Path) -> Engine:
    """An engine for ``url``; relative SQLite paths resolve against ``base_dir``.

    Raises:
        SpecError: the URL is malformed or names an unsupported database.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise SpecError(f"store: not a database URL: {url!r} ({exc})") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed, base_dir)
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True, future=True)
    raise SpecError(
        f"store: unsupported database {backend!r} in {safe_url(parsed)}; "
        "expected sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
    )


def _sqlite_engine(url: URL, base_dir: Path) -> Engine:
    database = url.database or ""
    if database in ("", ":memory:"):
        engine = create_engine(
            "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
    else:
        path = Path(database)
        if not path.is_absolute():
            path = base_dir / path
        make_private_dirs(path.parent)  # 0o700 / 0o600 whatever the umask; SQLite gives
        create_private_file(path)  # the -wal and -shm files the database file's mode
        engine = create_engine(
            url.set(database=str(path)), connect_args={"timeout": 30, "check_same_thread": False}
        )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        for pragma in (
            "journal_mode=WAL",
            "busy_timeout=30000",
            "foreign_keys=ON",
            "synchronous=FULL",
        ):
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _is_transient(exc: DBAPIError) -> bool:
    text = str(exc.orig).lower()
    return any(
        s in text for s in ("database is locked", "deadlock detected", "could not serialize")
    )


class Database:
    """The store's engine plus a clock; hands out retried transactions.

    ``transaction(fn)`` runs ``fn(session)`` in one transaction and commits it, retrying
    the whole function (after a rollback) on transient lock errors, so ``fn`` must be
    safe to run again from scratch. Errors that are not transient propagate unchanged.
    """

    def __init__(self, engine: Engine, *, clock: Clock = utc_now) -> None:
        self.engine = engine
        self.clock = clock
        self._sessions = sessionmaker(engine, expire_on_commit=False, future=True)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: commit on success, rollback on error. No retry."""
        with self._sessions.begin() as session:
            yield session

    def transaction(self, fn: Callable[[Session], T]) -> T:
        """Run ``fn`` in a transaction, retrying it whole on transient lock errors."""
        for attempt in range(_RETRIES):
            try:
                with self._sessions.begin() as session:
                    return fn(session)
            except OperationalError as exc:
                if not _is_transient(exc) or attempt == _RETRIES - 1:
                    raise StoreError(f"store unavailable: {exc.orig}") from exc
                delay = min(0.05 * 2**attempt, 1.0) * (1 + (os.getpid() % 7) / 10)
                log.debug("transient store error (%s); retry in %.2fs", exc.orig, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
