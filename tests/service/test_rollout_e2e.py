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

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from servekit import MODEL, build_workspace, copy_workspace, running

from conftest import synthetic_batch
from retrainer.deploy import start_rollout
from retrainer.deploy.predlog import read_prediction_log
from retrainer.deploy.store import RolloutInfo, RolloutStore
from retrainer.registry import CHAMPION, list_events
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


def workspace(base: Path, dest: Path, deploy: str) -> Path:
    root = copy_workspace(base, dest)
    with (root / "retrainer.yaml").open("a") as f:
        f.write(deploy)
    return root


def rows(flipped: bool, seed: int) -> Iterator[tuple[dict[str, Any], int]]:
    """Endless (features, true label) pairs of one concept."""
    while True:
        frame = synthetic_batch(seed, 500, start_day=0, flipped=flipped)
        for rec in frame.to_dict("records"):
            yield {k: rec[k] for k in ("x1", "x2", "color")}, int(rec["y"])
        seed += 1000


class Client:
    """Sends one row per request and its true label right after; keeps every answer."""

    def __init__(self, url: str, flipped: bool, seed: int = 11) -> None:
        self.url = url
        self.http = httpx.Client(timeout=60)
        self.rows = rows(flipped, seed)
        self.statuses: Counter[int] = Counter()
        self.versions: list[int] = []

    def send(self, n: int, *, key: str | None = None) -> None:
        for _ in range(n):
            features, label = next(self.rows)
            headers = {"x-request-key": key} if key else {}
            r = self.http.post(
                f"{self.url}/v1/models/{MODEL}/predict",
                json={"records": [features]},
                headers=headers,
            )
            self.statuses[r.status_code] += 1
            if r.status_code != 200:
                continue
            body = r.json()
            self.versions.append(body["version"])
            pid = body["predictions"][0]["prediction_id"]
            fb = self.http.post(
                f"{self.url}/v1/models/{MODEL}/feedback",
                json={"labels": [{"prediction_id": pid, "label": label}]},
            )
            self.statuses[fb.status_code] += 1

    def until_done(self, root: Path, batch: int = 10) -> RolloutInfo:
        """Send traffic until the rollout is no longer active (bounded by a request count)."""
        with Workspace.open(root) as ws:
            store = RolloutStore(ws.db)
            for _ in range(400):
                latest = store.latest(MODEL)
                assert latest is not None
                if latest.state != "active":
                    return latest
                self.send(batch)
        raise AssertionError(f"the rollout did not end: {latest}")


def register_candidate(root: Path, *, broken: bool) -> int:
    """A READY version whose gates passed: v1's pipeline refitted to fresh rows of v1's
    concept, with their labels shuffled when ``broken``."""
    import numpy as np
    from sklearn.base import clone

    from retrainer.registry.serialization import dump_model, load_model

    with Workspace.open(root) as ws:
        reg = ws.registry
        champion = reg.get(MODEL, 1)
        assert champion.artifact_sha256 is not None
        estimator = clone(load_model(ws.artifacts.get(champion.artifact_sha256)))
        frame = synthetic_batch(99, 600, start_day=0)
        labels = frame["y"].to_numpy()
        if broken:
            labels = np.random.default_rng(5).permutation(labels)
        estimator.fit(frame[["x1", "x2", "color"]], labels)
        sha = ws.artifacts.put(dump_model(estimator))
        version = reg.create_version(MODEL, run_id=None, actor="trainer", params={}, lineage={})
        reg.attach_artifact(MODEL, version, sha, actor="trainer")
        reg.mark_ready(MODEL, version, metrics={}, decision={"passed": True}, actor="trainer")
        return version


def audit(root: Path) -> list[tuple[str, str, dict[str, Any]]]:
    with Workspace.open(root) as ws:
        return ws.db.transaction(
            lambda s: [(e.action, e.subject, e.payload) for e in list_events(s, limit=100_000)]
        )


def moves(root: Path, alias: str) -> list[tuple[int | None, int | None, str]]:
    with Workspace.open(root) as ws:
        return [(m.from_version, m.to_version, m.actor) for m in ws.registry.history(MODEL, alias)]


def test_a_canary_passes_its_steps_and_the_server_promotes_it(
    base_ws: Path, tmp_path: Path
) -> None:
    root = workspace(base_ws, tmp_path / "ws", CANARY)
    good = register_candidate(root, broken=False)
    with running(create_app(root, config=FAST)) as url:
        client = Client(url, flipped=False)
        client.send(5)  # before the rollout: the champion answers everything
        assert set(client.versions) == {1}
        with Workspace.open(root) as ws:
            started = start_rollout(ws, MODEL, good, actor="operator", reason="e2e")
        done = client.until_done(root)
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
    root = workspace(base_ws, tmp_path / "ws", CANARY_HELD)
    worse = register_candidate(root, broken=True)
    with running(create_app(root, config=FAST)) as url:
        client = Client(url, flipped=False)  # labels of the concept v1 learnt
        with Workspace.open(root) as ws:
            start_rollout(ws, MODEL, worse, actor="operator", reason="e2e")
        done = client.until_done(root)
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
    root = workspace(base_ws, tmp_path / "ws", CANARY_HELD.replace("metric_drop: 0.1", ""))
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
    root = workspace(base_ws, tmp_path / "ws", SHADOW)
    good = register_candidate(root, broken=False)
    with running(create_app(root, config=FAST)) as url:
        client = Client(url, flipped=False)
        with Workspace.open(root) as ws:
            start_rollout(ws, MODEL, good, actor="operator", reason="shadow")
        done = client.until_done(root)
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
    root = workspace(base_ws, tmp_path / "ws", SHADOW)
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
