"""``retrainer contract infer`` and ``retrainer contract check`` through the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml
from cliproc import cli_all
from typer.testing import CliRunner, Result

from conftest import add_batch, synthetic_batch
from retrainer.cli.app import app
from retrainer.orchestrate.cycle import run_cycle
from retrainer.spec import load_spec
from retrainer.workspace import Workspace


def invoke(*args: object) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def folded(text: str) -> str:
    return " ".join(text.split())


def unwrapped(text: str) -> str:
    """Rich wraps long paths at 80 columns: join the lines again."""
    return text.replace("\n", "")


def test_infer_needs_a_champion(make_workspace: Callable[..., Path]) -> None:
    root = make_workspace()
    result = invoke("contract", "infer", "toy", "-w", root)
    assert result.exit_code == 3
    assert "toy has no champion yet" in folded(result.stderr)


def test_infer_prints_a_contract_that_loads_and_check_uses_it(
    make_workspace: Callable[..., Path], tmp_path: Path
) -> None:
    root = make_workspace()
    train = synthetic_batch(1, 400, start_day=0)
    add_batch(root, "b1", train)
    with Workspace.open(root) as ws:
        assert run_cycle(ws, actor="setup").promoted
    good = tmp_path / "good.csv"
    synthetic_batch(2, 300, start_day=1).to_csv(good, index=False)
    bad = synthetic_batch(3, 300, start_day=2)
    bad.loc[:149, "x1"] = np.nan
    bad.loc[3, "x2"] = 1e6
    bad.to_parquet(tmp_path / "bad.parquet")

    infer, infer_json = cli_all(
        ("contract", "infer", "toy", "-w", "ws", "--widen", "0.5"),
        ("contract", "infer", "toy", "-w", "ws", "--json"),
        cwd=root.parent,
    )

    assert infer.returncode == 0, infer.stderr
    assert infer.stdout.startswith("# Inferred by 'retrainer contract infer'")
    section = yaml.safe_load(infer.stdout)["contract"]
    assert section["min_rows"] == 50  # the spec's own keys are kept
    x1 = section["columns"]["x1"]
    span = train["x1"].max() - train["x1"].min()
    assert x1["min"] <= train["x1"].min() - 0.49 * span and x1["max_null_share"] == 0.05
    assert section["columns"]["color"]["allowed"] == ["blue", "green", "red"]
    data = json.loads(infer_json.stdout)
    assert data["version"] == 1 and data["snapshot"]["kind"] == "train"

    # paste it over the contract section: the spec loads, and check uses it
    spec_file = root / "retrainer.yaml"
    text = spec_file.read_text()
    spec_file.write_text(text.replace("contract:\n  min_rows: 50\n", infer.stdout))
    assert load_spec(spec_file).contract.columns["x1"].min == x1["min"]
    out = tmp_path / "contract.yaml"
    written = invoke("contract", "infer", "toy", "-w", root, "--out", out)
    assert written.exit_code == 0 and f"wrote the inferred contract to {out}" in unwrapped(
        written.stdout
    )
    assert (
        yaml.safe_load(out.read_text())["contract"]["columns"].keys() == section["columns"].keys()
    )

    passed = invoke("contract", "check", "toy", good, "-w", root)
    assert passed.exit_code == 0, passed.output
    assert "good.csv passes the contract of toy: 300 rows" in folded(passed.stdout)

    failed = invoke("contract", "check", "toy", tmp_path / "bad.parquet", "-w", root, "--json")
    assert failed.exit_code == 2
    report = json.loads(failed.stdout)
    assert [(f["check"], f["column"]) for f in report["failures"]] == [
        ("OUT_OF_RANGE", "x2"),
        ("NULL_STORM", "x1"),
    ]
    people = invoke("contract", "check", "toy", tmp_path / "bad.parquet", "-w", root)
    assert people.exit_code == 2
    assert "fails the contract of toy" in folded(people.stdout)
    assert "column 'x1' is 50.0% null" in folded(people.stdout)

    other = tmp_path / "notes.txt"
    other.write_text("hello")
    wrong = invoke("contract", "check", "toy", other, "-w", root)
    assert wrong.exit_code == 2 and "expected a .csv or .parquet file" in folded(wrong.stderr)
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(b"ts,x1\n2024-01-01,caf\xe9\n")
    unreadable = invoke("contract", "check", "toy", latin1, "-w", root)
    assert unreadable.exit_code == 2 and "byte offset 20" in folded(unreadable.stderr)
    with Workspace.open(root) as ws:  # checking records nothing
        assert [b.batch_key for b in ws.ledger.batches("toy")] == ["b1.parquet"]
