"""Rollouts inside the server: routing each request, recording traffic, and the rollout loop.

One :class:`RolloutRuntime` per server process wires the deploy library
(:mod:`retrainer.deploy.router`, :mod:`retrainer.deploy.rollout`) into serving:

* per request, :meth:`RolloutRuntime.route` says which version answers (and which one
  shadows it) from a cached view of the store: no store access on the request path;
* :meth:`RolloutRuntime.record` counts what each version served, in memory;
* a background thread, every ``interval_s``, flushes those counts to the store, copies
  the rollout's logged predictions into the store's prediction table when the
  ``metric_drop`` guardrail needs them, ticks the engine (advance, promote, roll back)
  and re-reads the router's view, then asks the pool to load or unload versions.

Every decision is read from the store, so a restarted server, or several workers,
carry on the same rollout; concurrent ticks are safe (compare-and-swap).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from retrainer.deploy.alerts import Alerter
from retrainer.deploy.predlog import copy_to_store
from retrainer.deploy.rollout import RolloutEngine, TickResult
from retrainer.deploy.router import Route, Router, StatsRecorder
from retrainer.errors import ArtifactIntegrityError, NotFoundError, RetrainerError, StoreError
from retrainer.workspace import Workspace

__all__ = ["RolloutRuntime", "quarantine", "sticky_value"]

logger = logging.getLogger(__name__)

ACTOR = "retrainer-serve"
_CHANGED = frozenset({"advanced", "promoted", "rolled_back", "aborted"})


def quarantine(
    ws: Workspace, alerter: Alerter, model: str, version: int, exc: BaseException
) -> None:
    """Mark a version whose artifact failed its integrity check ``QUARANTINED`` and alert.

    The status change is audited (``version.quarantined``); the alert is sent once, by
    the process that made the change (a version already quarantined is left alone).
    """
    try:
        if ws.registry.get(model, version).status != "READY":
            return
        reason = f"artifact failed its integrity check on load: {type(exc).__name__}: {exc}"
        ws.registry.set_status(model, version, "QUARANTINED", actor=ACTOR, reason=reason)
    except RetrainerError:
        logger.exception("%s: could not quarantine version %d", model, version)
        return
    alerter.send(
        {
            "event": "version.quarantined",
            "model": model,
            "version": version,
            "reason": reason,
            "message": f"{model}: version {version} quarantined: {reason}",
        }
    )


def sticky_value(payload: Any, field: str) -> str | None:
    """The first row's value of ``field`` in a predict body (records or columns), as text."""
    if not isinstance(payload, Mapping):
        return None
    records, columns = payload.get("records"), payload.get("columns")
    value: Any = None
    if isinstance(records, list) and records and isinstance(records[0], Mapping):
        value = records[0].get(field)
    elif isinstance(columns, Mapping) and isinstance(columns.get(field), list):
        column = columns[field]
        value = column[0] if column else None
    return None if value is None or isinstance(value, list | dict) else str(value)


class RolloutRuntime:
    """Routes, records and drives the rollouts of the models one server serves.

    Args:
        ws: The open workspace.
        models: Returns the served model names (asked on every pass).
        log_root: The prediction log folder (read to feed the ``metric_drop`` guardrail).
        interval_s: How often the loop flushes, ticks and refreshes.
        on_change: Called (from the loop thread) after a tick changed a rollout or
            the routing view changed, so the pool can load or unload versions.
        rng: Decides keyless canary routing (seeded in tests).
    """

    def __init__(
        self,
        ws: Workspace,
        models: Callable[[], Sequence[str]],
        *,
        log_root: Path,
        interval_s: float = 2.0,
        on_change: Callable[[], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.ws = ws
        self.models = models
        self.log_root = log_root
        self.interval_s = interval_s
        self.on_change = on_change
        self.router = Router(ws.db, rng=rng or random.Random(), max_age_s=float("inf"))
        self.recorder = StatsRecorder(ws.db)
        self.engine = RolloutEngine(ws)
        self.last_error: str | None = None
        self.last_ticks: dict[str, dict[str, Any]] = {}
        self._copied_until: dict[str, tuple[int, datetime]] = {}  # model -> (rollout, when)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- request path (no store access once the view is loaded) -------------------------

    def route(self, model: str, payload: Any, header_key: str | None) -> Route | None:
        """Who answers this request; None when the view cannot be read (use the champion).

        The caller's ``X-Request-Key`` pins the route; else, when the rollout's plan
        names a ``sticky_key`` field, that field of the first row does; else the route is
        drawn at random.
        """
        try:
            key = header_key
            if key is None:
                rollout = self.router.cached(model)
                field = None if rollout is None else rollout.plan.get("sticky_key")
                if field:
                    key = sticky_value(payload, str(field))
            return self.router.choose(model, key)
        except Exception:
            logger.exception("%s: routing failed; answering with the champion", model)
            return None

    def record(
        self,
        route: Route | None,
        version: int,
        *,
        latency_ms: float,
        error: bool = False,
        predictions: Sequence[float | int | str | bool | None] = (),
    ) -> None:
        """Count one request answered (or shadow-scored) by ``version`` (in memory)."""
        if route is not None:
            self.recorder.record(
                route, version, latency_ms=latency_ms, error=error, predictions=predictions
            )

    def choose(self, model: str, request_key: str, champion: int) -> int:
        """The ``VersionSelector`` answer: the candidate for the canary share, else ``champion``.

        (The server routes with :meth:`route`, which also names a shadow.)
        """
        route = self.router.choose(model, request_key)
        return route.version if route.role == "canary" else champion

    def versions(self, model: str) -> Collection[int]:
        """Versions besides the champion to keep loaded: the active rollout's candidate."""
        rollout = self.router.cached(model)
        return () if rollout is None else (rollout.candidate,)

    # -- failures the pool reports -----------------------------------------------------

    def load_failed(self, model: str, version: int, exc: BaseException) -> None:
        """A version failed to load: abort the rollout whose candidate it is.

        A corrupt artifact (sha256 mismatch, untrusted types) also quarantines the
        candidate; a store hiccup aborts nothing (the pool retries).
        """
        if isinstance(exc, StoreError):
            return
        rollout = self.router.cached(model)
        if rollout is None or rollout.candidate != version:
            return
        integrity = isinstance(exc, ArtifactIntegrityError)
        try:
            self.engine.abort(
                model,
                actor=ACTOR,
                reason=f"candidate version {version} failed to load: {type(exc).__name__}: {exc}",
                integrity=integrity,
            )
        except NotFoundError:  # another worker (or server) ended it first
            logger.info("%s: rollout of version %d already ended elsewhere", model, version)
        except RetrainerError:
            logger.exception("%s: could not abort rollout of version %d", model, version)
        self.router.refresh(model)

    # -- the loop ----------------------------------------------------------------------

    def start(self) -> None:
        """Read the routing view once, then run the loop in a daemon thread."""
        for model in self.models():
            try:
                self.router.refresh(model)
            except Exception as exc:  # noqa: BLE001 - the loop retries
                self.last_error = f"{type(exc).__name__}: {exc}"
        self._thread = threading.Thread(target=self._run, name="rollout-loop", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop, then flush the counts it has not written (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        try:
            self.recorder.flush()
        except Exception:
            logger.exception("rollout stats: final flush failed")

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.step()

    def step(self) -> list[TickResult]:
        """One pass: flush, feed the metric guardrail, tick, refresh. Never raises."""
        results: list[TickResult] = []
        errors: list[str] = []
        try:
            self.recorder.flush()
        except Exception as exc:  # noqa: BLE001 - kept for the next flush
            errors.append(f"stats flush: {type(exc).__name__}: {exc}")
        changed = False
        for model in self.models():
            before = self.router.cached(model)
            try:
                self._feed_labels(model)
                result = self.engine.tick(model)
                self.router.refresh(model)
            except Exception as exc:  # noqa: BLE001 - a store hiccup: next pass retries
                errors.append(f"{model}: {type(exc).__name__}: {exc}")
                continue
            results.append(result)
            self.last_ticks[model] = {
                "action": result.action,
                "reason": result.reason,
                "rollout": None if result.rollout is None else result.rollout.id,
            }
            if result.action in _CHANGED:
                logger.info("%s: rollout %s: %s", model, result.action, result.reason)
            after = self.router.cached(model)
            changed |= result.action in _CHANGED or _key(before) != _key(after)
        self.last_error = "; ".join(errors) or None
        if errors:
            logger.warning("rollout loop: %s", self.last_error)
        if changed and self.on_change is not None:
            self.on_change()
        return results

    def _feed_labels(self, model: str) -> None:
        """Copy the active rollout's logged predictions to the store (for ``metric_drop``).

        Only while a rollout that judges the realised metric is active; from a watermark
        a little behind the last copy (log files land up to a few seconds late), and
        ids already in the store are skipped.
        """
        rollout = self.engine.store.active(model)
        if rollout is None or not (rollout.plan.get("rollback") or {}).get("metric_drop"):
            return
        now = self.ws.db.clock()
        last = self._copied_until.get(model)
        since = rollout.started_at
        if last is not None and last[0] == rollout.id:
            since = max(since, last[1] - timedelta(seconds=max(30.0, 5 * self.interval_s)))
        copied = copy_to_store(self.ws.db, self.log_root, model, since=since)
        self._copied_until[model] = (rollout.id, now)
        if copied:
            logger.debug("%s: copied %d logged predictions to the store", model, copied)


def _key(rollout: Any) -> tuple[Any, ...] | None:
    return None if rollout is None else (rollout.id, rollout.state, rollout.step)
