"""SEC-12: what retrainer creates for its own state is 0o700 (folders) / 0o600 (files),
whatever the umask: checked with ``stat`` after a real cycle run by the CLI, with the
store's -wal/-shm files while a connection is open, and for the server's prediction log."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import add_batch, synthetic_batch
from retrainer.deploy.predlog import LOG_DIR, PredictionLogWriter, PredictionRecord
from retrainer.workspace import Workspace

NewWorkspace = Callable[..., Path]


def modes(root: Path) -> dict[str, int]:
    """``{relative path: permission bits}`` of ``root`` and everything under it."""
    out = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        out[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return out


def not_private(root: Path) -> dict[str, str]:
    wrong = {}
    for rel, mode in modes(root).items():
        path = root / rel
        want = 0o700 if path.is_dir() else 0o600
        if mode != want:
            wrong[rel] = f"{oct(mode)} (want {oct(want)})"
    return wrong


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize("mask", [0o000, 0o022], ids=["umask-000", "umask-022"])
def test_state_after_a_real_cycle_is_private(make_workspace: NewWorkspace, mask: int) -> None:
    root = make_workspace()
    add_batch(root, "b1", synthetic_batch(1, 400, start_day=0))
    done = subprocess.run(
        [sys.executable, "-m", "retrainer", "run", "-w", str(root)],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=lambda: os.umask(mask),
        env=os.environ.copy(),
    )
    assert done.returncode == 0, done.stderr

    state = root / ".retrainer"
    assert (state / "retrainer.db").is_file()
    assert list((state / "artifacts" / "sha256").rglob("*"))  # blobs were written
    assert not_private(state) == {}


def test_the_store_wal_and_shm_files_are_private(make_workspace: NewWorkspace) -> None:
    root = make_workspace()
    with umask(0o000), Workspace.open(root) as ws, ws.db.engine.connect() as conn:
        conn.exec_driver_sql("SELECT count(*) FROM audit_events").all()
        state = root / ".retrainer"
        present = {p.name for p in state.iterdir()}
        assert {"retrainer.db-wal", "retrainer.db-shm"} <= present
        assert not_private(state) == {}


def test_the_prediction_log_is_private(tmp_path: Path) -> None:
    root = tmp_path / "ws" / LOG_DIR
    record = PredictionRecord("toy", 1, "p1", datetime(2024, 1, 1, tzinfo=UTC), {"x1": 0.5})
    with umask(0o000):
        writer = PredictionLogWriter(root, flush_seconds=0.05)
        writer.start()
        writer.submit([record])
        writer.close()
    assert writer.stats.written == 1
    assert list(root.rglob("*.parquet"))
    assert not_private(tmp_path / "ws" / ".retrainer") == {}
