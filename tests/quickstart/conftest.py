"""One real ``retrainer quickstart DIR --json`` run, shared by every quickstart test.

The run streams 50 years of rainfall through the real loop (tens of seconds), so it
happens once per test session: under pytest-xdist the workers share one run through a
lock file in the session's common temporary folder (the first worker runs it, the others
wait and read its recorded outcome, including a failure). Tests must treat the run's
workspace as read-only: copy it to change it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

RETRAINER = [sys.executable, "-m", "retrainer"]
RUN_TIMEOUT_S = 1200
"""Only a guard against a hung process: far above the normal run time."""


@dataclass(frozen=True)
class QuickstartRun:
    """What one ``retrainer quickstart DIR --json`` printed, and where its workspace is."""

    workspace: Path
    data: dict[str, Any]
    env: dict[str, str]
    stderr: str


def cli_env(home: Path) -> dict[str, str]:
    """This process's environment with a private HOME (the session fixture runs before the
    function-scoped HOME isolation of ``tests/conftest.py``) and a wide, colourless console.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETRAINER_")}
    home.mkdir(parents=True, exist_ok=True)
    env |= {
        "HOME": str(home),
        "MPLCONFIGDIR": str(home / ".mpl"),
        "RETRAINER_ACTOR": "quickstart-tester",
        "COLUMNS": "200",
        "NO_COLOR": "1",
    }
    return env


def run_cli(*args: object, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``retrainer ARGS`` to completion and return what it printed."""
    return subprocess.run(
        [*RETRAINER, *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


@contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` (shared by the xdist workers)."""
    import fcntl

    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _shared_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bool]:
    """The folder every xdist worker of this session sees, and whether it is shared."""
    base = tmp_path_factory.getbasetemp()
    try:
        import fcntl  # noqa: F401 - POSIX only; elsewhere each worker runs its own
    except ImportError:
        return base, False
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return base.parent, True
    return base, False


@pytest.fixture(scope="session")
def quickstart_run(tmp_path_factory: pytest.TempPathFactory) -> QuickstartRun:
    """The session's one quickstart run (read-only: copy the workspace to change it)."""
    root, shared = _shared_root(tmp_path_factory)
    folder = root / "quickstart-run"
    outcome = folder / "outcome.json"
    folder.mkdir(exist_ok=True)
    env = cli_env(folder / "home")
    workspace = folder / "ws"
    lock = _exclusive(folder / "run.lock") if shared else _no_lock()
    with lock:
        if not outcome.exists():
            proc = run_cli("quickstart", workspace, "--json", env=env, cwd=folder)
            record = {"rc": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}
            outcome.write_text(json.dumps(record))
    record = json.loads(outcome.read_text())
    assert record["rc"] == 0, f"retrainer quickstart failed:\n{record['stderr']}"
    try:
        data = json.loads(record["stdout"])
    except json.JSONDecodeError as exc:
        raise AssertionError(f"quickstart --json printed no JSON:\n{record['stdout']}") from exc
    return QuickstartRun(workspace=workspace, data=data, env=env, stderr=record["stderr"])


@contextmanager
def _no_lock() -> Iterator[None]:
    yield
