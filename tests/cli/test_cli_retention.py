"""``retrainer retention plan|apply`` through the CLI.

The history is made in-process by real cycles under a clock set years back (v1
champion, v2 a rejected baseline that never served, v3 champion after a concept
change), so that, at the CLI's real clock, the batches and v2 are past their periods.
Plans and applies run as real processes; the confirmation prompt on a pseudo-terminal.
"""

from __future__ import annotations

import os
import pty
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cliproc import RETRAINER, cli_all, finish, ok_json, start
from typer.testing import CliRunner

from conftest import add_batch, synthetic_batch
from retrainer.cli.app import app
from retrainer.governance.identity import Actor, TokenStore
from retrainer.monitor.predictions import log_predictions
from retrainer.orchestrate import run_cycle
from retrainer.registry import list_events
from retrainer.workspace import Workspace

MODEL = "toy"
T0 = datetime(2020, 1, 1, 12, tzinfo=UTC)
LOGREG = "estimator: sklearn.linear_model.LogisticRegression\n  params: {max_iter: 200}"
DUMMY = "estimator: sklearn.dummy.DummyClassifier\n  params: {strategy: prior}"
POLICY = """\
retention:
  raw_batches: 90d
  artifacts: 90d
  predictions: 200d
  documentation_window: 200d
"""
DUE = {"toy/batch/1", "toy/batch/2", "toy:2", "toy/predictions/2020-01-02"}


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def root(make_workspace: Callable[..., Path]) -> Path:
    ws_dir = make_workspace()
    spec = ws_dir / "retrainer.yaml"
    now = [T0]

    def cycle(**kwargs: Any) -> Any:
        with Workspace.open(ws_dir, clock=lambda: now[0]) as ws:
            return run_cycle(ws, actor="t", **kwargs)

    add_batch(ws_dir, "b1", synthetic_batch(1, 400, start_day=0))
    assert cycle().promoted
    now[0] += timedelta(days=5)
    spec.write_text(spec.read_text().replace(LOGREG, DUMMY))
    assert cycle(manual_reason="a baseline").promoted is False
    spec.write_text(spec.read_text().replace(DUMMY, LOGREG) + POLICY)
    now[0] += timedelta(days=5)
    add_batch(ws_dir, "b2", synthetic_batch(2, 400, start_day=10, flipped=True))
    assert cycle().promoted
    with Workspace.open(ws_dir, clock=lambda: now[0]) as ws:
        rows = [{"prediction_id": "a", "predicted_at": T0 + timedelta(days=1), "score": 0.4}]
        log_predictions(ws.db, MODEL, 1, rows)
    return ws_dir


def audit_count(root: Path) -> int:
    with Workspace.open(root) as ws:
        return len(ws.db.transaction(lambda s: list(list_events(s, limit=100_000))))


def files(root: Path) -> dict[str, int]:
    state = root / ".retrainer"
    return {
        str(p): p.stat().st_size for p in state.rglob("*") if p.is_file() and "db" not in p.name
    }


def test_plan_for_people_and_machines_changes_nothing(root: Path) -> None:
    before = (audit_count(root), files(root))
    people, machines = cli_all(
        ("retention", "plan", "-w", root), ("retention", "plan", "-w", root, "--json"), cwd=root
    )

    data = ok_json(machines)
    assert {i["subject"] for i in data["items"]} == DUE
    for item in data["items"]:
        assert len(item["sha256"]) == 64 and item["size"] > 0 and item["reason"]
    kept = {k["subject"]: k["reasons"] for k in data["kept"]}
    assert kept["toy:3"] == ["champion"]
    assert kept["toy:1"] == ["previous champion (the rollback target)"]
    assert data["total_bytes"] == sum(i["size"] for i in data["items"])

    assert people.returncode == 0, people.stderr
    text = flat(people.stdout)
    assert "Periods: raw_batches 90d, predictions 200d, artifacts 90d" in text
    assert f"Due for deletion: {len(DUE)} item(s)" in text
    assert (
        "Batches: past raw_batches 90d" in text and "Archived versions: past artifacts 90d" in text
    )
    for subject in DUE:
        assert subject in text
    assert "previous champion (the rollback target)" in text
    assert "nothing was deleted. To delete: retrainer retention apply" in text
    assert (audit_count(root), files(root)) == before


def test_apply_without_yes_outside_a_terminal_is_refused(root: Path) -> None:
    before = (audit_count(root), files(root))
    runner = CliRunner()
    for args in (["retention", "apply"], ["retention", "apply", "--json"]):
        result = runner.invoke(app, [*args, "-w", str(root)])
        assert result.exit_code == 2, result.output
        assert "pass --yes" in flat(result.output) and "nothing was deleted" in result.output
    assert (audit_count(root), files(root)) == before


def confirm_on_a_terminal(root: Path, answer: str) -> tuple[int, str]:
    """``retention apply`` with a pseudo-terminal as stdin, answering the prompt."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [*RETRAINER, "retention", "apply", "-w", str(root)],
        stdin=follower,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=os.environ.copy(),
        text=True,
    )
    os.close(follower)
    os.write(leader, answer.encode())
    out, _ = proc.communicate(timeout=300)
    os.close(leader)
    return proc.returncode, out


def test_apply_on_a_terminal_shows_the_plan_and_asks(root: Path) -> None:
    before = (audit_count(root), files(root))
    code, out = confirm_on_a_terminal(root, "n\n")
    assert code == 0, out
    assert f"Delete these {len(DUE)} item(s)" in out and "Nothing was deleted." in out
    assert "toy/batch/1" in out  # the plan was shown first
    assert (audit_count(root), files(root)) == before

    code, out = confirm_on_a_terminal(root, "y\n")
    assert code == 0, out
    assert f"Deleted {len(DUE)} item(s)" in flat(out)
    assert audit_count(root) == before[0] + len(DUE) + 2  # seal, one per item, summary


def test_apply_yes_deletes_the_plan_the_chain_verifies_and_again_is_a_no_op(root: Path) -> None:
    planned = ok_json(finish(start("retention", "plan", "-w", root, "--json", cwd=root)))
    done = ok_json(finish(start("retention", "apply", "--yes", "--json", "-w", root, cwd=root)))

    assert {d["subject"] for d in done["deleted"]} == DUE
    by_subject = {i["subject"]: i for i in planned["items"]}
    for deleted in done["deleted"]:
        assert deleted["sha256"] == by_subject[deleted["subject"]]["sha256"]
        assert deleted["event"] > done["seal_event"]
    assert done["summary_event"] > max(d["event"] for d in done["deleted"])
    verify, again, after = cli_all(
        ("audit", "verify", "-w", root, "--json"),
        ("retention", "apply", "--yes", "--json", "-w", root),
        ("retention", "plan", "-w", root),
        cwd=root,
    )
    assert ok_json(verify)["ok"] is True
    second = ok_json(again)
    assert (second["deleted"], second["seal_event"]) == ([], None)
    assert "Nothing is due for deletion." in after.stdout
    assert "champion" in after.stdout  # what is kept is still shown


def test_a_viewer_may_plan_but_only_an_admin_may_apply(root: Path) -> None:
    with Workspace.open(root) as ws:
        store = TokenStore(ws.db)
        viewer = store.create("vic", "viewer", by=Actor("root", "admin")).token
    runner = CliRunner()
    env = {"RETRAINER_TOKEN": viewer}
    planned = runner.invoke(app, ["retention", "plan", "-w", str(root)], env=env)
    assert planned.exit_code == 0, planned.output
    refused = runner.invoke(app, ["retention", "apply", "--yes", "-w", str(root)], env=env)
    assert refused.exit_code == 6
    assert "applying retention needs the role 'admin'" in flat(refused.output)
    with Workspace.open(root) as ws:
        assert {v.status for v in ws.registry.versions(MODEL)} == {"READY"}


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_help_shows_an_example(command: str) -> None:
    result = CliRunner().invoke(app, ["retention", command, "--help"])
    assert result.exit_code == 0
    assert f"Example: retrainer retention {command}" in flat(result.output)
