"""Rollouts end to end: the real server on a loopback port, real traffic, real labels.

The workspace (servekit) has champion v1, a logistic-regression pipeline whose label
follows ``x1``. Each test registers a candidate by refitting v1's pipeline: on fresh rows
of the same concept (as good as v1), or on shuffled labels (a silently broken training
job), and the client sends true labels of that concept back after each answer:

* the good candidate passes the canary's steps and the server's rollout loop promotes it;
* the broken one's realised ROC AUC falls far below v1's and the ``metric_drop``
  guardrail rolls it back on its own.

Both outcomes must show in alias history and in the audit log, and no request fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from servekit import (
    MODEL,
    Client,
    audit,
    build_workspace,
    moves,
    register_candidate,
    running,
    with_deploy,
)

from retrainer.deploy import start_rollout
from retrainer.deploy.predlog import read_prediction_log
from retrainer.registry import CHAMPION
from retrainer.service import ServiceConfig, create_app
from retrainer.service.state import SHADOW_SUFFIX
from retrainer.workspace import Workspace

FAST = ServiceConfig(
    poll_seconds=0.1, rollout_seconds=0.1, log_flush_seconds=0.05, retry_seconds=3600
)

CANARY = """
deploy:
  strategy: canary
  canary: {steps: [30, 100], min_requests: 25, dwell: 1s}
  rollback:
    error_rate: 0.05
    latency_p99_ms: 10000
    prediction_drift: null
    metric_drop: 0.2
    min_samples: 20
    min_labels: 20
"""

# One long step: only a guardrail can end it.
CANARY_HELD = """
deploy:
  strategy: canary
  canary: {steps: [50, 100], min_requests: 100000, dwell: 1h}
  rollback:
    error_rate: 0.05
    prediction_drift: null
    metric_drop: 0.1
    min_samples: 20
    min_labels: 20
"""

SHADOW = """
deploy:
  strategy: shadow
  shadow: {min_requests: 200, dwell: 1s}
  rollback: {error_rate: 0.05, prediction_drift: 0.5, min_samples: 200}
"""


@pytest.fixture(scope="module")
def base_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_workspace(tmp_path_factory.mktemp("rollout-e2e") / "ws")


def test_a_canary_passes_its_steps_and_the_server_promotes_it(
    base_ws: Path, tmp_path: Path
) -> None:
    root = with_deploy(base_ws, tmp_path / "ws", CANARY)
    good = register_candidate(root, broken=False)
    with running(create_app(root, config=FAST)) as url:
        client = Client(url, flipped=False)
        client.send(5)  # before the rollout: the champion answers everything
        assert set(client.versions) == {1}
        with Workspace.open(root) as ws:
            started = start_rollout(ws, MODEL, good, actor="operator", reason="e2e")
        done = client.until_done(root)
        client.until_serving(good)
        client.send(10)  # after: the new champion answers everything
        health = client.http.get(f"{url}/health").json()
    assert done.id == started.id
    assert done.state == "promoted", done
    assert done.step == 1  # promoted from the second (last) step
    assert set(client.statuses) == {200}, client.statuses
    assert {1, good} <= set(client.versions[5:])  # the canary split the traffic
    assert set(client.versions[-10:]) == {good}
    assert health["models"][MODEL]["serving"]["version"] == good
    assert moves(root, CHAMPION)[-1] == (1, good, "retrainer-rollout")
    assert moves(root, "canary")[-1] == (None, good, "operator")
    actions = [a for a, _, _ in audit(root)]
    tail = actions[actions.index("rollout.start") :]
    assert [a for a in tail if a.startswith(("rollout.", "promote"))] == [
        "rollout.start",
        "rollout.advance",
        "promote",
        "rollout.promoted",
    ], tail
    # The step-passed event carries the guardrails' verdicts.
    advance = next(p for a, _, p in audit(root) if a == "rollout.advance")
    assert {v["name"] for v in advance["verdicts"]} >= {"error_rate", "latency_p99_ms"}


def test_a_worse_candidate_is_rolled_back_when_labels_show_the_drop(
    base_ws: Path, tmp_path: Path
) -> None:
    root = with_deploy(base_ws, tmp_path / "ws", CANARY_HELD)
    worse = register_candidate(root, broken=True)
    with running(create_app(root, config=FAST)) as url:
        client = Client(url, flipped=False)  # labels of the concept v1 learnt
        with Workspace.open(root) as ws:
            start_rollout(ws, MODEL, worse, actor="operator", reason="e2e")
        done = client.until_done(root)
        client.until_serving(1)
        after = len(client.versions)
        client.send(20)
    assert done.state == "rolled_back", done
    assert "realised roc_auc" in (done.reason or ""), done.reason
    assert set(client.statuses) == {200}, client.statuses
    assert worse in client.versions[:after]
    assert set(client.versions[after:]) == {1}  # the champion has all traffic again
    with Workspace.open(root) as ws:
        assert ws.registry.get_alias(MODEL, CHAMPION) == 1
        assert ws.registry.get(MODEL, worse).status == "READY"  # not corrupt: not quarantined
    assert moves(root, CHAMPION)[-1][1] == 1  # the champion never moved
    assert moves(root, "canary")[-2:] == [
        (None, worse, "operator"),
        (worse, 1, "retrainer-rollout"),
    ]
    events = [(a, p) for a, _, p in audit(root) if a.startswith("rollout.")]
    assert [a for a, _ in events][-2:] == ["rollout.start", "rollout.rolled_back"]
    verdicts = {v["name"]: v["status"] for v in events[-1][1]["verdicts"]}
    assert verdicts["metric_drop"] == "trip"


def test_sticky_keys_stay_on_one_side(base_ws: Path, tmp_path: Path) -> None:
    root = with_deploy(base_ws, tmp_path / "ws", CANARY_HELD.replace("metric_drop: 0.1", ""))
    with running(create_app(root, config=FAST)) as url:
        client = Client(url, flipped=True)
        with Workspace.open(root) as ws:
            start_rollout(ws, MODEL, 2, actor="operator", reason="sticky")
        client.send(30)  # let the server load the candidate
        sides: dict[str, set[int]] = {}
        for i in range(40):
            key = f"customer-{i}"
            before = len(client.versions)
            client.send(3, key=key)
            sides[key] = set(client.versions[before:])
    assert all(len(seen) == 1 for seen in sides.values()), sides
    assert {v for seen in sides.values() for v in seen} == {1, 2}  # both sides used


def test_a_shadow_scores_every_request_without_answering_and_is_promoted(
    base_ws: Path, tmp_path: Path
) -> None:
    root = with_deploy(base_ws, tmp_path / "ws", SHADOW)
    good = register_candidate(root, broken=False)
    with running(create_app(root, config=FAST)) as url:
        client = Client(url, flipped=False)
        with Workspace.open(root) as ws:
            start_rollout(ws, MODEL, good, actor="operator", reason="shadow")
        done = client.until_done(root)
        client.until_serving(good)
    assert done.state == "promoted", done
    assert set(client.statuses) == {200}
    answered_before = client.versions[: client.versions.index(good)]
    assert answered_before and set(answered_before) == {1}  # the shadow never answered
    log = read_prediction_log(root / ".retrainer" / "predictions", MODEL)
    shadow = log[log["prediction_id"].str.endswith(SHADOW_SUFFIX)]
    assert len(shadow) >= 200 and set(shadow["version"]) == {good}
    # Every shadow row is the twin of a row the champion answered.
    twins = shadow["prediction_id"].str.removesuffix(SHADOW_SUFFIX)
    assert twins.is_unique
    assert set(twins) <= set(log.loc[log["version"] == 1, "prediction_id"])


def test_a_shadow_whose_predictions_drift_from_the_champions_is_rolled_back(
    base_ws: Path, tmp_path: Path
) -> None:
    root = with_deploy(base_ws, tmp_path / "ws", SHADOW)
    broken = register_candidate(root, broken=True)  # its scores crowd around 0.5
    with running(create_app(root, config=FAST)) as url:
        client = Client(url, flipped=False)
        with Workspace.open(root) as ws:
            start_rollout(ws, MODEL, broken, actor="operator", reason="shadow")
        done = client.until_done(root)
    assert done.state == "rolled_back", done
    assert (done.reason or "").startswith("guardrail tripped: prediction PSI vs the champion")
    assert set(client.statuses) == {200}
    assert set(client.versions) == {1}
