"""The loop through the real CLI on a small synthetic workspace: ``run``, then every read
command (``status``, ``models list``, ``models show`` by name, ``NAME:V`` and
``NAME@alias``, ``audit log``) with ``--json``; ``retrain`` after the concept flips.

Read commands after a run are independent, so they run as processes at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from cliproc import cli_all, ok_json
from typer.testing import CliRunner

from conftest import add_batch, synthetic_batch
from retrainer.cli.app import app
from retrainer.orchestrate.cycle import STEPS, run_cycle
from retrainer.workspace import Workspace

SHA256 = re.compile(r"[0-9a-f]{64}")


def two_batches(root: Path) -> None:
    add_batch(root, "b0", synthetic_batch(0, 300, start_day=0))
    add_batch(root, "b1", synthetic_batch(1, 300, start_day=1))


def test_run_then_every_read_command(make_workspace: Callable[..., Path]) -> None:
    root = make_workspace(approval="auto")
    two_batches(root)
    cwd = root.parent

    (run,) = cli_all(("run", "-w", "ws", "--json"), cwd=cwd)
    cycle = ok_json(run)
    assert cycle["status"] == "succeeded"
    assert cycle["model"] == "toy"
    assert cycle["version"] == 1
    assert cycle["promoted"] is True
    assert list(cycle["steps"]) == list(STEPS)
    assert cycle["outcome"] == "version 1 promoted (champion was none)"

    status, listing, show, show_v1, show_alias, missing, audit = cli_all(
        ("status", "-w", "ws", "--json"),
        ("models", "list", "-w", "ws", "--json"),
        ("models", "show", "toy", "-w", "ws", "--json"),
        ("models", "show", "toy:1", "-w", "ws"),
        ("models", "show", "toy@champion", "-w", "ws", "--json"),
        ("models", "show", "toy:7", "-w", "ws"),
        ("audit", "log", "-w", "ws", "--json"),
        cwd=cwd,
    )

    st = ok_json(status)
    assert st["model"] == "toy"
    assert st["champion"]["version"] == 1
    assert 0.5 < st["champion"]["metric"] <= 1.0
    assert st["versions"] == 1
    assert st["awaiting_approval"] == []
    assert st["batches"]["accepted"] == 2
    assert st["batches"]["quarantined"] == 0
    assert [(r["id"], r["status"], r["actor"]) for r in st["runs"]] == [
        (cycle["run_id"], "succeeded", "tester")
    ]

    (entry,) = ok_json(listing)
    assert entry["model"] == "toy"
    assert entry["champion"] == 1
    assert (entry["versions"], entry["latest"]) == (1, 1)
    assert entry["aliases"] == {"champion": 1}
    assert entry["metrics"]["roc_auc"] == st["champion"]["metric"]

    shown = ok_json(show)
    v = shown["version"]
    assert (v["model"], v["version"], v["status"]) == ("toy", 1, "READY")
    assert v["aliases"] == ["champion"]
    assert v["created_by"] == "tester"
    assert v["run_id"] == cycle["run_id"]
    assert SHA256.fullmatch(v["artifact_sha256"])
    assert v["decision"]["passed"] is True
    assert v["lineage"]["trigger"]["kind"] == "bootstrap"
    assert SHA256.fullmatch(v["lineage"]["spec_sha256"])
    assert [x["version"] for x in shown["versions"]] == [1]
    assert [
        (h["alias"], h["from_version"], h["to_version"], h["actor"]) for h in shown["history"]
    ] == [("champion", None, 1, "tester")]
    assert ok_json(show_alias) == shown

    assert show_v1.returncode == 0, show_v1.stderr
    text = " ".join(show_v1.stdout.split())
    assert "toy:1 READY aliases: champion" in text
    assert f"artifact sha256: {v['artifact_sha256']}" in text
    assert "Decision record: PASSED" in text
    assert "by tester" in text

    assert missing.returncode == 3, missing.stderr
    assert missing.stdout == ""
    err = " ".join(missing.stderr.split())
    assert "[NOT_FOUND]" in err
    assert "'toy' has no version 7" in err

    events = ok_json(audit)
    assert all(e["actor"] == "tester" for e in events), events
    actions = [e["action"] for e in events]
    assert actions[:2] == ["spec.changed", "run.start"]  # the first cycle records the spec
    assert actions[-1] == "run.succeeded"
    assert "promote" in actions
    (promo,) = [e for e in events if e["action"] == "promote"]
    assert promo["subject"] == "toy@champion"
    assert (promo["payload"]["from"], promo["payload"]["to"]) == (None, 1)
    assert promo["payload"]["sha256"] == v["artifact_sha256"]
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    assert all(SHA256.fullmatch(e["hash"]) for e in events)


def test_retrain_after_the_concept_flips(make_workspace: Callable[..., Path]) -> None:
    root = make_workspace(approval="auto")
    two_batches(root)
    with Workspace.open(root) as ws:  # the first cycle in-process: only retrain is under test
        assert run_cycle(ws, actor="setup").version == 1
    add_batch(root, "flip2", synthetic_batch(2, 300, start_day=2, flipped=True))
    cwd = root.parent

    (retrain,) = cli_all(("retrain", "toy", "--reason", "x", "-w", "ws", "--json"), cwd=cwd)
    cycle = ok_json(retrain)
    assert cycle["status"] == "succeeded"
    assert cycle["version"] == 2
    assert cycle["steps"]["ingest"]["batches"], cycle["steps"]["ingest"]
    assert cycle["steps"]["decide"]["kind"] == "manual"
    assert cycle["steps"]["decide"]["reason"] == "manual retrain: x"

    (audit,) = cli_all(("audit", "log", "-w", "ws", "--json", "--limit", "100"), cwd=cwd)
    events = ok_json(audit)
    starts = [e for e in events if e["action"] == "run.start"]
    assert [e["actor"] for e in starts] == ["setup", "tester"]
    assert starts[-1]["payload"]["request"] == {"manual_reason": "x"}
    assert starts[-1]["subject"] == f"run/{cycle['run_id']}"
    mine = [e for e in events if e["id"] >= starts[-1]["id"]]
    assert {e["actor"] for e in mine} == {"tester"}
    assert {"version.create", "version.ready"} <= {e["action"] for e in mine}
    promotions = [e for e in events if e["action"] == "promote"]
    assert (promotions[0]["actor"], promotions[0]["payload"]["to"]) == ("setup", 1)
    if cycle["promoted"]:
        assert (promotions[-1]["actor"], promotions[-1]["payload"]["to"]) == ("tester", 2)
    with Workspace.open(root) as ws:
        assert [v.version for v in ws.registry.versions("toy")] == [2, 1]
        assert ws.registry.get_alias("toy", "champion") == (2 if cycle["promoted"] else 1)
        assert ws.journal.runs("toy", limit=1)[0].id == cycle["run_id"]

    # argument checks need no process of their own: the same app, in-process
    runner = CliRunner()
    no_reason = runner.invoke(app, ["retrain", "toy", "-w", str(root)])
    assert no_reason.exit_code == 2
    assert "--reason" in no_reason.output
    other_model = runner.invoke(app, ["retrain", "ghost", "--reason", "x", "-w", str(root)])
    assert other_model.exit_code == 3
    assert "'toy', not 'ghost'" in " ".join(other_model.output.split())
