"""``retrainer init``: a spec that the rest of the CLI accepts; the rainfall example's yearly
batches; refusals (existing spec, unknown example) exit 2 and change nothing.

The four ``init`` invocations run as real processes at once (module fixture).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from retrainer.cli.app import app
from retrainer.quickstart.templates import GENERIC_SPEC, RAINFALL_SPEC
from retrainer.spec import parse_spec

RETRAINER = [sys.executable, "-m", "retrainer"]
MINE = "# my own spec, keep it\nmodel: {}\n"


@dataclass
class Outcome:
    code: int
    out: str
    err: str


@dataclass
class Inits:
    base: Path
    env: dict[str, str]
    runs: dict[str, Outcome]


@pytest.fixture(scope="module")
def inits(tmp_path_factory: pytest.TempPathFactory) -> Inits:
    base = tmp_path_factory.mktemp("init")
    env = os.environ.copy()
    env.pop("RETRAINER_WORKSPACE", None)
    env.update(HOME=str(tmp_path_factory.mktemp("home")), RETRAINER_ACTOR="tester")
    (base / "taken").mkdir()
    (base / "taken" / "retrainer.yaml").write_text(MINE)
    commands = {
        "generic": ["init", "gen"],
        "rainfall": ["init", "rain", "--example", "rainfall"],
        "taken": ["init", "taken"],
        "unknown-example": ["init", "other", "--example", "nope"],
    }
    procs = {
        key: subprocess.Popen(
            [*RETRAINER, *args],
            cwd=base,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for key, args in commands.items()
    }
    runs = {}
    for key, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        runs[key] = Outcome(proc.returncode, out, err)
    return Inits(base, env, runs)


def test_init_writes_a_spec_that_status_accepts(inits: Inits) -> None:
    o = inits.runs["generic"]
    assert o.code == 0, o.err
    spec_path = inits.base / "gen" / "retrainer.yaml"
    assert f"Created {Path('gen') / 'retrainer.yaml'}" in o.out
    assert spec_path.read_text() == GENERIC_SPEC
    assert (inits.base / "gen" / "data" / "batches").is_dir()
    assert list((inits.base / "gen" / "data" / "batches").iterdir()) == []

    status = subprocess.run(
        [*RETRAINER, "status", "-w", "gen", "--json"],
        cwd=inits.base,
        env=inits.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert status.returncode == 0, status.stderr
    st = json.loads(status.stdout)
    assert st["model"] == "my-model"
    assert st["task"] == "classification"
    assert st["metric"] == "roc_auc"
    assert st["champion"] is None
    assert st["versions"] == 0
    assert st["runs"] == []
    assert Path(st["workspace"]) == (inits.base / "gen").resolve()


def test_init_rainfall_writes_three_yearly_batches(inits: Inits) -> None:
    o = inits.runs["rainfall"]
    assert o.code == 0, o.err
    root = inits.base / "rain"
    assert (root / "retrainer.yaml").read_text() == RAINFALL_SPEC
    spec = parse_spec(RAINFALL_SPEC)
    files = sorted((root / "data" / "batches").iterdir())
    assert len(files) == 3, files
    years = []
    for path in files:
        match = re.fullmatch(r"rain-(\d{4})\.parquet", path.name)
        assert match, path.name
        frame = pd.read_parquet(path)
        year = int(match.group(1))
        years.append(year)
        assert set(frame["date"].dt.year) == {year}
        assert len(frame) >= 365
        assert set(spec.required_columns) <= set(frame.columns)
    assert years == list(range(years[0], years[0] + 3))


def test_init_refuses_to_overwrite_a_spec(inits: Inits) -> None:
    o = inits.runs["taken"]
    assert o.code == 2, o.err
    err = " ".join(o.err.split())
    assert "[SPEC_INVALID]" in err
    assert f"{Path('taken') / 'retrainer.yaml'} already exists; not overwriting it" in err
    assert o.out == ""
    assert (inits.base / "taken" / "retrainer.yaml").read_text() == MINE
    assert sorted(p.name for p in (inits.base / "taken").iterdir()) == ["retrainer.yaml"]


def test_init_unknown_example_exits_2(inits: Inits) -> None:
    o = inits.runs["unknown-example"]
    assert o.code == 2, o.err
    err = " ".join(o.err.split())
    assert "--example: expected one of rainfall, got 'nope'" in err
    assert o.out == ""
    assert not (inits.base / "other").exists()


def test_init_next_step_hint_is_a_valid_command(tmp_path: Path) -> None:
    """The "Next: ... 'retrainer ... run'" hint must parse: ``-w`` belongs after the command."""
    runner = CliRunner()
    result = runner.invoke(app, ["init", str(tmp_path / "ws")])
    assert result.exit_code == 0, result.output
    hint = re.search(r"'(retrainer [^']*)'", " ".join(result.output.split()))
    assert hint, result.output
    args = shlex.split(hint.group(1))[1:]
    assert "run" in args
    checked = runner.invoke(app, [*args, "--help"])
    assert checked.exit_code == 0, f"{hint.group(1)!r} is not a valid command:\n{checked.output}"
