"""Shadow scoring off the request path: a bounded queue and one worker thread.

In a shadow rollout the champion answers and the candidate scores the same rows; the
response does not wait for the candidate. Jobs go into a bounded queue; when it is full
the job is dropped and counted (the candidate then has fewer shadow requests, which only
delays its step). ``close`` drains what is queued.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from retrainer.deploy.router import Route
from retrainer.service.pool import ServedModel
from retrainer.service.schema import ParsedInput

__all__ = ["ShadowJob", "ShadowScorer"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShadowJob:
    """The rows one request's champion answered, to be scored by ``served`` too."""

    served: ServedModel
    parsed: ParsedInput
    prediction_ids: list[str]
    route: Route
    predicted_at: datetime


class ShadowScorer:
    """Runs ``handle(job)`` for each submitted job in one background thread.

    Args:
        handle: Scores a job, records and logs it (exceptions are logged, never raised).
        max_queue: Jobs held before ``submit`` drops.
        on_drop: Called when a job is dropped because the queue is full.
    """

    def __init__(
        self,
        handle: Callable[[ShadowJob], None],
        *,
        max_queue: int = 1_000,
        on_drop: Callable[[ShadowJob], None] | None = None,
    ) -> None:
        self._handle = handle
        self._on_drop = on_drop
        self._queue: queue.Queue[ShadowJob | None] = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._run, name="shadow-scorer", daemon=True)
        self._started = False

    def start(self) -> None:
        """Start the worker (once)."""
        if not self._started:
            self._started = True
            self._thread.start()

    def submit(self, job: ShadowJob) -> bool:
        """Queue ``job`` without blocking; False (and ``on_drop``) when the queue is full."""
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            if self._on_drop is not None:
                self._on_drop(job)
            return False
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Score what is queued, then stop (idempotent)."""
        if self._started and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            try:
                self._handle(job)
            except Exception:
                served = job.served
                logger.exception("shadow scoring of %s v%s failed", served.name, served.version)
