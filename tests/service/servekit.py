"""Helpers for the server tests (not a test module): workspaces with versions, a live server.

``build_workspace`` builds, once per test session and worker, a workspace (SYNTHETIC_SPEC,
manual approval, SQLite inside it) whose version 1 is the champion and whose version 2
is READY with passed gates, awaiting promotion. Tests copy it (``copy_workspace``) so
each gets its own store. ``running(app)`` serves an app with uvicorn on a free loopback
port in a thread and yields its base URL. For rollouts: ``with_deploy`` (a copy with a
``deploy:`` section), ``register_candidate`` (a good or a broken READY version),
``Client`` (traffic with true labels sent back), ``audit`` and ``moves`` (what the
store recorded).
"""

from __future__ import annotations

import shutil
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from conftest import SYNTHETIC_SPEC, add_batch, synthetic_batch
from retrainer.deploy.store import RolloutInfo, RolloutStore
from retrainer.orchestrate import run_cycle
from retrainer.registry import list_events, promote
from retrainer.workspace import Workspace

MODEL = "toy"
ROW = {"x1": 0.5, "x2": -0.2, "color": "red"}


def build_workspace(root: Path) -> Path:
    """A workspace at ``root``: champion v1, READY v2 (gates passed, not promoted)."""
    (root / "data" / "batches").mkdir(parents=True)
    spec = SYNTHETIC_SPEC.format(approval="manual", store="sqlite:///.retrainer/retrainer.db")
    (root / "retrainer.yaml").write_text(spec)
    add_batch(root, "b1", synthetic_batch(1, 400, start_day=0))
    with Workspace.open(root) as ws:
        run_cycle(ws, actor="t")
        promote(ws.registry, MODEL, 1, actor="approver", reason="first")
    add_batch(root, "b2", synthetic_batch(2, 300, start_day=1, flipped=True))
    with Workspace.open(root) as ws:
        result = run_cycle(ws, actor="t")
        assert result.version == 2, result.outcome
        assert ws.registry.get(MODEL, 2).status == "READY"
    return root


def copy_workspace(base: Path, dest: Path) -> Path:
    """A private copy of a workspace folder (its SQLite store included)."""
    shutil.copytree(base, dest)
    return dest


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def running(app: Any) -> Iterator[str]:
    """Serve ``app`` on a free loopback port in a thread; yield ``http://127.0.0.1:PORT``."""
    sock = free_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)  # off the main thread: no signal handlers
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(3000):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.01)
        assert server.started, "the server did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def with_deploy(base: Path, dest: Path, deploy: str) -> Path:
    """A copy of ``base`` whose spec ends with the ``deploy`` section given."""
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

    def until_serving(self, version: int) -> None:
        """Send until ``version`` answers: the server swaps its routing view at its next
        refresh, so a request or two may still reach the old champion after a rollout ends."""
        for _ in range(200):
            self.send(1)
            if self.versions and self.versions[-1] == version:
                return
        raise AssertionError(f"version {version} never answered: {self.versions[-10:]}")

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
