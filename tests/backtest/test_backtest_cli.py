"""``retrainer backtest`` from the command line: table, JSON file or stdout, HTML, errors;
and the policies in parallel worker processes give the same numbers as in one."""

from __future__ import annotations

import json
from pathlib import Path

from backkit import workspace
from typer.testing import CliRunner

from retrainer.cli.app import app


def test_table_json_and_html_from_one_run(tmp_path: Path) -> None:
    spec, data = workspace(tmp_path / "w")
    out, page = tmp_path / "bt.json", tmp_path / "bt.html"
    result = CliRunner().invoke(
        app,
        [
            "backtest", "--spec", str(spec), "--data", str(data), "--batch-by", "rows:400",
            "--warmup", "2", "--policies", "never,spec,periodic:2", "--workers", "1",
            "--json", str(out), "--html", str(page),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "10 batches (rows:400, 4000 rows); the first 2 trained the initial champion" in text
    saved = json.loads(out.read_text())
    for name in ("never", "spec", "periodic:2"):
        p = saved["policies"][name]
        assert f"{name} {p['mean']:.4f} {p['worst']:.4f} {p['retrains']} {p['promotions']}" in text
    assert f"JSON: {out}" in text and f"HTML report: {page}" in text
    assert page.read_text().startswith("<!doctype html>")
    assert saved["settings"]["batch_by"] == "rows:400" and saved["settings"]["warmup"] == 2


def test_json_to_stdout_and_parallel_workers_match_one_process(tmp_path: Path) -> None:
    spec, data = workspace(tmp_path / "w")
    args = ["backtest", "--spec", str(spec), "--data", str(data), "--batch-by", "rows:400"]
    args += ["--warmup", "2", "--policies", "every_batch,spec", "--json", "-"]
    runner = CliRunner()
    one = runner.invoke(app, [*args, "--workers", "1"])
    two = runner.invoke(app, [*args, "--workers", "2"])  # two spawned processes
    assert one.exit_code == 0 and two.exit_code == 0, (one.output, two.output)
    a, b = json.loads(one.stdout), json.loads(two.stdout)
    for name in ("every_batch", "spec"):
        pa, pb = a["policies"][name], b["policies"][name]
        assert pa["per_batch"] == pb["per_batch"], name
        assert (pa["mean"], pa["retrains"]) == (pb["mean"], pb["retrains"])


def test_bad_input_exits_2_naming_the_option(tmp_path: Path) -> None:
    spec, data = workspace(tmp_path / "w")
    runner = CliRunner()
    cases = {
        ("--batch-by", "fortnight"): "--batch-by: expected day, week, month or rows:N",
        ("--policies", "never,sometimes"): "'sometimes' is not a policy",
        ("--data", str(tmp_path / "none.csv")): "none.csv: no such file or folder",
        ("--warmup", "0"): "--warmup 0: expected at least 1",
        ("--time-column", "when"): "no time column 'when'",
    }
    for (option, value), message in cases.items():
        args = ["backtest", "--spec", str(spec), "--data", str(data), option, value]
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (option, result.output)
        assert message in " ".join(result.output.split()), (option, result.output)
