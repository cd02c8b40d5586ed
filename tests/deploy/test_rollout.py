"""The rollout engine on a real workspace (SQLite and PostgreSQL): canary to promotion,
automatic rollback with alias history, audit and a webhook alert, resumption after a
restart, a corrupt candidate aborted, shadow, manual advance and abort."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from retrainer.deploy import (
    Router,
    StatsRecorder,
    abort,
    advance,
    rollout_status,
    start_rollout,
    tick,
)
from retrainer.deploy.rollout import CANARY_ALIAS, RolloutEngine
from retrainer.errors import ConflictError, NotFoundError, PolicyError
from retrainer.registry import CHAMPION, list_events, promote, verify_chain
from retrainer.workspace import Workspace

MODEL = "toy"
DEPLOY = """
deploy:
  strategy: {strategy}
  canary: {{steps: [10, 50, 100], min_requests: 40, dwell: 10m, sticky_key: user}}
  shadow: {{min_requests: 40, dwell: 1h}}
  rollback:
    {{error_rate: 0.05, latency_p99_ms: 100, prediction_drift: 0.5, min_samples: 40{metric}}}
  alert: {{webhook: {webhook}}}
"""


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def workspace_dir(
    request: pytest.FixtureRequest, make_workspace: Callable[..., Path]
) -> Callable[..., Path]:
    store = None if request.param == "sqlite" else request.getfixturevalue("pg_schema_url")
    made: list[Path] = []

    def make(strategy: str = "canary", webhook: str = "null", metric: str = "") -> Path:
        root = make_workspace(store=store, name=f"ws{len(made)}")
        made.append(root)
        with (root / "retrainer.yaml").open("a") as f:
            f.write(DEPLOY.format(strategy=strategy, webhook=webhook, metric=metric))
        return root

    return make


def versions(ws: Workspace, n: int) -> list[int]:
    reg, out = ws.registry, []
    for _ in range(n):
        v = reg.create_version(MODEL, run_id=None, actor="trainer", params={}, lineage={})
        reg.attach_artifact(MODEL, v, f"{v:064x}", actor="trainer")
        reg.mark_ready(MODEL, v, metrics={}, decision={"passed": True}, actor="trainer")
        out.append(v)
    return out


def setup(root: Path, clock: Clock) -> Workspace:
    """v1 champion, v2 a passing candidate; the workspace is returned open."""
    ws = Workspace.open(root, clock=clock)
    v1, _ = versions(ws, 2)
    promote(ws.registry, MODEL, v1, actor="setup", reason="first", expected=None)
    return ws


def serve(ws: Workspace, n: int, *, bad: float = 0.0, seed: int = 0) -> dict[int, int]:
    """``n`` keyed requests through a fresh router and recorder; the candidate (v2) fails
    a ``bad`` share of them. Returns requests per version."""
    router, rec, rng = (
        Router(ws.db, rng=random.Random(seed)),
        StatsRecorder(ws.db),
        random.Random(seed),
    )
    counts: dict[int, int] = {}
    for i in range(n):
        route = router.choose(MODEL, f"user-{seed}-{i}")
        for version in (route.version, route.shadow):
            if version is None:
                continue
            failed = version == 2 and rng.random() < bad
            rec.record(
                route, version, latency_ms=5.0, error=failed, prediction=0.3 + 0.01 * (i % 10)
            )
            counts[version] = counts.get(version, 0) + 1
    rec.flush()
    return counts


def events(ws: Workspace) -> list[tuple[str, str, dict[str, Any]]]:
    return ws.db.transaction(
        lambda s: [(e.action, e.actor, e.payload) for e in list_events(s, limit=100_000)]
    )


def moves(ws: Workspace, alias: str) -> list[tuple[int | None, int | None]]:
    return [(m.from_version, m.to_version) for m in ws.registry.history(MODEL, alias)]


class Hook:
    """A real loopback HTTP server that keeps the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alert"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.close()


def test_a_canary_goes_through_every_step_to_promotion(workspace_dir: Callable[..., Path]) -> None:
    clock = Clock()
    with setup(workspace_dir(), clock) as ws:
        r = start_rollout(ws, MODEL, 2, actor="cycle", reason="gates passed")
        assert (r.step, r.percentage, r.state, r.baseline) == (0, 10.0, "active", 1)
        seen = []
        for step, pct in enumerate([10, 50, 100]):
            counts = serve(ws, 800, seed=step)
            assert abs(counts.get(2, 0) / 800 - pct / 100) < 0.06
            early = tick(ws, MODEL)
            assert early.action == "wait" and "dwell" in early.reason
            clock.advance(minutes=11)
            seen.append(tick(ws, MODEL).action)
        assert seen == ["advanced", "advanced", "promoted"]
        assert ws.registry.get_alias(MODEL, CHAMPION) == 2
        assert moves(ws, CHAMPION) == [(None, 1), (1, 2)]
        assert moves(ws, CANARY_ALIAS) == [(None, 2)]
        actions = [a for a, _, _ in events(ws) if a.startswith(("rollout", "promote"))]
        assert actions == [
            "promote",  # v1, by the setup
            "rollout.start",
            "rollout.advance",
            "rollout.advance",
            "promote",
            "rollout.promoted",
        ]
        assert ws.db.transaction(verify_chain).ok
        assert tick(ws, MODEL).action == "none"
        assert rollout_status(ws, MODEL)["rollout"]["state"] == "promoted"


def test_a_worse_candidate_rolls_back_with_alias_history_audit_and_webhook(
    workspace_dir: Callable[..., Path], hook: Hook
) -> None:
    clock = Clock()
    with setup(workspace_dir(webhook=hook.url), clock) as ws:
        start_rollout(ws, MODEL, 2, actor="cycle", reason="gates passed")
        serve(ws, 800, bad=0.5)
        result = tick(ws, MODEL)
        assert result.action == "rolled_back"
        assert result.reason.startswith("guardrail tripped: error rate 0.")
        assert "above 0.05" in result.reason
        assert result.rollout is not None and result.rollout.state == "rolled_back"
        assert ws.registry.get_alias(MODEL, CHAMPION) == 1
        assert moves(ws, CHAMPION) == [(None, 1)]
        assert moves(ws, CANARY_ALIAS) == [(None, 2), (2, 1)]
        rolled = [(actor, p) for a, actor, p in events(ws) if a == "rollout.rolled_back"]
        assert len(rolled) == 1 and rolled[0][0] == "retrainer-rollout"
        assert rolled[0][1]["reason"] == result.reason
        assert [b["event"] for b in hook.bodies] == ["rollout.rolled_back"]
        assert hook.bodies[0]["reason"] == result.reason and hook.bodies[0]["champion"] == 1
        assert Router(ws.db, rng=random.Random(0)).choose(MODEL, "anyone").version == 1


def test_a_dead_webhook_is_logged_never_raised(
    workspace_dir: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    with setup(workspace_dir(webhook="http://127.0.0.1:9/nothing"), clock) as ws:
        start_rollout(ws, MODEL, 2, actor="cycle", reason="x")
        done = abort(ws, MODEL, actor="ops", reason="changed my mind")
        assert done.state == "aborted"
        assert "webhook" in caplog.text and "failed" in caplog.text


def test_a_restarted_server_resumes_from_the_store(workspace_dir: Callable[..., Path]) -> None:
    clock = Clock()
    root = workspace_dir()
    with setup(root, clock) as ws:
        start_rollout(ws, MODEL, 2, actor="cycle", reason="x")
        serve(ws, 400, seed=1)
        clock.advance(minutes=11)
        assert tick(ws, MODEL).action == "advanced"
        serve(ws, 300, seed=2)
    with Workspace.open(root, clock=clock) as ws:  # "restart": new objects, same store
        status = rollout_status(ws, MODEL)
        assert (status["rollout"]["step"], status["rollout"]["percentage"]) == (1, 50.0)
        by_version = {v["version"]: v["requests"] for v in status["versions"]}
        assert sum(by_version.values()) == 300
        serve(ws, 300, seed=3)
        clock.advance(minutes=11)
        assert tick(ws, MODEL).action == "advanced"
        assert rollout_status(ws, MODEL)["rollout"]["step"] == 2


def test_a_corrupt_candidate_aborts_the_canary_and_leaves_the_champion(
    workspace_dir: Callable[..., Path], hook: Hook
) -> None:
    clock = Clock()
    root = workspace_dir(webhook=hook.url)
    with setup(root, clock) as ws:
        start_rollout(ws, MODEL, 2, actor="cycle", reason="x")
        engine = RolloutEngine(ws)
        done = engine.abort(
            MODEL, actor="server", reason="sha256 mismatch for toy:2", integrity=True
        )
        assert (done.state, done.reason) == ("aborted", "sha256 mismatch for toy:2")
        assert ws.registry.get(MODEL, 2).status == "QUARANTINED"
        assert ws.registry.get_alias(MODEL, CHAMPION) == 1
        assert moves(ws, CHAMPION) == [(None, 1)]
        assert [b["event"] for b in hook.bodies] == ["rollout.abort"]
        assert Router(ws.db, rng=random.Random(0)).choose(MODEL, "u").version == 1
        with pytest.raises(NotFoundError, match=r"no active rollout .*aborted"):
            engine.abort(MODEL, actor="ops", reason="again")


def test_shadow_scores_beside_the_champion_then_promotes(
    workspace_dir: Callable[..., Path],
) -> None:
    clock = Clock()
    with setup(workspace_dir(strategy="shadow"), clock) as ws:
        start_rollout(ws, MODEL, 2, actor="cycle", reason="x")
        counts = serve(ws, 100)
        assert counts == {1: 100, 2: 100}
        assert tick(ws, MODEL).action == "wait"
        clock.advance(hours=1)
        assert tick(ws, MODEL).action == "promoted"
        assert ws.registry.get_alias(MODEL, CHAMPION) == 2


def test_manual_advance_is_audited_and_refused_without_a_rollout(
    workspace_dir: Callable[..., Path],
) -> None:
    clock = Clock()
    with setup(workspace_dir(), clock) as ws:
        with pytest.raises(NotFoundError, match="has no active rollout"):
            advance(ws, MODEL, actor="ops", reason="push")
        start_rollout(ws, MODEL, 2, actor="cycle", reason="x")
        with pytest.raises(ConflictError, match="already has an active rollout"):
            start_rollout(ws, MODEL, 2, actor="cycle", reason="again")
        assert advance(ws, MODEL, actor="ops", reason="looks fine").action == "advanced"
        assert advance(ws, MODEL, actor="ops", reason="looks fine").action == "advanced"
        assert advance(ws, MODEL, actor="ops", reason="ship it").action == "promoted"
        manual = [
            (actor, p["reason"], p["manual"])
            for a, actor, p in events(ws)
            if a == "rollout.advance"
        ]
        assert manual == [("ops", "manual: looks fine", True)] * 2
        assert ws.registry.history(MODEL, CHAMPION)[-1].reason == "manual: ship it"


def test_champion_moved_outside_the_rollout_aborts_it(workspace_dir: Callable[..., Path]) -> None:
    clock = Clock()
    with setup(workspace_dir(), clock) as ws:
        start_rollout(ws, MODEL, 2, actor="cycle", reason="x")
        v3 = versions(ws, 1)[0]
        promote(ws.registry, MODEL, v3, actor="ops", reason="hotfix", expected=1)
        result = tick(ws, MODEL)
        assert result.action == "aborted" and "moved to version 3" in result.reason
        assert ws.registry.get_alias(MODEL, CHAMPION) == 3


def test_start_is_refused_for_direct_strategy_and_without_a_champion(
    workspace_dir: Callable[..., Path],
) -> None:
    with Workspace.open(workspace_dir(strategy="direct")) as ws:
        versions(ws, 1)
        with pytest.raises(PolicyError, match="'direct'"):
            start_rollout(ws, MODEL, 1, actor="t", reason="x")
    with Workspace.open(workspace_dir()) as ws:
        versions(ws, 1)
        with pytest.raises(PolicyError, match="no champion"):
            start_rollout(ws, MODEL, 1, actor="t", reason="x")


def test_a_realised_metric_drop_rolls_back_once_labels_arrive(
    workspace_dir: Callable[..., Path],
) -> None:
    from retrainer.monitor.predictions import add_labels, log_predictions

    clock = Clock()
    root = workspace_dir(metric=", metric_drop: 0.05, min_labels: 60")
    with setup(root, clock) as ws:
        start_rollout(ws, MODEL, 2, actor="cycle", reason="x")
        clock.advance(minutes=1)
        rng = random.Random(1)
        labels = [rng.random() < 0.5 for _ in range(160)]
        for version, ids in ((1, range(0, 80)), (2, range(80, 160))):
            good = version == 1
            log_predictions(
                ws.db,
                MODEL,
                version,
                [
                    {"prediction_id": f"p{i}", "score": (0.8 if labels[i] == good else 0.2)}
                    for i in ids
                ],
            )
        assert tick(ws, MODEL).action == "wait"  # predictions, no labels yet
        add_labels(
            ws.db,
            MODEL,
            [{"prediction_id": f"p{i}", "label": int(y)} for i, y in enumerate(labels)],
        )
        clock.advance(minutes=1)
        result = tick(ws, MODEL)
        assert result.action == "rolled_back"
        assert result.reason.startswith(
            "guardrail tripped: realised roc_auc 0.0000 vs champion 1.0000"
        )
        assert ws.registry.get_alias(MODEL, CHAMPION) == 1


def test_a_crash_between_promotion_and_the_state_change_is_repaired_by_the_next_tick(
    workspace_dir: Callable[..., Path],
) -> None:
    clock = Clock()
    with setup(workspace_dir(), clock) as ws:
        start_rollout(ws, MODEL, 2, actor="cycle", reason="x")
        promote(ws.registry, MODEL, 2, actor="retrainer-rollout", reason="last step", expected=1)
        result = tick(ws, MODEL)  # as if the process died right after promote()
        assert result.action == "promoted" and result.rollout is not None
        assert result.rollout.state == "promoted"
        assert tick(ws, MODEL).action == "none"


def test_a_stale_transition_is_refused_so_two_tickers_cannot_both_act(
    workspace_dir: Callable[..., Path],
) -> None:
    clock = Clock()
    with setup(workspace_dir(), clock) as ws:
        r = start_rollout(ws, MODEL, 2, actor="cycle", reason="x")
        store = RolloutEngine(ws).store
        store.transition(r, actor="a", action="rollout.advance", reason="first", step=1)
        with pytest.raises(ConflictError, match="changed meanwhile"):
            store.transition(r, actor="b", action="rollout.advance", reason="second", step=1)
        assert store.get(r.id).step == 1
        advanced = [a for a, _, _ in events(ws) if a == "rollout.advance"]
        assert advanced == ["rollout.advance"]
