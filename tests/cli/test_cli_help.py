"""``--help`` of the app and of every command: exit 0 and an example; unknown command: 2.

The app's own help, the installed console script and an unknown command run as real
processes (concurrently: each pays the import cost). The help of every
command is then checked in-process against the same Typer app, walked so that a command
added later is covered too.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from retrainer.cli.app import app

RETRAINER = [sys.executable, "-m", "retrainer"]
EXIT_CODES = "0 ok, 1 internal error, 2 bad input, 3 not found, 4 conflict, 5 integrity, 6 refused"


def _command_paths() -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """(leaf commands, groups) of the app, as argument paths."""
    leaves: list[tuple[str, ...]] = []
    groups: list[tuple[str, ...]] = []

    def walk(cmd: object, path: tuple[str, ...]) -> None:
        sub = getattr(cmd, "commands", None)
        if sub:
            if path:
                groups.append(path)
            for name, child in sub.items():
                walk(child, (*path, name))
        else:
            leaves.append(path)

    walk(typer.main.get_command(app), ())
    return leaves, groups


LEAVES, GROUPS = _command_paths()


def flat(text: str) -> str:
    """Help text with box drawing removed and whitespace collapsed (rich wraps at 80)."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def test_every_expected_command_exists() -> None:
    names = {" ".join(p) for p in LEAVES}
    assert {
        "init",
        "quickstart",
        "run",
        "retrain",
        "status",
        "promote",
        "rollback",
        "models list",
        "models show",
        "audit log",
    } <= names
    assert {("models",), ("audit",)} <= set(GROUPS)


def test_real_processes_help_and_unknown_command(tmp_path: Path) -> None:
    env = os.environ.copy()
    script = Path(sys.executable).with_name("retrainer")
    commands = {
        "app": [*RETRAINER, "--help"],
        "unknown": [*RETRAINER, "frobnicate"],
        "script": [str(script), "--help"] if script.exists() else None,
    }
    procs = {
        key: subprocess.Popen(
            cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for key, cmd in commands.items()
        if cmd is not None
    }
    done = {key: (p, *p.communicate(timeout=180)) for key, p in procs.items()}

    p, out, err = done["app"]
    assert p.returncode == 0, err
    text = flat(out)
    assert "Usage: python -m retrainer" in text or "Usage: retrainer" in text
    for name in ("init", "quickstart", "run", "retrain", "status", "promote", "rollback"):
        assert re.search(rf"\b{name}\b", text), name
    assert "models" in text
    assert "audit" in text
    assert "retrainer quickstart" in text  # the example: where to start
    assert "retrainer init then retrainer run" in text
    assert "Exit codes:" in text
    assert EXIT_CODES in text
    assert err == ""

    p, out, err = done["unknown"]
    assert p.returncode == 2
    assert out == ""
    assert "No such command 'frobnicate'" in flat(err)
    assert "--help" in err

    if "script" in done:
        p, out, err = done["script"]
        assert p.returncode == 0, err
        assert flat(out) == flat(done["app"][1]).replace("python -m retrainer", "retrainer")


@pytest.mark.parametrize("path", LEAVES, ids=[" ".join(p) for p in LEAVES])
def test_every_command_help_shows_an_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    text = flat(result.output)
    assert f"Usage: retrainer {' '.join(path)}" in text
    assert re.search(rf"Examples?: retrainer {re.escape(' '.join(path))}\b", text), text


@pytest.mark.parametrize("path", GROUPS, ids=[" ".join(p) for p in GROUPS])
def test_every_group_help_lists_its_commands(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    text = flat(result.output)
    subcommands = [leaf[len(path)] for leaf in LEAVES if leaf[: len(path)] == path]
    assert subcommands
    for name in subcommands:
        assert re.search(rf"\b{name}\b", text), name


def test_unknown_subcommand_and_bad_option_exit_2() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["models", "frobnicate"])
    assert result.exit_code == 2
    assert "No such command 'frobnicate'" in flat(result.output)
    result = runner.invoke(app, ["status", "--no-such-option"])
    assert result.exit_code == 2
    assert "No such option: --no-such-option" in flat(result.output)
