"""``retrainer card``: HTML and Markdown by suffix and the evidence as JSON (real
processes), and clear refusals (another suffix, a folder that is not there, no such
version, no output asked for; in-process, as they fail before any work)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from cliproc import cli_all, ok_json
from typer.testing import CliRunner

from conftest import add_batch, synthetic_batch
from retrainer.cli.app import app
from retrainer.orchestrate.cycle import run_cycle
from retrainer.workspace import Workspace


def test_card_command_writes_html_and_markdown_and_refuses_clearly(
    make_workspace: Callable[..., Path], tmp_path: Path
) -> None:
    root = make_workspace()
    add_batch(root, "b0", synthetic_batch(0, 400, start_day=0))
    with Workspace.open(root) as ws:
        assert run_cycle(ws, actor="t", manual_reason="first").promoted
    out = tmp_path / "out"
    out.mkdir()
    html, md = cli_all(
        ("card", "toy", "1", "-w", root, "-o", out / "card.html", "--json"),
        ("card", "toy", "1", "-w", root, "--output", out / "card.md"),
        cwd=tmp_path,
    )
    runner = CliRunner()
    missing, suffix, no_folder, nothing = (
        runner.invoke(app, ["card", "toy", *args, "-w", str(root)])
        for args in (
            ["9", "-o", str(out / "v9.html")],
            ["1", "-o", str(out / "card.pdf")],
            ["1", "-o", str(out / "no" / "card.html")],
            ["1"],
        )
    )
    data = ok_json(html)
    assert data["card"] == str(out / "card.html")
    page = (out / "card.html").read_text()
    assert page.startswith("<!doctype html>") and "Model card: toy v1" in page
    assert "data:image/png;base64," in page

    assert md.returncode == 0, md.stderr
    text = (out / "card.md").read_text()
    assert text.startswith("# Model card: toy v1") and "## Training data" in text

    assert data["model"] == "toy" and data["version"] == 1
    canonical = json.dumps(data["evidence"], sort_keys=True, separators=(",", ":"))
    assert hashlib.sha256(canonical.encode()).hexdigest() == data["evidence_sha256"]
    assert data["evidence_sha256"] in page and data["evidence_sha256"] in text
    assert (
        data["evidence"]["record"]["metrics"]["roc_auc"]
        == data["evidence"]["record"]["decision"]["candidate_metric"]
    )

    assert missing.exit_code == 3 and "NOT_FOUND" in missing.output
    assert "no version 9" in missing.output and not (out / "v9.html").exists()
    assert suffix.exit_code == 2
    assert f"{out / 'card.pdf'}: expected a .html or .md file" in " ".join(suffix.output.split())
    assert no_folder.exit_code == 2
    assert f"cannot write {out / 'no' / 'card.html'}" in " ".join(no_folder.output.split())
    assert nothing.exit_code == 2 and "-o PATH" in nothing.output
    assert sorted(p.name for p in out.iterdir()) == ["card.html", "card.md"]
