"""``retrainer explain``: a version's decision record through the real CLI.

v1 is promoted (its champion gate skipped: there was none); v2 is refused because the
spec then asks for a superiority of 0.5 in AUC, which no candidate can show.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from cliproc import cli_all, ok_json

from conftest import add_batch, synthetic_batch
from retrainer.evaluate.explain_html import render_decision_html
from retrainer.orchestrate.cycle import run_cycle
from retrainer.workspace import Workspace


@pytest.fixture
def two_versions(make_workspace: Callable[..., Path]) -> Path:
    root = make_workspace()
    add_batch(root, "b0", synthetic_batch(0, 400, start_day=0))
    with Workspace.open(root) as ws:
        assert run_cycle(ws, actor="t", manual_reason="first").promoted
    spec = root / "retrainer.yaml"
    spec.write_text(
        spec.read_text().replace("non_inferiority_margin: 0.02", "min_improvement: 0.5")
    )
    add_batch(root, "b1", synthetic_batch(1, 400, start_day=1))
    with Workspace.open(root) as ws:
        result = run_cycle(ws, actor="t", manual_reason="second")
        assert result.version == 2 and not result.promoted
    return root


def test_explain_shows_every_gate_for_people_machines_and_browsers(two_versions: Path) -> None:
    root = two_versions
    page = root.parent / "v2.html"
    champ, blocked, as_json, missing, none = cli_all(
        ("explain", "toy", "-w", root),
        ("explain", "toy", "2", "-w", root, "--html", page),
        ("explain", "toy", "2", "-w", root, "--json"),
        ("explain", "toy", "9", "-w", root),
        ("explain", "nobody", "-w", root),
        cwd=root.parent,
    )
    assert champ.returncode == 0, champ.stderr
    text = " ".join(champ.stdout.split())
    assert text.startswith("toy:1 PASSED")
    assert re.search(r"vs_champion\s+skipped\s+.*no champion yet", text)
    assert "why it was trained: no champion yet" in text
    assert "leakage checks passed: strongest single feature 'x1'" in text

    assert blocked.returncode == 0, blocked.stderr
    out = " ".join(blocked.stdout.split())
    assert out.startswith("toy:2 BLOCKED")
    assert re.search(r"vs_champion\s+fail\s+-?\d", out)  # value and threshold are shown
    assert "not shown better by more than 0.5" in out
    assert f"wrote {page}" in out

    data = ok_json(as_json)
    gate = next(g for g in data["decision"]["gates"] if g["name"] == "vs_champion")
    assert gate["status"] == "fail" and gate["threshold"] == 0.5
    assert gate["ci_low"] <= gate["value"] <= gate["ci_high"]
    assert data["decision"]["passed"] is False and data["decision"]["champion_version"] == 1

    html = page.read_text()
    assert "BLOCKED" in html and "not shown better by more than 0.5" in html
    assert html.count("data:image/png;base64,") >= 1  # the confidence-interval plot
    assert "http://" not in html and "https://" not in html

    assert missing.returncode == 3 and "NOT_FOUND" in missing.stderr
    assert none.returncode == 3 and "no champion" in none.stderr


def test_the_page_escapes_text_and_draws_what_the_record_carries() -> None:
    record = {
        "metric": "roc_auc",
        "candidate_metric": 0.8,
        "champion_metric": 0.79,
        "champion_version": 1,
        "holdout_rows": 100,
        "passed": False,
        "summary": "failed: slice <b>x</b>",
        "gates": [
            {
                "name": "slice:region",
                "status": "fail",
                "reason": "region <script>alert(1)</script> is worse",
                "value": -0.1,
                "threshold": -0.02,
                "ci_low": -0.2,
                "ci_high": -0.05,
                "details": [
                    {"slice": "north", "candidate": 0.7, "champion": 0.8, "rows": 60},
                    {"slice": "$south$", "candidate": 0.8, "champion": 0.8, "rows": 40},
                ],
            },
            {"name": "old", "passed": True, "reason": "a record from before statuses"},
        ],
        "extra": {
            "curves": {
                "roc": {
                    "candidate": {"x": [0, 0.2, 1], "y": [0, 0.7, 1]},
                    "champion": {"x": [0, 0.3, 1], "y": [0, 0.6, 1]},
                }
            }
        },
    }
    html = render_decision_html(record, title="m:2 <decision>")
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    assert "m:2 &lt;decision&gt;" in html
    assert html.count("data:image/png;base64,") == 3  # CI bars, ROC, slices
    assert '<td class="pass">pass</td>' in html  # the old record's gate, read as pass
    assert "north" in html and "$south$" in html
