"""Access control for the server: every route names the permission it needs.

Deny by default: :class:`Gate` is a dependency of the whole app; it looks up the matched
route in :data:`ROUTES` and refuses a route that is not listed there (403), so a new
route without a declared permission cannot be reached. Only ``PUBLIC`` routes (liveness
and readiness probes, which reveal no data) need no credentials.

Auth is required as soon as the store holds a token (or ``require_auth`` is set). With
no token at all, on loopback, the server is open to local callers, who act as the local
user, as the CLI does on the embedded default; ``retrainer serve`` refuses to bind any
other address in that state. Refusals are 401 (no or bad token) or 403 (wrong role),
counted in metrics and audited as ``access.denied`` (at most ``audit_per_minute`` a
minute per process, so a flood cannot flood the audit chain; the rest are counted).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, NoReturn

from fastapi import HTTPException, Request
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from retrainer.errors import AuthError, RetrainerError
from retrainer.governance.identity import Actor, Authenticator, TokenStore, local_actor
from retrainer.registry.audit import append_event
from retrainer.workspace import Workspace

__all__ = ["PUBLIC", "ROUTES", "Gate"]

log = logging.getLogger(__name__)

PUBLIC: Final = frozenset({("GET", "/health"), ("GET", "/ready")})
ROUTES: Final[Mapping[tuple[str, str], str]] = {
    ("POST", "/v1/models/{name}/predict"): "predict",
    ("POST", "/v1/models/{name}/feedback"): "feedback",
    ("GET", "/v1/models"): "read",
    ("GET", "/metrics"): "read",
    ("GET", "/v1/whoami"): "read",
    ("GET", "/v1/approvals"): "read",
    ("GET", "/v1/models/{name}/versions/{version}/approvals"): "read",
    # approve/reject: the role and separation of duties are judged by the decision itself,
    # so that a trainer hears "separation of duties", not only "wrong role".
    ("POST", "/v1/models/{name}/versions/{version}/approve"): "read",
    ("POST", "/v1/models/{name}/versions/{version}/reject"): "read",
    ("POST", "/v1/models/{name}/promote"): "promote",
    ("POST", "/v1/models/{name}/rollback"): "promote",
}
_ID = re.compile(r"^rtk_([0-9a-f]{12})\.")


@dataclass(eq=False)  # hashable: FastAPI caches dependencies by the callable
class Gate:
    """The app-wide dependency: returns the caller's :class:`Actor` or raises 401/403."""

    ws: Workspace
    require_auth: bool = False
    on_refuse: Callable[[str], None] = lambda kind: None
    audit_per_minute: int = 30
    tokens_ttl: float = 30.0
    _auth: Authenticator = field(init=False)
    _tokens_seen: tuple[float, bool] = (float("-inf"), False)
    _denied: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._auth = Authenticator(TokenStore(self.ws.db), ttl=self.tokens_ttl)

    def _configured_cached(self) -> bool | None:
        if self.require_auth:
            return True
        seen_at, has = self._tokens_seen
        return has if time.monotonic() - seen_at < self.tokens_ttl else None

    def auth_configured(self) -> bool:
        """Whether callers need a token: ``require_auth``, or any live token in the store."""
        if self.require_auth:
            return True
        now = time.monotonic()
        seen_at, has = self._tokens_seen
        if now - seen_at >= self.tokens_ttl:
            has = self._auth.any_tokens()
            self._tokens_seen = (now, has)
        return has

    async def __call__(self, request: Request) -> Actor | None:
        route = request.scope.get("route")
        key = (request.method, getattr(route, "path", ""))
        if key in PUBLIC:
            return None
        need = ROUTES.get(key)
        if need is None:
            await self._refuse(
                request, 403, "forbidden", None, "no permission is declared for this route"
            )
        given = request.headers.get("authorization", "")
        if not given:
            configured = self._configured_cached()
            if configured is None:
                configured = await run_in_threadpool(self.auth_configured)
            if not configured:
                local = local_actor(self.ws.db.dialect, os.environ)
                if local is not None:
                    return local
            await self._refuse(request, 401, "unauthorized", None, "missing bearer token")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not token:
            await self._refuse(request, 401, "unauthorized", None, "expected 'Bearer <token>'")
        actor = self._auth.cached(token)
        try:
            if actor is None:
                actor = await run_in_threadpool(self._auth.actor, token)
        except AuthError as exc:
            await self._refuse(request, 401, "unauthorized", _token_id(token), exc.message)
        assert need is not None
        if not actor.can(need):
            await self._refuse(
                request,
                403,
                "forbidden",
                actor.token_id,
                f"{actor.name} has the role {actor.role!r}, which may not {need}",
                actor=actor.name,
            )
        return actor

    async def _refuse(
        self,
        request: Request,
        status: int,
        kind: str,
        token_id: str | None,
        message: str,
        *,
        actor: str = "anonymous",
    ) -> NoReturn:
        self.on_refuse(kind)
        if self._may_audit():
            await run_in_threadpool(
                self._audit, actor, request.method, request.url.path, message, token_id, request
            )
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        raise HTTPException(status, {"message": message}, headers=headers)

    def _may_audit(self) -> bool:
        now = time.monotonic()
        with self._lock:
            self._denied = [t for t in self._denied if now - t < 60.0]
            if len(self._denied) >= self.audit_per_minute:
                return False
            self._denied.append(now)
            return True

    def _audit(
        self,
        actor: str,
        method: str,
        path: str,
        reason: str,
        token_id: str | None,
        request: Request,
    ) -> None:
        client = request.client.host if request.client else None
        try:
            self.ws.db.transaction(
                lambda s: append_event(
                    s,
                    at=self.ws.db.clock(),
                    actor=actor,
                    action="access.denied",
                    subject=f"{method} {path[:200]}",
                    payload={"reason": reason, "token_id": token_id, "client": client},
                )
            )
        except (RetrainerError, SQLAlchemyError):  # the refusal itself must still reach the caller
            log.exception("could not audit a denied request to %s %s", method, path)


def _token_id(token: str) -> str | None:
    match = _ID.match(token)
    return match.group(1) if match else None
