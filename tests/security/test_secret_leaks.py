"""SEC-12, the leak hunt: plant a secret, use it everywhere retrainer connects, then look
for it in everything retrainer wrote or printed.

The secret is a random value in ``RT_CANARY_PW``, named in the spec as
``${env:RT_CANARY_PW}``: in the store URL (PostgreSQL, whose trust auth accepts any
password) or, on the SQLite store, in a PostgreSQL data source URL; and in both the alert
webhook's URL and its Authorization header. Real CLI processes (logs at DEBUG) run two
cycles (the second starts a canary), abort the rollout (the webhook is called and must
receive the value: proof that it was resolved), read everything back (spec show, models,
audit log, explain with HTML), and fail: twice with the value where a database error
echoes it (the database name of a source, then of the store), once without the variable.
Then every file under the workspace and HOME
(zip members and Parquet tables read as text), every captured stdout/stderr and every
row of every store table is searched for the value: there must be no hit.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from sqlalchemy import create_engine, inspect, text

from conftest import SYNTHETIC_SPEC, add_batch, synthetic_batch
from retrainer.governance.identity import Actor, TokenStore
from retrainer.workspace import Workspace

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

Done = subprocess.CompletedProcess[str]
ENV = "RT_CANARY_PW"
REF = "${env:" + ENV + "}"


class Hook:
    """The alert webhook: a loopback server recording each request's path and headers."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                seen.append((self.path, self.headers.get("Authorization", "")))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.httpd.shutdown()
    h.httpd.server_close()


@dataclass
class Session:
    """A workspace driven by CLI processes; every output is kept for the hunt."""

    root: Path
    env: dict[str, str]
    outputs: list[tuple[str, str]] = field(default_factory=list)

    def cli(self, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        return self.cli_all(args, code=code)[0]

    def cli_all(self, *commands: tuple[str, ...], code: int = 0) -> list[Done]:
        """Run the commands at once (each pays the import cost); each must exit ``code``."""
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "retrainer", *args],
                cwd=self.root,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for args in commands
        ]
        done = []
        for args, proc in zip(commands, procs, strict=True):
            out, err = proc.communicate(timeout=600)
            self.outputs.append((" ".join(args), out + err))
            assert proc.returncode == code, f"{args}: exit {proc.returncode}\n{err}"
            done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
        return done

    def set_spec(self, old: str, new: str) -> None:
        spec = self.root / "retrainer.yaml"
        body = spec.read_text()
        assert old in body, old
        spec.write_text(body.replace(old, new))


def spec_text(store: str, data: str, hook: Hook) -> str:
    body = SYNTHETIC_SPEC.format(approval="auto", store=f"'{store}'")
    body = body.replace("  source: data/batches\n", data)
    return body + (
        "deploy:\n"
        "  strategy: canary\n"
        "  canary: {steps: [20, 100], min_requests: 100, dwell: 5m}\n"
        "  alert:\n"
        f"    webhook: '{hook.base}/hook/{REF}?token={REF}'\n"
        f"    headers: {{Authorization: 'Bearer {REF}'}}\n"
    )


def dead_database_url(pg_url: str) -> str:
    """The server of ``pg_url`` with the secret as password *and* database name."""
    server = pg_url.split("?")[0].rsplit("/", 1)[0].replace("postgres@", f"postgres:{REF}@")
    return f"{server}/{REF}"


# --- the hunt ----------------------------------------------------------------------------


def readable(path: Path) -> list[bytes]:
    """The bytes of a file, plus the text of what it compresses (zip members, Parquet)."""
    data = path.read_bytes()
    out = [data]
    if data[:2] == b"PK":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                out += [archive.read(name) for name in archive.namelist()]
        except zipfile.BadZipFile:
            pass
    if data[:4] == b"PAR1":
        table = pq.read_table(io.BytesIO(data))
        out.append(table.to_pandas().to_csv().encode())
        out.append(str(table.schema.metadata).encode())
    return out


def file_hits(folders: list[Path], needles: list[bytes]) -> list[str]:
    hits = []
    for folder in folders:
        for path in folder.rglob("*"):
            real_file = path.is_file() and not path.is_symlink()
            if real_file and any(n in blob for blob in readable(path) for n in needles):
                hits.append(str(path))
    return hits


def store_hits(url: str, needles: list[str]) -> list[str]:
    """Every row of every table of the store, as text, searched for the needles."""
    engine = create_engine(url)
    hits = []
    try:
        with engine.connect() as conn:
            tables = inspect(conn).get_table_names()
            assert "audit_events" in tables and "model_versions" in tables, tables
            for table in tables:
                quoted = conn.dialect.identifier_preparer.quote(table)
                rows = conn.execute(text(f"SELECT * FROM {quoted}")).all()
                dump = "\n".join(repr(tuple(row)) for row in rows)
                hits += [f"{table}: {n!r}" for n in needles if n in dump]
    finally:
        engine.dispose()
    return hits


def hunt(session: Session, value: str, store_url: str) -> None:
    needles = [value, value.encode().hex()]
    folders = [session.root, Path(os.environ["HOME"])]
    assert file_hits(folders, [n.encode() for n in needles]) == []
    assert [cmd for cmd, out in session.outputs if any(n in out for n in needles)] == []
    assert store_hits(store_url, needles) == []


# --- the scenario --------------------------------------------------------------------------


def scenario(session: Session, hook: Hook, value: str, add_rows: object) -> None:
    """Two cycles (a canary starts), an alert, every read command, two failing commands."""
    add_rows(1, 0, False)  # type: ignore[operator]
    session.cli("run")
    add_rows(2, 1, True)  # type: ignore[operator]
    second = session.cli("run", "--json")
    assert json.loads(second.stdout)["version"] == 2, second.stdout
    session.cli("rollout", "abort", "toy", "--reason", "planted secret check")
    assert hook.seen == [(f"/hook/{value}?token={value}", f"Bearer {value}")]

    reads = session.cli_all(
        ("spec", "show"),
        ("models", "show", "toy:2", "--json"),
        ("audit", "log", "--json"),
        ("explain", "toy", "1", "--html", "explain.html"),
    )
    assert f"Bearer {REF}" in reads[0].stdout  # the reference, shown as written
    assert (session.root / "explain.html").is_file()


def fail_with_the_value_echoed(session: Session, pg_url: str, value: str) -> None:
    """A source, then a store, whose database name is the value: psycopg names it."""
    dead = dead_database_url(pg_url)
    spec = (session.root / "retrainer.yaml").read_text()
    source_line = next(line for line in spec.splitlines() if line.startswith("  source:"))
    dead_source = f"  source: '{dead}'" + ("" if "  query:" in spec else "\n  query: batches")
    session.set_spec(source_line, dead_source)
    failed = session.cli("retrain", "toy", "--reason", "source down", code=2)
    assert "does not exist" in failed.stderr and "***" in failed.stderr, failed.stderr
    session.set_spec(dead_source, source_line)

    store_line = next(line for line in spec.splitlines() if line.startswith("store:"))
    session.set_spec(store_line, f"store: '{dead}'")
    down = session.cli("status", code=7)
    assert "does not exist" in down.stderr and "***" in down.stderr, down.stderr
    session.set_spec(f"store: '{dead}'", store_line)
    del session.env[ENV]
    missing = session.cli("run", code=2)  # the store or the source needs it
    assert REF in missing.stderr and f"set {ENV}" in missing.stderr, missing.stderr
    session.env[ENV] = value


@pytest.fixture
def canary_value(monkeypatch: pytest.MonkeyPatch) -> str:
    value = "rtcanary" + secrets.token_hex(12)  # usable as a password and database name
    monkeypatch.setenv(ENV, value)
    monkeypatch.setenv("RETRAINER_LOG", "DEBUG")
    return value


def test_a_secret_in_the_postgresql_store_url_and_webhook_never_leaks(
    tmp_path: Path, pg_schema_url: str, hook: Hook, canary_value: str
) -> None:
    assert "postgres@" in pg_schema_url
    store = pg_schema_url.replace("postgres@", f"postgres:{REF}@", 1)
    root = tmp_path / "ws"
    (root / "data" / "batches").mkdir(parents=True)
    (root / "retrainer.yaml").write_text(
        spec_text(store, "  source: data/batches\n", hook), encoding="utf-8"
    )
    with Workspace.open(root) as ws:  # a shared store: the CLI acts through a token
        issued = TokenStore(ws.db).create("ops", "admin", by=Actor("bootstrap", "admin"))
    session = Session(root, {**os.environ, "RETRAINER_TOKEN": issued.token})

    def add_rows(seed: int, day: int, flipped: bool) -> None:
        add_batch(root, f"b{seed}", synthetic_batch(seed, 400, start_day=day, flipped=flipped))

    scenario(session, hook, canary_value, add_rows)
    fail_with_the_value_echoed(session, pg_schema_url, canary_value)
    hunt(session, canary_value, pg_schema_url)


def test_a_secret_in_a_sql_source_url_and_webhook_never_leaks_on_sqlite(
    tmp_path: Path, pg_schema_url: str, hook: Hook, canary_value: str
) -> None:
    source = pg_schema_url.replace("postgres@", f"postgres:{REF}@", 1)
    root = tmp_path / "ws"
    root.mkdir()
    data = f"  source: '{source}'\n  query: batches\n"
    (root / "retrainer.yaml").write_text(
        spec_text("sqlite:///.retrainer/retrainer.db", data, hook), encoding="utf-8"
    )
    rows = create_engine(pg_schema_url)

    def add_rows(seed: int, day: int, flipped: bool) -> None:
        frame = synthetic_batch(seed, 400, start_day=day, flipped=flipped)
        with rows.begin() as conn:
            frame.to_sql("batches", conn, if_exists="append", index=False)

    try:
        session = Session(root, dict(os.environ))
        scenario(session, hook, canary_value, add_rows)
        fail_with_the_value_echoed(session, pg_schema_url, canary_value)
    finally:
        rows.dispose()
    hunt(session, canary_value, "sqlite:///" + str(root / ".retrainer" / "retrainer.db"))
