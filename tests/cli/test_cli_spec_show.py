"""``retrainer spec show``: the validated spec with defaults, its hash, secrets as references."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retrainer.cli.app import app
from retrainer.spec import load_spec, parse_spec, spec_hash

NewWorkspace = Callable[..., Path]
VALUE = "pw-4c1f0e9b77"


@pytest.fixture
def root(make_workspace: NewWorkspace, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RT_SHOW_PW", VALUE)
    ws = make_workspace(store="postgresql+psycopg://app:${env:RT_SHOW_PW}@db.internal/meta")
    with (ws / "retrainer.yaml").open("a") as f:
        f.write("deploy:\n  alert: {webhook: 'https://hooks.example.com/${env:RT_SHOW_PW}'}\n")
    return ws


def test_json_has_defaults_the_hash_and_references_only(root: Path) -> None:
    result = CliRunner().invoke(app, ["spec", "show", "-w", str(root), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    spec = load_spec(root / "retrainer.yaml")
    assert out["sha256"] == spec_hash(spec)
    assert out["file"] == str((root / "retrainer.yaml").resolve())
    assert out["spec"]["store"] == "postgresql+psycopg://app:${env:RT_SHOW_PW}@db.internal/meta"
    assert out["spec"]["deploy"]["alert"]["webhook"].endswith("/${env:RT_SHOW_PW}")
    assert out["spec"]["monitor"]["drift"]["alpha"] == 0.01  # a default, filled in
    assert out["spec"]["artifacts"] == "file://.retrainer/artifacts"
    assert VALUE not in result.output
    assert not (root / ".retrainer").exists()  # the store was not opened


def test_the_yaml_shown_is_a_spec_with_the_same_hash(root: Path) -> None:
    result = CliRunner().invoke(app, ["spec", "show", "-w", str(root)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"# {(root / 'retrainer.yaml').resolve()}"
    assert lines[1] == f"# spec sha256 {spec_hash(load_spec(root / 'retrainer.yaml'))}"
    assert spec_hash(parse_spec(result.stdout)) == spec_hash(load_spec(root / "retrainer.yaml"))
    assert VALUE not in result.output


def test_template_text_in_the_spec_is_shown_literally(root: Path) -> None:
    spec = root / "retrainer.yaml"
    spec.write_text(
        spec.read_text().replace("  task:", "  owner: '{{ 7*7 }}{% for x in y %}'\n  task:")
    )
    result = CliRunner().invoke(app, ["spec", "show", "-w", str(root), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["spec"]["model"]["owner"] == "{{ 7*7 }}{% for x in y %}"


def test_a_bad_spec_is_exit_2_naming_the_key(root: Path) -> None:
    spec = root / "retrainer.yaml"
    spec.write_text(spec.read_text().replace("${env:RT_SHOW_PW}@db", "${env:rt_show}@db"))
    result = CliRunner().invoke(app, ["spec", "show", "-w", str(root)])
    assert result.exit_code == 2
    assert "store: malformed secret reference '${env:rt_show}'" in result.output
