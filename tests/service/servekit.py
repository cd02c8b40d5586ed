"""Helpers for the server tests (not a test module): workspaces with versions, a live server.

``base_workspace`` builds, once per test session and worker, a workspace (SYNTHETIC_SPEC,
manual approval, SQLite inside it) whose version 1 is the champion and whose version 2
is READY with passed gates, awaiting promotion. Tests copy it (``copy_workspace``) so
each gets its own store. ``running(app)`` serves an app with uvicorn on a free loopback
port in a thread and yields its base URL.
"""

from __future__ import annotations

import shutil
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from conftest import SYNTHETIC_SPEC, add_batch, synthetic_batch
from retrainer.orchestrate import run_cycle
from retrainer.registry import promote
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
