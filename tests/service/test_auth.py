"""Access control of the server on a real loopback port (SEC-01, SEC-02, GOV-02).

The route table test enumerates ``app.routes``: a route added without a declared
permission fails here, and is refused at run time too (deny by default).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from servekit import MODEL, ROW, build_workspace, copy_workspace, running
from sqlalchemy import func, select

from retrainer.governance.identity import Actor, TokenStore
from retrainer.registry import CHAMPION, list_events
from retrainer.registry.tables import Approval
from retrainer.service.app import create_app
from retrainer.service.auth import PUBLIC, ROUTES
from retrainer.service.state import ServiceConfig
from retrainer.workspace import Workspace

ADMIN = Actor("root-admin", "admin")
FAST = ServiceConfig(poll_seconds=0.2, log_flush_seconds=0.2, rollout_seconds=0.2)

# Every mutating route with a body that would change state if it were let through.
MUTATING: list[tuple[str, dict[str, Any]]] = [
    (f"/v1/models/{MODEL}/predict", {"records": [ROW]}),
    (f"/v1/models/{MODEL}/feedback", {"labels": [{"prediction_id": "x", "label": 1}]}),
    (f"/v1/models/{MODEL}/versions/2/approve", {"comment": "looks good"}),
    (f"/v1/models/{MODEL}/versions/2/reject", {"comment": "looks bad"}),
    (f"/v1/models/{MODEL}/promote", {"version": 2, "reason": "x"}),
    (f"/v1/models/{MODEL}/rollback", {"reason": "x"}),
]


@pytest.fixture(scope="session")
def base_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Champion v1; v2 READY, gates passed, waiting for approval (trained by actor 't')."""
    return build_workspace(tmp_path_factory.mktemp("auth-base") / "ws")


@pytest.fixture
def ws_root(base_ws: Path, tmp_path: Path) -> Path:
    return copy_workspace(base_ws, tmp_path / "ws")


def tokens(root: Path, **roles: str) -> dict[str, str]:
    """One token per ``actor=role``, created by an admin."""
    with Workspace.open(root) as ws:
        store = TokenStore(ws.db)
        return {name: store.create(name, role, by=ADMIN).token for name, role in roles.items()}


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def state_of(root: Path) -> tuple[int | None, int, int]:
    """(champion, approvals stored, audit events that are not denials/token use)."""
    with Workspace.open(root) as ws:
        champion = ws.registry.get_alias(MODEL, CHAMPION)
        with ws.db.session() as s:
            approvals = s.scalar(select(func.count()).select_from(Approval)) or 0
            events = [e for e in list_events(s) if not e.action.startswith(("access.", "token."))]
        return champion, approvals, len(events)


def denials(root: Path) -> list[dict[str, Any]]:
    with Workspace.open(root) as ws, ws.db.session() as s:
        return [
            {"actor": e.actor, "subject": e.subject, **e.payload}
            for e in list_events(s)
            if e.action == "access.denied"
        ]


def test_every_route_declares_a_permission_or_is_a_probe(base_ws: Path, tmp_path: Path) -> None:
    app = create_app(copy_workspace(base_ws, tmp_path / "ws"), config=FAST)
    declared = {
        (method, route.path)
        for route in app.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    undeclared = declared - set(ROUTES) - PUBLIC
    assert undeclared == set(), f"routes without a permission in service/auth.py: {undeclared}"
    assert set(ROUTES) - declared == set(), "ROUTES names routes the app does not have"
    assert {("GET", "/health"), ("GET", "/ready")} == PUBLIC
    assert all(isinstance(r, APIRoute) for r in app.routes if hasattr(r, "methods"))


def test_without_credentials_every_route_but_the_probes_is_401_and_audited(
    ws_root: Path,
) -> None:
    tokens(ws_root, app="viewer")  # a token exists: auth is now required
    before = state_of(ws_root)
    with running(create_app(ws_root, config=FAST)) as url, httpx.Client(timeout=30) as http:
        for path, body in MUTATING:
            r = http.post(url + path, json=body)
            assert r.status_code == 401, (path, r.text)
            assert r.headers["www-authenticate"] == "Bearer"
        for method, path in ROUTES:
            if method == "GET":
                concrete = path.replace("{name}", MODEL).replace("{version}", "2")
                assert http.get(url + concrete).status_code == 401, path
        wrong = http.post(url + MUTATING[0][0], json=MUTATING[0][1], headers=bearer("rtk_x"))
        assert wrong.status_code == 401
        assert "malformed" in wrong.json()["detail"]["message"]
        assert http.get(f"{url}/health").status_code == 200
        assert http.get(f"{url}/ready").status_code == 200
    assert state_of(ws_root) == before
    denied = denials(ws_root)
    assert {d["subject"] for d in denied} >= {f"POST {p}" for p, _ in MUTATING}
    assert {d["actor"] for d in denied} == {"anonymous"}


def test_a_wrong_role_is_403_and_state_is_unchanged(ws_root: Path) -> None:
    t = tokens(ws_root, vic="viewer", olga="operator")
    before = state_of(ws_root)
    with running(create_app(ws_root, config=FAST)) as url, httpx.Client(timeout=30) as http:
        viewer, operator = bearer(t["vic"]), bearer(t["olga"])
        assert (
            http.post(url + MUTATING[0][0], json=MUTATING[0][1], headers=viewer).status_code == 200
        )
        for path, body in MUTATING[1:]:
            r = http.post(url + path, json=body, headers=viewer)
            assert r.status_code == 403, (path, r.text)
        for path, body in MUTATING[4:]:  # promote, rollback: admin only
            assert http.post(url + path, json=body, headers=operator).status_code == 403
        r = http.post(url + MUTATING[2][0], json=MUTATING[2][1], headers=viewer)
        assert "may not approve" in r.json()["detail"]["message"] or "needs the role" in r.text
        me = http.get(f"{url}/v1/whoami", headers=viewer).json()
        assert (me["name"], me["role"], me["via"]) == ("vic", "viewer", f"token {me['token_id']}")
    assert state_of(ws_root)[:2] == before[:2]
    actors = {d["actor"] for d in denials(ws_root)}
    assert {"vic", "olga"} <= actors


def test_approve_over_the_api_with_separation_of_duties(ws_root: Path) -> None:
    """v2 was trained by 't': t's approver token is refused; alice's approves and promotes."""
    t = tokens(ws_root, t="approver", alice="approver")
    with running(create_app(ws_root, config=FAST)) as url, httpx.Client(timeout=30) as http:
        pending = http.get(f"{url}/v1/approvals", headers=bearer(t["alice"])).json()
        assert [(p["version"], p["state"]) for p in pending] == [(2, "pending")]

        path = f"{url}/v1/models/{MODEL}/versions/2/approve"
        own = http.post(path, json={"comment": "mine, fine"}, headers=bearer(t["t"]))
        assert own.status_code == 403
        assert "separation of duties" in own.json()["detail"]["message"]

        blank = http.post(path, json={"comment": "  "}, headers=bearer(t["alice"]))
        assert blank.status_code == 422
        extra = http.post(path, json={"comment": "ok", "sudo": True}, headers=bearer(t["alice"]))
        assert extra.status_code == 422
        assert "body.sudo" in extra.json()["detail"]["message"]

        ok = http.post(path, json={"comment": "slices checked"}, headers=bearer(t["alice"]))
        assert ok.status_code == 200, ok.text
        out = ok.json()
        assert out["status"]["state"] == "approved"
        assert out["released"]["how"] == "promoted"
        again = http.post(path, json={"comment": "again"}, headers=bearer(t["alice"]))
        assert again.status_code == 409
    with Workspace.open(ws_root) as ws:
        assert ws.registry.get_alias(MODEL, CHAMPION) == 2
        (move,) = [m for m in ws.registry.history(MODEL, CHAMPION) if m.to_version == 2]
        assert move.actor == "alice"
        assert move.reason == "approved by alice: slices checked"
