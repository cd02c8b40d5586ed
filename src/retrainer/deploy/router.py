"""Routing requests during a rollout, and recording what each version served.

The server asks :meth:`Router.choose` which version answers a request, then reports the
outcome to a :class:`StatsRecorder` and flushes it every few seconds (one small
transaction per active rollout). Both only read or add to the store; the engine
(:func:`retrainer.deploy.rollout.tick`) makes the decisions.

Routing is sticky when a request key is given: the key is hashed (with the rollout's
id) into [0, 100) and the request goes to the candidate when that is below the step's
percentage, so a key stays on the candidate as the percentage grows and the share is
close to the percentage. Without a key an injected ``random.Random`` decides. In
shadow mode the champion answers and the candidate scores the same request beside it
(``Route.shadow``); its answer is discarded, its stats are recorded.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from retrainer.deploy.guardrails import TrafficStats
from retrainer.deploy.store import RolloutInfo, RolloutStore
from retrainer.errors import NotFoundError
from retrainer.registry.db import Database
from retrainer.registry.registry import CHAMPION, Registry

__all__ = ["RolloutSelector", "Route", "Router", "StatsRecorder", "sticky_bucket"]


def sticky_bucket(key: str, salt: str) -> float:
    """A stable number in [0, 100) for ``key`` (sha256 of ``salt:key``)."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100.0


@dataclass(frozen=True)
class Route:
    """Who answers one request.

    ``version`` answers (``role`` champion or canary); ``shadow`` is a version that also
    scores the request, its answer discarded (None outside shadow rollouts).
    ``rollout_id``/``step`` say under which rollout step the request was routed (None
    without an active rollout) and go back to :meth:`StatsRecorder.record`.
    """

    version: int
    role: Literal["champion", "canary"]
    shadow: int | None = None
    rollout_id: int | None = None
    step: int | None = None


@dataclass(frozen=True)
class _State:
    champion: int | None
    rollout: RolloutInfo | None
    read_at: float


class Router:
    """Chooses versions from the store's state, re-read at most every ``max_age_s``.

    Thread-safe. ``choose`` does not touch the store unless its cached view is older
    than ``max_age_s`` (``monotonic`` is injectable for tests); ``refresh`` forces it.
    """

    def __init__(
        self,
        db: Database,
        *,
        rng: random.Random,
        max_age_s: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = RolloutStore(db)
        self.registry = Registry(db)
        self.rng = rng
        self.max_age_s = max_age_s
        self.monotonic = monotonic
        self._states: dict[str, _State] = {}
        self._lock = threading.Lock()

    def refresh(self, model: str) -> None:
        """Re-read the champion and the active rollout of ``model`` now."""
        state = _State(
            self.registry.get_alias(model, CHAMPION), self.store.active(model), self.monotonic()
        )
        with self._lock:
            self._states[model] = state

    def _state(self, model: str) -> _State:
        with self._lock:
            state = self._states.get(model)
        if state is None or self.monotonic() - state.read_at >= self.max_age_s:
            self.refresh(model)
            with self._lock:
                state = self._states[model]
        return state

    def cached(self, model: str) -> RolloutInfo | None:
        """The active rollout of ``model`` as last read (read now if never read)."""
        return self._state(model).rollout

    def choose(self, model: str, request_key: str | None = None) -> Route:
        """The version that answers this request (and one that shadows it, if any).

        Raises NotFoundError when the model has no champion.
        """
        state = self._state(model)
        r = state.rollout
        if state.champion is None:
            raise NotFoundError(f"model {model!r} has no champion to serve")
        if r is None or r.baseline != state.champion:
            return Route(state.champion, "champion")
        if r.strategy == "shadow":
            return Route(state.champion, "champion", shadow=r.candidate, rollout_id=r.id, step=0)
        if request_key is not None:
            point = sticky_bucket(request_key, f"{model}:{r.id}")
        else:
            with self._lock:
                point = self.rng.random() * 100.0
        if point < r.percentage:
            return Route(r.candidate, "canary", rollout_id=r.id, step=r.step)
        return Route(state.champion, "champion", rollout_id=r.id, step=r.step)


class RolloutSelector:
    """The server's ``VersionSelector`` hook (``versions``/``choose``) backed by a Router.

    ``versions`` names the candidate of an active rollout (to keep it loaded);
    ``choose`` answers with the candidate for the canary share and with the server's
    loaded ``champion`` otherwise. Shadow scoring and stats need :meth:`Router.choose`
    and a :class:`StatsRecorder` directly: this hook returns one version per request.
    """

    def __init__(self, router: Router) -> None:
        self.router = router

    def versions(self, model: str) -> tuple[int, ...]:
        """The active rollout's candidate, or nothing."""
        rollout = self.router.cached(model)
        return () if rollout is None else (rollout.candidate,)

    def choose(self, model: str, request_key: str, champion: int) -> int:
        """The candidate for the canary share of keys, else ``champion``."""
        route = self.router.choose(model, request_key)
        return route.version if route.role == "canary" else champion


class StatsRecorder:
    """Accumulates per-version traffic in memory; :meth:`flush` adds it to the store.

    Thread-safe. A failed flush keeps what it could not write for the next one.
    """

    def __init__(self, db: Database) -> None:
        self.store = RolloutStore(db)
        self._pending: dict[tuple[int, int], dict[int, TrafficStats]] = {}
        self._lock = threading.Lock()

    def record(
        self,
        route: Route,
        version: int,
        *,
        latency_ms: float,
        error: bool = False,
        prediction: float | int | str | bool | None = None,
        predictions: Sequence[float | int | str | bool | None] = (),
    ) -> None:
        """One request answered (or shadow-scored) by ``version`` under ``route``.

        ``prediction`` is the request's one prediction; ``predictions`` those of a request
        of several rows (each counts in the prediction histogram). A no-op outside a
        rollout (``route.rollout_id`` is None). Never touches the store.
        """
        if route.rollout_id is None or route.step is None:
            return
        one = TrafficStats.one(
            latency_ms=latency_ms,
            error=error,
            prediction=prediction,
            predictions=predictions,
        )
        key = (route.rollout_id, route.step)
        with self._lock:
            per = self._pending.setdefault(key, {})
            per[version] = per.get(version, TrafficStats()) + one

    def flush(self) -> int:
        """Write what was recorded (one transaction per rollout step); requests written.

        Raises the store's error after putting back what was not written.
        """
        with self._lock:
            pending, self._pending = self._pending, {}
        written = 0
        items = sorted(pending.items())
        for i, ((rollout_id, step), per) in enumerate(items):
            try:
                self.store.add_stats(rollout_id, step, per)
            except BaseException:
                with self._lock:
                    for key, rest in items[i:]:
                        mine = self._pending.setdefault(key, {})
                        for version, stats in rest.items():
                            mine[version] = mine.get(version, TrafficStats()) + stats
                raise
            written += sum(s.requests for s in per.values())
        return written
