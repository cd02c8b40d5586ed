"""The FastAPI app: thin routes over :class:`~retrainer.service.state.ServiceState`.

Endpoints: ``POST /v1/models/{name}/predict``, ``POST /v1/models/{name}/feedback``,
``GET /v1/models``, ``GET /health``, ``GET /ready``, ``GET /metrics``, and the management
routes of :mod:`retrainer.service.manage` (approvals, promote, rollback). Every route
but the probes needs a permission (:mod:`retrainer.service.auth`). Request bodies
above ``max_body_bytes`` get 413 before they are buffered (a declared
``Content-Length`` is refused up front; a streamed body is cut off as it crosses the
limit).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from retrainer.service.auth import Gate
from retrainer.service.manage import add_management_routes
from retrainer.service.metrics import CONTENT_TYPE_LATEST
from retrainer.service.pool import VersionSelector
from retrainer.service.state import Reply, ServiceConfig, ServiceState
from retrainer.workspace import Workspace

__all__ = ["create_app", "create_app_from_env"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ENV_WORKSPACE = "RETRAINER_SERVE_WORKSPACE"
ENV_CONFIG = "RETRAINER_SERVE_CONFIG"


class _TooLarge(Exception):
    """Raised inside the body stream once the limit is crossed, to stop reading."""


class BodyLimit:
    """ASGI middleware: 413 for bodies over ``limit`` bytes, before they are buffered."""

    def __init__(self, app: ASGIApp, limit: int, on_refuse: Callable[[], None]) -> None:
        self.app = app
        self.limit = limit
        self.on_refuse = on_refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope.get("headers", []):
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _send_json(send, 400, {"detail": {"message": "bad Content-Length"}})
                    return
                if declared > self.limit:
                    await self._refuse(send, declared)
                    return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(send, seen)

    async def _refuse(self, send: Send, size: int) -> None:
        self.on_refuse()
        await _send_json(
            send,
            413,
            {
                "detail": {
                    "message": f"request body too large: at least {size} bytes, "
                    f"the limit is {self.limit}"
                }
            },
        )


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


def _json(reply: Reply) -> JSONResponse:
    return JSONResponse(reply.body, status_code=reply.status)


def create_app(
    workspace_root: Path,
    *,
    config: ServiceConfig | None = None,
    selector: VersionSelector | None = None,
) -> FastAPI:
    """Build the server for the workspace at ``workspace_root``.

    The workspace is opened now (a bad spec or store fails here); models are loaded and
    the poller and log writer start when the app starts (its lifespan), and they stop,
    flushing the log, when it shuts down. All state lives on ``app.state.service``.

    Args:
        workspace_root: The workspace folder (or its spec file).
        config: Timings, limits and whether auth is required even with no tokens.
        selector: Chooses the version per request (default: the champion).
    """
    config = config or ServiceConfig()
    state = ServiceState(Workspace.open(workspace_root), config, selector)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(state.start)
        try:
            yield
        finally:
            await run_in_threadpool(state.close)

    gate = Gate(
        state.ws,
        require_auth=config.require_auth,
        on_refuse=lambda kind: state.metrics.errors.labels("", kind).inc(),
    )
    app = FastAPI(
        title="retrainer serve",
        summary="Predictions from the workspace's champion models.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=[Depends(gate)],  # deny by default: see service/auth.py
    )
    app.state.service = state
    add_management_routes(app, state.ws, gate)

    @app.post("/v1/models/{name}/predict")
    async def predict(name: str, request: Request) -> JSONResponse:
        body = await request.body()
        key = request.headers.get("x-request-key")
        if len(body) <= config.inline_bytes:  # a few rows: cheaper than a thread hop
            return _json(state.predict(name, body, key))
        return _json(await run_in_threadpool(state.predict, name, body, key))

    @app.post("/v1/models/{name}/feedback")
    async def feedback(name: str, request: Request) -> JSONResponse:
        body = await request.body()
        return _json(await run_in_threadpool(state.feedback, name, body))

    @app.get("/v1/models")
    async def models() -> JSONResponse:
        return _json(state.models())

    @app.get("/health")
    async def health() -> JSONResponse:
        return _json(state.health())

    @app.get("/ready")
    async def ready() -> JSONResponse:
        return _json(state.ready())

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(state.render_metrics(), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(
        BodyLimit,
        limit=config.max_body_bytes,
        on_refuse=lambda: state.metrics.errors.labels("", "too_large").inc(),
    )
    return app


def create_app_from_env() -> FastAPI:
    """The app factory uvicorn's workers call (``--workers N``): settings from the env."""
    root = Path(os.environ[ENV_WORKSPACE])
    raw = json.loads(os.environ.get(ENV_CONFIG, "{}"))
    if raw.get("log_dir"):
        raw["log_dir"] = Path(raw["log_dir"])
    config = ServiceConfig(**raw)
    return create_app(root, config=config)
