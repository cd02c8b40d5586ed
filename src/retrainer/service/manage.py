"""Management routes: who am I, approvals, approve/reject, promote, rollback.

Each is a thin call into the library the CLI uses (``governance.release.decide``,
``registry.promotion``), run on the thread pool; errors map to HTTP by their class:
401 unauthenticated, 403 forbidden (role, separation of duties), 404 not found, 409
conflict or refused by policy, 422 bad input. Every route's permission is declared in
:data:`retrainer.service.auth.ROUTES`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from retrainer.errors import (
    AuthError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    PolicyError,
    RetrainerError,
    SpecError,
)
from retrainer.governance.approvals import approval_check, pending, status
from retrainer.governance.identity import Actor, require
from retrainer.governance.release import decide
from retrainer.registry.promotion import promote, rollback
from retrainer.registry.registry import CHAMPION
from retrainer.service.auth import Gate
from retrainer.workspace import Workspace

__all__ = ["add_management_routes"]

T = TypeVar("T")
_STATUS: list[tuple[type[RetrainerError], int]] = [
    (AuthError, 401),
    (ForbiddenError, 403),
    (NotFoundError, 404),
    (ConflictError, 409),
    (PolicyError, 409),
    (SpecError, 422),
]


def _error(exc: RetrainerError) -> JSONResponse:
    code = next((c for kind, c in _STATUS if isinstance(exc, kind)), 500)
    return JSONResponse({"detail": {"message": exc.message, "code": exc.code}}, code)


async def _run(fn: Callable[[], T]) -> T | JSONResponse:
    try:
        return await run_in_threadpool(fn)
    except RetrainerError as exc:
        return _error(exc)


async def _body(request: Request, fields: dict[str, type]) -> dict[str, Any] | JSONResponse:
    """The JSON object body, with ``fields`` of the given types (missing ones absent)."""
    try:
        data = json.loads(await request.body() or b"{}")
    except ValueError:
        return _error(SpecError("body: expected a JSON object"))
    if not isinstance(data, dict):
        return _error(SpecError("body: expected a JSON object"))
    for key, value in data.items():
        kind = fields.get(key)
        if kind is None:
            return _error(SpecError(f"body.{key}: unknown field (expected {', '.join(fields)})"))
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            return _error(SpecError(f"body.{key}: expected {kind.__name__}"))
    return data


def add_management_routes(router: FastAPI, ws: Workspace, gate: Gate) -> None:
    """Add the routes to the app, bound to the server's workspace and its access gate
    (on the app itself, not an included router, so that ``app.routes`` lists them)."""
    who = Depends(gate)

    def model_of(name: str) -> None:
        if name != ws.spec.model.name:
            raise NotFoundError(f"this server's workspace has no model {name!r}")

    @router.get("/v1/whoami")
    async def whoami(actor: Actor | None = who) -> JSONResponse:
        assert actor is not None
        return JSONResponse({**actor.to_dict(), "via": actor.via})

    @router.get("/v1/approvals")
    async def approvals() -> JSONResponse:
        out = await _run(lambda: [s.to_dict() for s in pending(ws, ws.spec.model.name)])
        return out if isinstance(out, JSONResponse) else JSONResponse(out)

    @router.get("/v1/models/{name}/versions/{version}/approvals")
    async def version_approvals(name: str, version: int) -> JSONResponse:
        def fn() -> dict[str, Any]:
            model_of(name)
            return status(ws, name, version).to_dict()

        out = await _run(fn)
        return out if isinstance(out, JSONResponse) else JSONResponse(out)

    async def _decide(
        name: str, version: int, decision: str, request: Request, actor: Actor | None
    ) -> JSONResponse:
        assert actor is not None
        body = await _body(request, {"comment": str, "override": bool})
        if isinstance(body, JSONResponse):
            return body

        def fn() -> dict[str, Any]:
            model_of(name)
            return decide(
                ws,
                actor,
                name,
                version,
                "approve" if decision == "approve" else "reject",
                str(body.get("comment", "")),
                override=bool(body.get("override", False)),
            )

        out = await _run(fn)
        return out if isinstance(out, JSONResponse) else JSONResponse(out)

    @router.post("/v1/models/{name}/versions/{version}/approve")
    async def approve(
        name: str, version: int, request: Request, actor: Actor | None = who
    ) -> JSONResponse:
        return await _decide(name, version, "approve", request, actor)

    @router.post("/v1/models/{name}/versions/{version}/reject")
    async def reject(
        name: str, version: int, request: Request, actor: Actor | None = who
    ) -> JSONResponse:
        return await _decide(name, version, "reject", request, actor)

    @router.post("/v1/models/{name}/promote")
    async def promote_route(name: str, request: Request, actor: Actor | None = who) -> JSONResponse:
        assert actor is not None
        body = await _body(request, {"version": int, "expected": int, "reason": str})
        if isinstance(body, JSONResponse):
            return body

        def fn() -> dict[str, Any]:
            model_of(name)
            require(actor, "promote", "promoting by hand")
            if "version" not in body:
                raise SpecError("body.version: required (the version to make champion)")
            version = int(body["version"])
            expected = body.get("expected", ws.registry.get_alias(name, CHAMPION))
            needs = list(status(ws, name, version).needs)
            return promote(
                ws.registry,
                name,
                version,
                actor=actor.name,
                reason=str(body.get("reason") or "promoted over the API"),
                expected=expected,
                check=approval_check(ws, needs),
            ).to_dict()

        out = await _run(fn)
        return out if isinstance(out, JSONResponse) else JSONResponse(out)

    @router.post("/v1/models/{name}/rollback")
    async def rollback_route(
        name: str, request: Request, actor: Actor | None = who
    ) -> JSONResponse:
        assert actor is not None
        body = await _body(request, {"reason": str})
        if isinstance(body, JSONResponse):
            return body

        def fn() -> dict[str, Any]:
            model_of(name)
            reason = str(body.get("reason") or "rolled back over the API")
            return rollback(ws.registry, name, actor=actor.name, reason=reason).to_dict()

        out = await _run(fn)
        return out if isinstance(out, JSONResponse) else JSONResponse(out)
