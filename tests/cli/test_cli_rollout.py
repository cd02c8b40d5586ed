"""``retrainer rollout status|abort|advance`` through the real CLI (processes).

The workspace is prepared in-process: v1 champion, v2 a passing candidate in a canary
rollout with some recorded traffic. Only the commands under test run as processes.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from cliproc import cli_all, ok_json

from retrainer.deploy import Router, StatsRecorder, start_rollout
from retrainer.registry import CHAMPION, list_events, promote
from retrainer.workspace import Workspace

DEPLOY = """
deploy:
  strategy: canary
  canary: {steps: [10, 100], min_requests: 20, dwell: 1h, sticky_key: user}
  rollback: {error_rate: 0.05, latency_p99_ms: 100, min_samples: 20}
"""


def prepared(make_workspace: Callable[..., Path], *, rollout: bool = True) -> Path:
    root = make_workspace()
    with (root / "retrainer.yaml").open("a") as f:
        f.write(DEPLOY)
    with Workspace.open(root) as ws:
        reg = ws.registry
        for _ in range(2):
            v = reg.create_version("toy", run_id=None, actor="trainer", params={}, lineage={})
            reg.attach_artifact("toy", v, f"{v:064x}", actor="trainer")
            reg.mark_ready("toy", v, metrics={}, decision={"passed": True}, actor="trainer")
        promote(reg, "toy", 1, actor="setup", reason="first", expected=None)
        if rollout:
            start_rollout(ws, "toy", 2, actor="cycle", reason="gates passed")
            router, rec = Router(ws.db, rng=random.Random(0)), StatsRecorder(ws.db)
            for i in range(400):
                route = router.choose("toy", f"u{i}")
                rec.record(route, route.version, latency_ms=4.0, prediction=0.4)
            rec.flush()
    return root


def test_status_shows_step_traffic_and_verdicts(make_workspace: Callable[..., Path]) -> None:
    root = prepared(make_workspace)
    as_json, text = cli_all(
        ("rollout", "status", "toy", "--json"), ("rollout", "status", "toy"), cwd=root
    )
    data = ok_json(as_json)
    assert (data["rollout"]["state"], data["rollout"]["step"], data["rollout"]["percentage"]) == (
        "active",
        0,
        10.0,
    )
    by_version = {v["version"]: v for v in data["versions"]}
    assert by_version[1]["role"] == "champion" and by_version[2]["role"] == "canary"
    assert by_version[1]["requests"] + by_version[2]["requests"] == 400
    assert {v["name"]: v["status"] for v in data["verdicts"]}["error_rate"] == "pass"
    assert "dwell" in data["waiting"]
    assert text.returncode == 0, text.stderr
    out = " ".join(text.stdout.split())
    assert "rollout 1 of toy: v2 against v1 canary, active" in out
    assert "step 1/2 (10%, 100%); candidate traffic now 10%" in out
    assert "error_rate" in out and "prediction_drift" in out


def test_advance_then_abort_are_audited_and_refused_without_a_rollout(
    make_workspace: Callable[..., Path],
) -> None:
    root = prepared(make_workspace)
    (adv,) = cli_all(("rollout", "advance", "toy", "--reason", "checked by hand"), cwd=root)
    assert adv.returncode == 0, adv.stderr
    assert "step 2, candidate traffic 100%" in adv.stdout
    (ab,) = cli_all(("rollout", "abort", "toy", "--reason", "odd answers"), cwd=root)
    assert ab.returncode == 0, ab.stderr
    assert "v1 keeps all traffic" in ab.stdout
    again = cli_all(
        ("rollout", "abort", "toy", "--reason", "x"),
        ("rollout", "advance", "toy", "--reason", "x"),
        cwd=root,
    )
    for result in again:
        assert result.returncode == 3, result.stderr
        assert "toy' has no active rollout (the last one, 1, is aborted)" in result.stderr
    with Workspace.open(root) as ws:
        assert ws.registry.get_alias("toy", CHAMPION) == 1
        events = ws.db.transaction(
            lambda s: [(e.action, e.actor, e.payload) for e in list_events(s, limit=1000)]
        )
    steering = [(a, actor, p["reason"]) for a, actor, p in events if a.startswith("rollout.")]
    assert steering == [
        ("rollout.start", "cycle", "gates passed"),
        ("rollout.advance", "tester", "manual: checked by hand"),
        ("rollout.abort", "tester", "odd answers"),
    ]


def test_status_without_any_rollout_says_so(make_workspace: Callable[..., Path]) -> None:
    root = prepared(make_workspace, rollout=False)
    (text,) = cli_all(("rollout", "status", "toy"), cwd=root)
    assert text.returncode == 0, text.stderr
    assert "No rollout of toy yet (champion v1)." in text.stdout
