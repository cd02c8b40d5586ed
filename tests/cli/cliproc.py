"""Running the real ``retrainer`` CLI as processes, for the CLI tests (not a test module)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

RETRAINER = [sys.executable, "-m", "retrainer"]


def start(*args: object, cwd: Path) -> subprocess.Popen[str]:
    """Start ``retrainer ARGS`` in ``cwd`` with this process's environment."""
    return subprocess.Popen(
        [*RETRAINER, *map(str, args)],
        cwd=cwd,
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    """Wait for ``proc`` (killing it after 300 s) and return what it printed."""
    try:
        out, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def cli_all(*commands: tuple[object, ...], cwd: Path) -> list[subprocess.CompletedProcess[str]]:
    """Start every command at the same time; results in order."""
    procs = [start(*c, cwd=cwd) for c in commands]
    return [finish(p) for p in procs]


def ok_json(result: subprocess.CompletedProcess[str]) -> Any:
    """The JSON a successful command printed; fails the test with its stderr otherwise."""
    assert result.returncode == 0, f"{result.args}\n{result.stderr}"
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"{result.args} printed no valid JSON:\n{result.stdout}") from exc
