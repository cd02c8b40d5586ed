"""The cycle with ``deploy.strategy: canary``: the first version is promoted directly (no
champion to compare with), a later passing candidate starts a rollout instead, and
retrains wait while it runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from conftest import add_batch, synthetic_batch
from retrainer.deploy import rollout_status
from retrainer.orchestrate import run_cycle
from retrainer.registry import CHAMPION
from retrainer.workspace import Workspace

DEPLOY = """
deploy:
  strategy: canary
  canary: {steps: [20, 100], min_requests: 100, dwell: 5m}
"""


def test_a_passing_candidate_starts_a_canary_instead_of_being_promoted(
    make_workspace: Callable[..., Path],
) -> None:
    root = make_workspace()
    with (root / "retrainer.yaml").open("a") as f:
        f.write(DEPLOY)
    add_batch(root, "b1", synthetic_batch(1, 400, start_day=0))
    with Workspace.open(root) as ws:
        first = run_cycle(ws, actor="t")
        assert (first.version, first.promoted) == (1, True)
    add_batch(root, "b2", synthetic_batch(2, 400, start_day=1, flipped=True))
    with Workspace.open(root) as ws:
        second = run_cycle(ws, actor="t")
        assert (second.version, second.promoted) == (2, False)
        assert second.outcome == (
            "version 2 passed its gates; canary rollout 1 started against version 1 "
            "(retrainer rollout status toy)"
        )
        assert ws.registry.get_alias("toy", CHAMPION) == 1
        status = rollout_status(ws, "toy")
        assert (status["rollout"]["candidate"], status["rollout"]["percentage"]) == (2, 20.0)
    add_batch(root, "b3", synthetic_batch(3, 400, start_day=2, flipped=True))
    with Workspace.open(root) as ws:
        third = run_cycle(ws, actor="t")
        assert third.outcome == "no retrain: version 2 is in a canary rollout"
