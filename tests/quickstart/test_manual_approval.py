"""The quickstart's manual-approval variant, through the CLI app (issue 6's first "done
when"): the cycle stops at pending approval, the trainer's token is refused with
"separation of duties", an approver's token approves and the version is promoted.

The commands run in-process (Typer's runner, the real app, real store, real exit
codes); ``tests/cli`` covers the same commands as separate processes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from retrainer.cli.app import app
from retrainer.registry import CHAMPION, list_events
from retrainer.workspace import Workspace

TRAINER = "tester"  # RETRAINER_ACTOR of tests/conftest.py: the local user who runs it


def cli(*args: object, token: str | None = None) -> Result:
    env = {"RETRAINER_TOKEN": token} if token else {}
    return CliRunner().invoke(app, [str(a) for a in args], env={**env, "COLUMNS": "200"})


def token(root: Path, role: str, actor: str) -> str:
    done = cli("token", "create", "--role", role, "--actor", actor, "--json", "-w", root)
    assert done.exit_code == 0, done.output
    return str(json.loads(done.stdout)["token"])


def test_quickstart_with_manual_approval_stops_and_an_approver_releases(tmp_path: Path) -> None:
    root = tmp_path / "rain-manual"
    done = cli("quickstart", root, "--approval", "manual", "--json")
    assert done.exit_code == 0, done.output
    out = json.loads(done.stdout)
    assert out["waiting_for_approval"] == 1
    assert [v["promoted"] for v in out["versions"]] == [False]

    listed = cli("approvals", "list", "--json", "-w", root)
    (waiting,) = json.loads(listed.stdout)
    assert (waiting["version"], waiting["state"]) == (1, "pending")
    assert waiting["responsible"] == [TRAINER]

    own = token(root, "approver", TRAINER)  # the trainer's own token
    viewer, alice = token(root, "viewer", "vic"), token(root, "approver", "alice")
    refused: dict[str, tuple[str | None, str]] = {
        "separation of duties": (own, "[FORBIDDEN]"),
        "needs the role 'approver' or 'admin'": (viewer, "[FORBIDDEN]"),
        "is not valid": (own[:-4] + "AAAA", "[UNAUTHENTICATED]"),
        f"separation of duties: {TRAINER} triggered or trained rain:1": (None, "[FORBIDDEN]"),
    }
    for why, (who, code) in refused.items():
        r = cli("approve", "rain", 1, "--comment", "fine by me", "-w", root, token=who)
        assert r.exit_code == 6, r.output
        assert why in " ".join(r.output.split()) and code in r.output, r.output

    approved = cli(
        "approve",
        "rain",
        1,
        "--comment",
        "reviewed the slices",
        "--json",
        "-w",
        root,
        token=alice,
    )
    assert approved.exit_code == 0, approved.output
    result = json.loads(approved.stdout)
    assert result["status"]["state"] == "approved"
    assert result["released"]["how"] == "promoted"

    with Workspace.open(root) as ws:
        assert ws.registry.get_alias("rain", CHAMPION) == 1
        with ws.db.session() as s:
            events: list[Any] = list_events(s, limit=500)
    actions = [(e.actor, e.action) for e in events]
    assert actions.count((TRAINER, "approval.denied")) == 2
    assert ("vic", "approval.denied") in actions
    assert ("alice", "approval.approve") in actions
    assert ("alice", "promote") in actions
    verify = cli("audit", "verify", "-w", root)
    assert verify.exit_code == 0, verify.output
