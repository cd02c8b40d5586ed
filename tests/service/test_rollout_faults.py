"""Rollout faults: the server killed mid-canary resumes from the store after a restart; a
corrupt candidate aborts the canary (quarantined, alerted) while the champion serves
every request."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from servekit import (
    MODEL,
    Client,
    audit,
    build_workspace,
    free_socket,
    moves,
    register_candidate,
    running,
    with_deploy,
)

from retrainer.deploy import start_rollout
from retrainer.deploy.store import RolloutStore
from retrainer.registry import CHAMPION
from retrainer.service import ServiceConfig, create_app
from retrainer.workspace import Workspace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))

from cliproc import finish, start

STEPS = """
deploy:
  strategy: canary
  canary: {steps: [20, 50, 100], min_requests: 15, dwell: 1s}
  rollback: {error_rate: 0.05, prediction_drift: null, min_samples: 10}
"""


@pytest.fixture(scope="module")
def base_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_workspace(tmp_path_factory.mktemp("rollout-faults") / "ws")


def serve(root: Path) -> tuple[str, subprocess.Popen[str]]:
    """``retrainer serve`` as a process on a free port; returns its URL once ready."""
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    proc = start("serve", "-w", root, "--port", port, "--poll", "0.1", cwd=root)
    url = f"http://127.0.0.1:{port}"
    for _ in range(3000):
        try:
            if httpx.get(f"{url}/ready", timeout=5).status_code == 200:
                return url, proc
        except httpx.TransportError:
            pass
        assert proc.poll() is None, finish(proc).stderr
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("the server did not become ready")


def test_a_killed_server_resumes_the_rollout_from_the_store(base_ws: Path, tmp_path: Path) -> None:
    root = with_deploy(base_ws, tmp_path / "ws", STEPS)
    good = register_candidate(root, broken=False)
    with Workspace.open(root) as ws:
        started = start_rollout(ws, MODEL, good, actor="operator", reason="restart test")
        store = RolloutStore(ws.db)

        url, proc = serve(root)
        try:
            client = Client(url, flipped=False)
            for _ in range(400):  # until the first step has passed
                current = store.latest(MODEL)
                assert current is not None and current.state == "active", current
                if current.step >= 1:
                    break
                client.send(5)
            assert current.step >= 1, current
        finally:
            proc.send_signal(signal.SIGKILL)
            finish(proc)
        at_kill = store.latest(MODEL)
        assert at_kill is not None and at_kill.state == "active"

        url, proc = serve(root)
        try:
            resumed = store.latest(MODEL)
            assert resumed is not None
            assert (resumed.id, resumed.step) == (started.id, at_kill.step)  # not restarted
            client = Client(url, flipped=False, seed=77)
            done = client.until_done(root)
        finally:
            proc.send_signal(signal.SIGTERM)
            stopped = finish(proc)
    assert "Traceback" not in stopped.stderr, stopped.stderr
    assert (done.id, done.state) == (started.id, "promoted"), done
    assert set(client.statuses) == {200}
    actions = [a for a, _, _ in audit(root) if a.startswith("rollout.")]
    assert actions == ["rollout.start", "rollout.advance", "rollout.advance", "rollout.promoted"]
    assert moves(root, CHAMPION)[-1] == (1, good, "retrainer-rollout")


def test_a_corrupt_candidate_aborts_the_canary_and_the_champion_serves_on(
    base_ws: Path, tmp_path: Path
) -> None:
    root = with_deploy(base_ws, tmp_path / "ws", STEPS)
    good = register_candidate(root, broken=False)
    with Workspace.open(root) as ws:
        sha = ws.registry.get(MODEL, good).artifact_sha256
        assert sha is not None
        path = Path(ws.artifacts.path_of(sha))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte flipped
    path.chmod(0o600)
    path.write_bytes(bytes(data))

    config = ServiceConfig(poll_seconds=0.1, rollout_seconds=0.1, log_flush_seconds=0.05)
    with running(create_app(root, config=config)) as url:
        client = Client(url, flipped=False)
        client.send(5)
        with Workspace.open(root) as ws:
            start_rollout(ws, MODEL, good, actor="operator", reason="corrupt candidate")
        done = client.until_done(root, batch=5)
        client.send(10)
        health = client.http.get(f"{url}/health").json()
    assert done.state == "aborted", done
    assert f"candidate version {good} failed to load: ArtifactIntegrityError" in (done.reason or "")
    assert set(client.statuses) == {200}, client.statuses  # no 5xx at any time
    assert set(client.versions) == {1}
    assert health["models"][MODEL]["serving"]["version"] == 1
    with Workspace.open(root) as ws:
        assert ws.registry.get(MODEL, good).status == "QUARANTINED"
        assert ws.registry.get_alias(MODEL, CHAMPION) == 1
    assert moves(root, "canary")[-2:] == [(None, good, "operator"), (good, 1, "retrainer-serve")]
    events = [(a, s) for a, s, _ in audit(root)]
    assert ("version.quarantined", f"{MODEL}:{good}") in events
    assert [a for a, _ in events if a.startswith("rollout.")][-1] == "rollout.abort"
