"""The quickstart's manual-approval variant, through the real CLI (issue 6's first "done
when"): the cycle stops at pending approval, the trainer's token is refused with
"separation of duties", an approver's token approves and the version is promoted."""

from __future__ import annotations

import json
from pathlib import Path

from quickstart.conftest import cli_env, run_cli


def token(root: Path, env: dict[str, str], role: str, actor: str) -> str:
    done = run_cli(
        "token",
        "create",
        "--role",
        role,
        "--actor",
        actor,
        "--json",
        "-w",
        root,
        env=env,
        cwd=root.parent,
    )
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["token"])


def as_token(env: dict[str, str], value: str) -> dict[str, str]:
    return {**env, "RETRAINER_TOKEN": value}


def test_quickstart_with_manual_approval_stops_and_an_approver_releases(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "home")  # the local user is RETRAINER_ACTOR=quickstart-tester
    root = tmp_path / "rain-manual"
    done = run_cli("quickstart", root, "--approval", "manual", "--json", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["waiting_for_approval"] == 1
    assert [v["promoted"] for v in out["versions"]] == [False]

    listed = run_cli("approvals", "list", "--json", "-w", root, env=env, cwd=tmp_path)
    (waiting,) = json.loads(listed.stdout)
    assert (waiting["version"], waiting["state"]) == (1, "pending")
    assert waiting["responsible"] == ["quickstart-tester"]

    trainer = token(root, env, "approver", "quickstart-tester")  # the trainer's own token
    alice = token(root, env, "approver", "alice")
    refused = run_cli(
        "approve",
        "rain",
        "1",
        "--comment",
        "mine is fine",
        "-w",
        root,
        env=as_token(env, trainer),
        cwd=tmp_path,
    )
    assert refused.returncode == 6
    assert "separation of duties" in refused.stderr
    assert "[FORBIDDEN]" in refused.stderr

    approved = run_cli(
        "approve",
        "rain",
        "1",
        "--comment",
        "reviewed the slices",
        "--json",
        "-w",
        root,
        env=as_token(env, alice),
        cwd=tmp_path,
    )
    assert approved.returncode == 0, approved.stderr
    result = json.loads(approved.stdout)
    assert result["status"]["state"] == "approved"
    assert result["released"]["how"] == "promoted"

    shown = run_cli("models", "show", "rain", "--json", "-w", root, env=env, cwd=tmp_path)
    assert json.loads(shown.stdout)["version"]["aliases"] == ["champion"]
    audit = run_cli("audit", "log", "--json", "--limit", "200", "-w", root, env=env, cwd=tmp_path)
    actions = [(e["actor"], e["action"]) for e in json.loads(audit.stdout)]
    assert ("quickstart-tester", "approval.denied") in actions
    assert ("alice", "approval.approve") in actions
    assert ("alice", "promote") in actions
    verify = run_cli("audit", "verify", "-w", root, env=env, cwd=tmp_path)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_a_trainer_service_token_runs_the_cycle_and_cannot_approve(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "home")
    root = tmp_path / "rain"
    init = run_cli(
        "init", root, "--example", "rainfall", "--approval", "manual", env=env, cwd=tmp_path
    )
    assert init.returncode == 0, init.stderr
    trainer = token(root, env, "operator", "trainer")
    alice = token(root, env, "approver", "alice")

    ran = run_cli("run", "--json", "-w", root, env=as_token(env, trainer), cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    cycle = json.loads(ran.stdout)
    assert cycle["version"] == 1 and "awaits approval" in cycle["outcome"]

    viewer = token(root, env, "viewer", "vic")
    for who, expected in ((trainer, "separation of duties"), (viewer, "needs the role")):
        refused = run_cli(
            "approve", "rain", "1", "-m", "ok", "-w", root, env=as_token(env, who), cwd=tmp_path
        )
        assert refused.returncode == 6, refused.stderr
        assert expected in refused.stderr
    bad = run_cli(
        "approve",
        "rain",
        "1",
        "-m",
        "ok",
        "-w",
        root,
        env=as_token(env, trainer[:-4] + "AAAA"),
        cwd=tmp_path,
    )
    assert bad.returncode == 6 and "[UNAUTHENTICATED]" in bad.stderr

    approved = run_cli(
        "approve", "rain", "1", "-m", "reviewed", "-w", root, env=as_token(env, alice), cwd=tmp_path
    )
    assert approved.returncode == 0, approved.stderr
    assert "version 1 promoted" in approved.stdout
