"""``retrainer serve``: the prediction server (FastAPI + uvicorn) for the workspace's champion."""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from retrainer.cli.common import WorkspaceOpt, console, guard

__all__ = ["serve_cmd"]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve_cmd(
    workspace: WorkspaceOpt = Path(),
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address to bind. Anything but loopback needs API tokens in the store "
            "('retrainer token create'); callers then send 'Authorization: Bearer <token>'.",
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Worker processes (each loads the models).")
    ] = 1,
    poll: Annotated[
        float,
        typer.Option(
            "--poll",
            min=0.01,
            help="Seconds between checks of the champion alias, and between rollout passes "
            "(traffic stats written, guardrails judged, steps advanced or rolled back).",
        ),
    ] = 2.0,
    max_body: Annotated[
        int,
        typer.Option("--max-body-bytes", min=1, help="Larger request bodies get 413."),
    ] = 1_048_576,
    log_queue: Annotated[
        int,
        typer.Option(
            "--log-queue",
            min=1,
            help="Prediction log rows held in memory; beyond that they are dropped and counted.",
        ),
    ] = 10_000,
    model_threads: Annotated[
        int,
        typer.Option(
            "--model-threads",
            min=0,
            help="OpenMP threads per model call (0: the library's default, one per core). "
            "1 is fastest when many requests arrive at once; add --workers to use more cores.",
        ),
    ] = 1,
) -> None:
    """Serve predictions from the champion, following promotions without downtime.

    Endpoints: POST /v1/models/NAME/predict, POST /v1/models/NAME/feedback,
    GET /v1/models, /health, /ready, /metrics (Prometheus). See docs/serving.md.

    Example: [bold]retrainer serve -w rain-demo --port 8000 --poll 5[/bold]

    Example: [bold]retrainer serve --host 0.0.0.0 --workers 2[/bold] (after
    [bold]retrainer token create --role viewer --actor app[/bold])

    Access: once the store holds a token, every route but /health and /ready needs
    'Authorization: Bearer <token>' with a role that allows it (docs/access.md).
    """
    import uvicorn

    from retrainer.governance.identity import Authenticator, TokenStore
    from retrainer.service.app import ENV_CONFIG, ENV_WORKSPACE, create_app
    from retrainer.service.state import ServiceConfig
    from retrainer.service.transport import NoDelayH11Protocol
    from retrainer.workspace import Workspace

    if not _is_loopback(host):

        def has_tokens() -> bool:
            with Workspace.open(workspace) as ws:
                return Authenticator(TokenStore(ws.db)).any_tokens()

        if not guard(has_tokens):
            raise typer.BadParameter(
                f"refusing to bind {host}: no API token exists, so the server would be open "
                "to anyone who reaches it; create one first ('retrainer token create --role "
                "viewer --actor NAME'; callers send 'Authorization: Bearer <token>') or bind "
                "127.0.0.1",
                param_hint="--host",
            )
    settings: dict[str, Any] = {
        "poll_seconds": poll,
        "rollout_seconds": poll,
        "max_body_bytes": max_body,
        "log_queue": log_queue,
        "model_threads": model_threads or None,
    }
    config = ServiceConfig(**settings)
    c = console(stderr=True)
    if workers == 1:
        app = guard(lambda: create_app(workspace, config=config))
        c.print(f"serving {workspace.resolve()} on http://{host}:{port}")
        uvicorn.run(app, host=host, port=port, log_level="warning", http=NoDelayH11Protocol)
        return
    guard(lambda: Workspace.open(workspace).close())  # a bad spec fails here, not per worker
    os.environ[ENV_WORKSPACE] = str(workspace.resolve())
    os.environ[ENV_CONFIG] = json.dumps(settings)
    c.print(f"serving {workspace.resolve()} on http://{host}:{port} with {workers} workers")
    uvicorn.run(
        "retrainer.service.app:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        http=NoDelayH11Protocol,
    )
