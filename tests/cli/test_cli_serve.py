"""``retrainer serve`` as a real process: serves, flushes its log on SIGTERM, guards its bind."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))

from cliproc import finish, start
from servekit import MODEL, ROW, build_workspace, free_socket

from retrainer.deploy.predlog import read_prediction_log


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_workspace(tmp_path_factory.mktemp("cli-serve") / "ws")


def test_serve_answers_and_flushes_the_log_on_sigterm(ws: Path) -> None:
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    proc = start("serve", "-w", ws, "--port", port, "--poll", "0.1", cwd=ws)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(3000):
            try:
                if httpx.get(f"{url}/ready", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, finish(proc).stderr
            time.sleep(0.02)
        response = httpx.post(f"{url}/v1/models/{MODEL}/predict", json={"records": [ROW]})
        assert response.status_code == 200, response.text
        pid = response.json()["predictions"][0]["prediction_id"]
    finally:
        proc.send_signal(signal.SIGTERM)
    done = finish(proc)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status says so.
    assert done.returncode in (0, -signal.SIGTERM), done.stderr
    assert "Traceback" not in done.stderr
    log = read_prediction_log(ws / ".retrainer" / "predictions", MODEL)
    assert pid in set(log["prediction_id"])


def test_serve_refuses_a_public_bind_without_a_token(ws: Path) -> None:
    done = finish(start("serve", "-w", ws, "--host", "0.0.0.0", cwd=ws))
    assert done.returncode == 2
    assert "no API token exists" in " ".join(done.stderr.split())
