"""Routing: sticky by key and close to the percentage, random without a key, shadow, cache."""

from __future__ import annotations

import random

import pytest

from retrainer.deploy.router import Route, Router, StatsRecorder, sticky_bucket
from retrainer.deploy.store import RolloutStore
from retrainer.errors import NotFoundError
from retrainer.registry import Database, Registry, promote


def _versions(db: Database, n: int) -> list[int]:
    reg = Registry(db)
    out = []
    for _ in range(n):
        v = reg.create_version("m", run_id=None, actor="t", params={}, lineage={})
        reg.attach_artifact("m", v, "ab" * 32, actor="t")
        reg.mark_ready("m", v, metrics={}, decision={"passed": True}, actor="t")
        out.append(v)
    return out


def _start(db: Database, strategy: str = "canary", steps: list[float] | None = None) -> int:
    v1, v2 = _versions(db, 2)
    promote(Registry(db), "m", v1, actor="t", reason="first", expected=None)
    plan = {"steps": steps or [10.0, 50.0, 100.0]} if strategy == "canary" else {"steps": [0.0]}
    return (
        RolloutStore(db)
        .create(
            "m", candidate=v2, baseline=v1, strategy=strategy, plan=plan, actor="t", reason="test"
        )
        .id
    )


def test_sticky_bucket_is_stable_and_uniform() -> None:
    assert sticky_bucket("user-1", "m:1") == sticky_bucket("user-1", "m:1")
    points = [sticky_bucket(f"user-{i}", "m:1") for i in range(20_000)]
    assert all(0 <= p < 100 for p in points)
    assert abs(sum(p < 10 for p in points) / len(points) - 0.10) < 0.01


def test_sticky_routing_is_stable_close_to_the_percentage_and_grows_monotonically(
    db: Database,
) -> None:
    rid = _start(db)
    router = Router(db, rng=random.Random(0), max_age_s=3600.0)
    keys = [f"user-{i}" for i in range(5000)]
    first = {k: router.choose("m", k) for k in keys}
    again = {k: router.choose("m", k) for k in keys}
    assert first == again
    canary = {k for k, r in first.items() if r.role == "canary"}
    assert abs(len(canary) / len(keys) - 0.10) < 0.02
    assert all(r.rollout_id == rid and r.step == 0 for r in first.values())
    store = RolloutStore(db)
    store.transition(store.get(rid), actor="t", action="rollout.advance", reason="t", step=1)
    router.refresh("m")
    later = {k: router.choose("m", k) for k in keys}
    grown = {k for k, r in later.items() if r.role == "canary"}
    assert canary <= grown and abs(len(grown) / len(keys) - 0.50) < 0.03
    assert {r.version for r in later.values()} == {1, 2}


def test_without_a_key_the_injected_rng_decides(db: Database) -> None:
    _start(db)
    a = Router(db, rng=random.Random(7), max_age_s=60.0)
    b = Router(db, rng=random.Random(7), max_age_s=60.0)
    ra = [a.choose("m").version for _ in range(2000)]
    assert ra == [b.choose("m").version for _ in range(2000)]
    assert abs(ra.count(2) / 2000 - 0.10) < 0.03


def test_shadow_answers_with_the_champion_and_names_the_shadow(db: Database) -> None:
    rid = _start(db, "shadow")
    route = Router(db, rng=random.Random(0)).choose("m", "k")
    assert route == Route(1, "champion", shadow=2, rollout_id=rid, step=0)


def test_no_rollout_routes_to_the_champion_and_no_champion_is_an_error(db: Database) -> None:
    _versions(db, 1)
    router = Router(db, rng=random.Random(0), max_age_s=0.0)
    with pytest.raises(NotFoundError, match="no champion"):
        router.choose("m")
    promote(Registry(db), "m", 1, actor="t", reason="first", expected=None)
    assert router.choose("m", "k") == Route(1, "champion")


def test_the_cached_view_is_reread_only_when_older_than_max_age(db: Database) -> None:
    _versions(db, 1)
    promote(Registry(db), "m", 1, actor="t", reason="first", expected=None)
    now = [0.0]
    router = Router(db, rng=random.Random(0), max_age_s=5.0, monotonic=lambda: now[0])
    assert router.choose("m").version == 1
    v2 = _versions(db, 1)[0]
    promote(Registry(db), "m", v2, actor="t", reason="second", expected=1)
    assert router.choose("m").version == 1  # cached
    now[0] = 5.0
    assert router.choose("m").version == v2


def test_recorder_flushes_batches_and_outside_a_rollout_records_nothing(db: Database) -> None:
    rid = _start(db)
    rec = StatsRecorder(db)
    rec.record(Route(1, "champion"), 1, latency_ms=3.0)  # no rollout: ignored
    route = Route(2, "canary", rollout_id=rid, step=0)
    for i in range(30):
        rec.record(route, 2, latency_ms=5.0, error=i < 3, prediction=0.7)
    rec.record(Route(1, "champion", rollout_id=rid, step=0), 1, latency_ms=4.0, prediction=0.2)
    assert rec.flush() == 31
    assert rec.flush() == 0
    rec.record(route, 2, latency_ms=5.0, prediction=0.7)
    rec.flush()
    got = RolloutStore(db).stats(rid, 0)
    assert (got[2].requests, got[2].errors, got[1].requests) == (31, 3, 1)
    assert got[2].predictions == {"p14": 28}


def test_a_failed_flush_keeps_the_stats_for_the_next_one(db: Database) -> None:
    rid = _start(db)
    rec = StatsRecorder(db)
    rec.record(Route(2, "canary", rollout_id=rid, step=0), 2, latency_ms=5.0)
    real = rec.store.add_stats

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("store down")

    rec.store.add_stats = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        rec.flush()
    rec.store.add_stats = real  # type: ignore[method-assign]
    assert rec.flush() == 1
    assert RolloutStore(db).stats(rid, 0)[2].requests == 1


def test_one_active_rollout_per_model(db: Database) -> None:
    from retrainer.errors import ConflictError

    _start(db)
    with pytest.raises(ConflictError, match="already has an active rollout"):
        RolloutStore(db).create(
            "m", candidate=2, baseline=1, strategy="canary", plan={}, actor="t", reason="again"
        )


def test_the_selector_hook_keeps_the_candidate_loaded_and_routes_its_share(db: Database) -> None:
    from retrainer.deploy.router import RolloutSelector

    _start(db)
    hook = RolloutSelector(Router(db, rng=random.Random(0), max_age_s=3600.0))
    assert tuple(hook.versions("m")) == (2,)
    chosen = [hook.choose("m", f"k{i}", 1) for i in range(2000)]
    assert set(chosen) == {1, 2} and abs(chosen.count(2) / 2000 - 0.10) < 0.03


def test_concurrent_flushes_from_several_recorders_lose_nothing(db: Database) -> None:
    import threading

    rid = _start(db)
    route = Route(2, "canary", rollout_id=rid, step=0)

    def worker() -> None:
        rec = StatsRecorder(db)
        for _ in range(20):
            for _ in range(5):
                rec.record(route, 2, latency_ms=5.0, prediction=0.5)
            rec.flush()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = RolloutStore(db).stats(rid, 0)[2]
    assert (got.requests, sum(got.latency.values()), got.predictions) == (400, 400, {"p10": 400})
