"""``retrainer explain`` on the quickstart's workspace: a readable decision record for the
promoted version, as a table, as JSON and as a page with plots (the run is shared and
read-only: nothing here writes into it)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from retrainer.registry import CHAMPION
from retrainer.workspace import Workspace

from .conftest import QuickstartRun, run_cli

pytestmark = pytest.mark.slow

MODEL = "rain"


def test_explain_shows_why_the_champion_was_promoted(
    quickstart_run: QuickstartRun, tmp_path: Path
) -> None:
    root = quickstart_run.workspace
    with Workspace.open(root) as ws:
        champion = ws.registry.get_alias(MODEL, CHAMPION)
        promoted = [m.to_version for m in ws.registry.history(MODEL, CHAMPION)]
    assert champion is not None and len(promoted) >= 2
    page = tmp_path / "explain.html"
    env = quickstart_run.env
    table = run_cli("explain", MODEL, "-w", root, "--html", page, env=env, cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    text = " ".join(table.stdout.split())
    assert text.startswith(f"{MODEL}:{champion} PASSED")
    # every gate is a row with its status; the champion gate shows its interval
    for gate in ("scores", "vs_champion"):
        assert re.search(rf"\b{gate}\s+pass\b", text), text
    assert re.search(r"\[-?\d\.\d+, -?\d\.\d+\]", text)
    assert "roc_auc: candidate 0." in text and "holdout rows" in text
    assert "why it was trained: " in text
    assert "champion on its own holdout and on this one: " in text
    html = page.read_text()
    assert "PASSED" in html and html.count("data:image/png;base64,") >= 1

    first = run_cli("explain", MODEL, "1", "-w", root, "--json", env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    assert data["version"] == 1 and data["decision"]["passed"] is True
    gates = {g["name"]: g for g in data["decision"]["gates"]}
    assert gates["vs_champion"]["status"] == "skipped"  # the first version had no champion
