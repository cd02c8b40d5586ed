"""Payloads against a live server (uvicorn on loopback, tests/service/servekit.py):

- SEC-03: the path payload matrix in ``{name}`` of ``/v1/models/{name}/predict`` and
  ``/feedback``, sent as raw bytes (no client normalises them): 400 or 404, never 200
  or 5xx, and the server keeps serving;
- SEC-06: a pickle ``__reduce__`` canary as the request body (``application/
  octet-stream``, ``application/x-python-pickle``, and labelled as JSON): refused
  with 4xx; as the registered champion's artifact, with the registry's sha256 matching
  the pickle bytes: never loaded, quarantined while the old champion serves. The canary
  file is never created.
"""

from __future__ import annotations

import os
import pickle
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from payloads import escapes

from conftest import SYNTHETIC_SPEC, add_batch, synthetic_batch
from retrainer.orchestrate import run_cycle
from retrainer.registry import promote
from retrainer.service import ServiceConfig, create_app
from retrainer.workspace import Workspace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))
from servekit import running

MODEL = "toy"
ROW = {"x1": 0.5, "x2": -0.2, "color": "red"}
FAST = ServiceConfig(poll_seconds=0.05, log_flush_seconds=0.05, max_body_bytes=64_000)


class Canary:
    """Creates ``path`` (a folder) if anything ever unpickles it."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (self.path,))


@pytest.fixture(scope="module")
def base_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace whose version 1 is the champion (built once per module)."""
    root = tmp_path_factory.mktemp("sec-serve") / "ws"
    (root / "data" / "batches").mkdir(parents=True)
    spec = SYNTHETIC_SPEC.format(approval="auto", store="sqlite:///.retrainer/retrainer.db")
    (root / "retrainer.yaml").write_text(spec)
    add_batch(root, "b1", synthetic_batch(1, 400, start_day=0))
    with Workspace.open(root) as ws:
        assert run_cycle(ws, actor="t").promoted
    return root


@pytest.fixture
def ws(base_ws: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(base_ws, tmp_path / "ws"))


def raw_post(base: str, target: bytes, body: bytes, content_type: bytes) -> int:
    """POST ``target`` exactly as given (no client-side normalising); the status code."""
    parts = urlsplit(base)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(
            b"POST " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: " + content_type + b"\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
        )
        head = b""
        while b"\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    return int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else 0


def test_the_model_name_in_the_url_never_escapes(ws: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    names = {
        kind: payload.replace(str(outside), "/etc")
        for kind, payload in escapes(outside).items()
        if kind != "nul"
    }
    names |= {"nul": "%00", "raw-dots": "..", "encoded-slash": "..%2F..%2Fetc%2Fpasswd"}
    body = b'{"records": [{"x1": 0.5, "x2": -0.2, "color": "red"}]}'
    with running(create_app(ws, config=FAST)) as url:
        statuses = {}
        for kind, name in names.items():
            for route in (b"predict", b"feedback"):
                target = b"/v1/models/" + name.encode() + b"/" + route
                statuses[(kind, route)] = raw_post(url, target, body, b"application/json")
        assert httpx.post(f"{url}/v1/models/{MODEL}/predict", json={"records": [ROW]}).is_success
        assert httpx.get(f"{url}/health").json()["status"] == "ok"
    assert {k: s for k, s in statuses.items() if s not in (400, 404)} == {}
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize(
    "content_type",
    [b"application/octet-stream", b"application/x-python-pickle", b"application/json"],
)
def test_a_pickle_request_body_is_refused_and_never_unpickled(
    ws: Path, tmp_path: Path, content_type: bytes
) -> None:
    canary = tmp_path / "canary"
    payload = pickle.dumps(Canary(canary))
    with running(create_app(ws, config=FAST)) as url:
        for route in (b"predict", b"feedback"):
            status = raw_post(url, b"/v1/models/toy/" + route, payload, content_type)
            assert 400 <= status < 500, (route, status)
        assert httpx.post(f"{url}/v1/models/{MODEL}/predict", json={"records": [ROW]}).is_success
    assert not canary.exists()


def test_a_pickle_champion_artifact_is_never_loaded(ws: Path, tmp_path: Path) -> None:
    """The registry row's sha256 matches the pickle bytes: the hash check passes, so only
    the format (skops, never pickle) stands between the file and the process."""
    canary = tmp_path / "canary"
    with Workspace.open(ws) as w:
        sha = w.artifacts.put(pickle.dumps(Canary(canary)))
        reg = w.registry
        version = reg.create_version(MODEL, run_id=None, actor="mallory", params={}, lineage={})
        reg.attach_artifact(MODEL, version, sha, actor="mallory")
        reg.mark_ready(MODEL, version, metrics={}, decision={"passed": True}, actor="mallory")
        assert reg.get(MODEL, version).artifact_sha256 == sha

    with running(create_app(ws, config=FAST)) as url:
        with Workspace.open(ws) as w:
            promote(w.registry, MODEL, version, actor="mallory", reason="pickle")
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/health").json()["status"] != "degraded":
            assert time.monotonic() < deadline, "the pickle version was never tried"
            time.sleep(0.05)
        health = httpx.get(f"{url}/health").json()
        served = httpx.post(f"{url}/v1/models/{MODEL}/predict", json={"records": [ROW]})
    assert not canary.exists()
    assert served.status_code == 200 and served.json()["version"] == 1
    [problem] = health["problems"]
    assert f"pending version {version} failed: UntrustedArtifactError" in problem
    assert "pickle and joblib files are never loaded" in problem
    with Workspace.open(ws) as w:
        assert w.registry.get(MODEL, version).status == "QUARANTINED"


@pytest.fixture(autouse=True)
def _no_canary_left(tmp_path: Path) -> Iterator[None]:
    yield
    assert not (tmp_path / "canary").exists()
