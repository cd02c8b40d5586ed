"""Everything one running server owns, and what each endpoint does (routes stay thin).

:class:`ServiceState` holds the open workspace, the :class:`~.pool.ModelPool`, the
prediction log writer and the metrics. It is built by :func:`retrainer.service.create_app`
and lives on ``app.state.service``; there is no module-level state.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from retrainer.deploy.alerts import WebhookAlerter
from retrainer.deploy.predlog import LOG_DIR, PredictionLogWriter, PredictionRecord
from retrainer.deploy.router import Route
from retrainer.errors import ArtifactIntegrityError, ConflictError
from retrainer.monitor.predictions import InvalidRecordsError, add_labels
from retrainer.service.metrics import ServiceMetrics
from retrainer.service.pool import ModelPool, ServedModel, VersionSelector
from retrainer.service.rollouts import RolloutRuntime, quarantine
from retrainer.service.schema import InputProblem
from retrainer.service.scoring import ThreadLimit
from retrainer.service.shadow import ShadowJob, ShadowScorer
from retrainer.workspace import Workspace

__all__ = ["SHADOW_SUFFIX", "Reply", "ServiceConfig", "ServiceState"]

logger = logging.getLogger(__name__)

SHADOW_SUFFIX = ":shadow"  # a shadow-scored row is logged as "<champion's prediction id>:shadow"


@dataclass(frozen=True)
class ServiceConfig:
    """Server settings (the CLI's options; tests shrink the timings).

    Attributes:
        poll_seconds: How often the champion alias is checked.
        retry_seconds: How long a version that failed to load is left alone.
        max_body_bytes: Larger request bodies get 413 before they are read.
        log_queue: Prediction log rows held in memory before they are dropped.
        log_batch_rows: At most this many rows per Parquet file.
        log_flush_seconds: A partial batch is written after this long.
        log_dir: The log folder (default ``<workspace>/.retrainer/predictions``).
        require_auth: Require a token on every route but the probes even when the store
            holds no token yet (then only probes answer). Without it, auth is required
            once any token exists.
        rollouts: Route, record and drive shadow and canary rollouts (off when a custom
            version selector is given: it decides alone).
        rollout_seconds: How often rollout stats are flushed and the rollout is judged.
        shadow_queue: Shadow-scoring jobs held before they are dropped.
        model_threads: OpenMP threads per model call (None: the library's default, one
            per core); 1 suits a server answering many requests at once.
        inline_bytes: Predict requests up to this size are answered on the event loop
            (about a millisecond for a few rows); larger ones on the thread pool, so a
            big batch does not hold up other requests.
    """

    poll_seconds: float = 2.0
    retry_seconds: float = 30.0
    max_body_bytes: int = 1_048_576
    log_queue: int = 10_000
    log_batch_rows: int = 1_000
    log_flush_seconds: float = 1.0
    log_dir: Path | None = None
    require_auth: bool = False
    rollouts: bool = True
    rollout_seconds: float = 2.0
    shadow_queue: int = 1_000
    model_threads: int | None = 1
    inline_bytes: int = 65_536


@dataclass(frozen=True)
class Reply:
    """An endpoint's answer: HTTP status and JSON body."""

    status: int
    body: dict[str, Any]


def _problem(status: int, message: str, **extra: Any) -> Reply:
    return Reply(status, {"detail": {"message": message, **extra}})


class ServiceState:
    """The server's state: workspace, pool, log writer, metrics. Start once, close once."""

    def __init__(
        self, ws: Workspace, config: ServiceConfig, selector: VersionSelector | None = None
    ) -> None:
        self.ws = ws
        self.config = config
        self.metrics = ServiceMetrics()
        m = self.metrics
        log_root = config.log_dir or ws.root / LOG_DIR
        self.alerter = WebhookAlerter(ws.spec.deploy.alert, ws.secrets)
        self.rollouts: RolloutRuntime | None = None
        if selector is None and config.rollouts:
            self.rollouts = RolloutRuntime(
                ws,
                lambda: self.pool.names(),
                log_root=log_root,
                interval_s=config.rollout_seconds,
                on_change=lambda: self.pool.refresh(),
            )
        self.pool = ModelPool(
            ws,
            selector=selector or self.rollouts,
            poll_seconds=config.poll_seconds,
            retry_seconds=config.retry_seconds,
            on_swap=self._swapped,
            on_failure=self._load_failed,
        )
        self.log = PredictionLogWriter(
            log_root,
            max_queue=config.log_queue,
            batch_rows=config.log_batch_rows,
            flush_seconds=config.log_flush_seconds,
            on_drop=lambda reason, n: m.log_dropped.labels(reason).inc(n),
            on_write=m.log_written.inc,
        )
        self._threads = ThreadLimit(config.model_threads)
        self.shadow = ShadowScorer(
            self._score_shadow,
            max_queue=config.shadow_queue,
            on_drop=lambda job: m.shadow.labels(job.served.name, "dropped").inc(),
        )

    def _swapped(self, name: str, version: int) -> None:
        self.metrics.swaps.labels(name).inc()
        self.metrics.model_version.labels(name).set(version)

    def _load_failed(self, name: str, version: int, exc: BaseException) -> None:
        """Count; quarantine a corrupt artifact (audited, alerted); abort its rollout."""
        self.metrics.load_failures.labels(name).inc()
        if isinstance(exc, ArtifactIntegrityError):
            quarantine(self.ws, self.alerter, name, version, exc)
        if self.rollouts is not None:
            self.rollouts.load_failed(name, version, exc)

    def start(self) -> None:
        """Load the champions; start the log writer, the poller and the rollout loop."""
        self.log.start()
        self.shadow.start()
        if self.rollouts is not None:
            self.rollouts.start()
        self.pool.start()

    def close(self) -> None:
        """Stop polling and the rollout loop, flush the log and stats (idempotent)."""
        self.pool.stop()
        self.shadow.close()
        if self.rollouts is not None:
            self.rollouts.stop()
        self.log.close()
        self.ws.close()

    # -- health --------------------------------------------------------------------------

    def health(self) -> Reply:
        """``ok`` or ``degraded`` (with reasons); always 200 while the process runs."""
        problems = self.pool.problems()
        if self.rollouts is not None and self.rollouts.last_error:
            problems.append(f"rollout loop: {self.rollouts.last_error}")
        stats = self.log.stats
        if stats.dropped_total:
            problems.append(
                f"prediction log dropped {stats.dropped_total} rows "
                f"({', '.join(f'{k}={v}' for k, v in stats.dropped.items() if v)})"
                + (f"; last error: {stats.last_error}" if stats.last_error else "")
            )
        return Reply(
            200,
            {
                "status": "degraded" if problems else "ok",
                "problems": problems,
                "models": self.pool.health(),
                "rollouts": {} if self.rollouts is None else self.rollouts.last_ticks,
                "log": {
                    "written": stats.written,
                    "files": stats.files,
                    "queued": self.log.queued,
                    "dropped": dict(stats.dropped),
                    "last_error": stats.last_error,
                },
            },
        )

    def ready(self) -> Reply:
        """200 once every served model has a loaded version, else 503."""
        ok = self.pool.ready()
        return Reply(200 if ok else 503, {"ready": ok, "problems": self.pool.problems()})

    def models(self) -> Reply:
        """The served models and what each serves."""
        return Reply(200, {"models": self.pool.health()})

    def render_metrics(self) -> bytes:
        """The Prometheus exposition."""
        self.metrics.log_queue.set(self.log.queued)
        return self.metrics.render()

    # -- predict -------------------------------------------------------------------------

    def predict(self, name: str, body: bytes, request_key: str | None) -> Reply:
        """Validate, predict, log (without blocking) and answer with prediction ids."""
        start = time.perf_counter()
        m = self.metrics
        if name not in self.pool.names():
            m.errors.labels(name, "unknown_model").inc()
            return _problem(404, f"no served model {name!r}", served=self.pool.names())
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            m.errors.labels(name, "invalid_json").inc()
            m.requests.labels(name, "", "422").inc()
            return _problem(422, f"request body is not JSON: {exc}", field=None, row=None)
        served, shadow, route, fell_back = self._choose(name, payload, request_key)
        if served is None:
            m.errors.labels(name, "not_ready").inc()
            m.requests.labels(name, "", "503").inc()
            return _problem(503, f"{name}: no version loaded yet", problems=self.pool.problems())
        if fell_back:
            m.errors.labels(name, "selector_fallback").inc()
        version = str(served.version)
        try:
            parsed = served.schema.parse(payload)
        except InputProblem as exc:
            m.errors.labels(name, "invalid_input").inc()
            m.requests.labels(name, version, "422").inc()
            return Reply(422, {"detail": exc.to_dict()})
        for feature, count in parsed.unknown.items():
            m.unknown_categories.labels(name, feature).inc(count)
        try:
            with self._threads():
                results = served.score(parsed)
        except Exception as exc:  # answer, count and log; never crash
            logger.exception("%s v%s: predict failed", name, version)
            m.errors.labels(name, "predict_failed").inc()
            m.requests.labels(name, version, "500").inc()
            self._record(route, served, start, error=True)
            return _problem(500, f"prediction failed: {type(exc).__name__}")
        now = datetime.now(UTC)
        ids = _new_ids(len(results))
        self._log(served, parsed.rows, results, ids, now)
        m.requests.labels(name, version, "200").inc()
        m.latency.labels(name, version).observe(time.perf_counter() - start)
        self._record(route, served, start, results=results)
        if shadow is not None and route is not None:
            self.shadow.submit(ShadowJob(shadow, parsed, ids, route, now))
        return Reply(
            200,
            {
                "model": name,
                "version": served.version,
                "predictions": [
                    {"prediction_id": pid, **r} for pid, r in zip(ids, results, strict=True)
                ],
            },
        )

    def _choose(
        self, name: str, payload: Any, request_key: str | None
    ) -> tuple[ServedModel | None, ServedModel | None, Route | None, bool]:
        """(answering version, shadow version, route, fell back to the champion)."""
        if self.rollouts is None:
            served, fell_back = self.pool.get(name, request_key or uuid.uuid4().hex)
            return served, None, None, fell_back
        champion = self.pool.champion(name)
        if champion is None:
            return None, None, None, False
        route = self.rollouts.route(name, payload, request_key)
        if route is None:
            return champion, None, None, True
        served, fell_back = champion, False
        if route.role == "canary":
            loaded = self.pool.loaded(name, route.version)
            served, fell_back = (loaded, False) if loaded is not None else (champion, True)
        shadow = None
        if route.shadow is not None and route.shadow != served.version:
            shadow = self.pool.loaded(name, route.shadow)
            if shadow is None:
                self.metrics.shadow.labels(name, "not_loaded").inc()
        return served, shadow, route, fell_back

    def _record(
        self,
        route: Route | None,
        served: ServedModel,
        start: float,
        *,
        error: bool = False,
        results: list[dict[str, Any]] | None = None,
    ) -> None:
        if self.rollouts is not None and route is not None:
            self.rollouts.record(
                route,
                served.version,
                latency_ms=(time.perf_counter() - start) * 1000.0,
                error=error,
                predictions=[_traffic_value(r) for r in results or ()],
            )

    def _log(
        self,
        served: ServedModel,
        rows: list[dict[str, Any]],
        results: list[dict[str, Any]],
        ids: list[str],
        now: datetime,
    ) -> None:
        """Count the predictions and queue them for the log (never blocks)."""
        m, name, version = self.metrics, served.name, str(served.version)
        records = []
        labels: dict[str, int] = {}
        scores = m.score.labels(name, version)
        for row, result, pid in zip(rows, results, ids, strict=True):
            label, score = result.get("label"), result.get("score")
            records.append(
                PredictionRecord(
                    model=name,
                    version=served.version,
                    prediction_id=pid,
                    predicted_at=now,
                    features=row,
                    label=label,
                    score=score,
                    probabilities=result.get("probabilities"),
                )
            )
            labels[label or ""] = labels.get(label or "", 0) + 1
            if score is not None:
                scores.observe(score)
        for label, n in labels.items():
            m.predictions.labels(name, version, label).inc(n)
        self.log.submit(records)  # a full queue drops and counts

    def _score_shadow(self, job: ShadowJob) -> None:
        """The shadow worker: score, record (answer discarded), log as ``<id>:shadow``."""
        start = time.perf_counter()
        name = job.served.name
        try:
            with self._threads():
                results = job.served.score(job.parsed)
        except Exception:
            logger.exception("%s v%s: shadow predict failed", name, job.served.version)
            self.metrics.shadow.labels(name, "failed").inc()
            self._record(job.route, job.served, start, error=True)
            return
        self.metrics.shadow.labels(name, "scored").inc()
        self._record(job.route, job.served, start, results=results)
        ids = [f"{pid}{SHADOW_SUFFIX}" for pid in job.prediction_ids]
        self._log(job.served, job.parsed.rows, results, ids, job.predicted_at)

    # -- feedback ------------------------------------------------------------------------

    def feedback(self, name: str, body: bytes) -> Reply:
        """Store true labels by prediction id (``add_labels``; 409 on a changed label)."""
        if name not in self.pool.names():
            self.metrics.errors.labels(name, "unknown_model").inc()
            return _problem(404, f"no served model {name!r}", served=self.pool.names())
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            return _problem(422, f"request body is not JSON: {exc}", field=None)
        if not isinstance(payload, dict) or not isinstance(payload.get("labels"), list):
            return _problem(
                422,
                'expected {"labels": [{"prediction_id": ..., "label": ...}], "replace": false}',
                field="labels",
            )
        replace = payload.get("replace", False)
        if not isinstance(replace, bool):
            return _problem(
                422, f'"replace": expected true or false, got {replace!r}', field="replace"
            )
        labels = payload["labels"]
        if not all(isinstance(item, dict) for item in labels):
            return _problem(422, '"labels": expected a list of objects', field="labels")
        try:
            report = add_labels(self.ws.db, name, labels, replace=replace, actor="serve")
        except InvalidRecordsError as exc:
            return _problem(422, str(exc), field="labels")
        except ConflictError as exc:
            return _problem(409, str(exc))
        return Reply(200, report.to_dict())


def _new_ids(n: int) -> list[str]:
    """``n`` random 128-bit prediction ids as 32 hex digits (one read of the OS's random)."""
    raw = os.urandom(16 * n).hex()
    return [raw[32 * i : 32 * i + 32] for i in range(n)]


def _traffic_value(result: dict[str, Any]) -> float | str | None:
    """What the rollout's prediction-drift guardrail compares: score, else the class."""
    score = result.get("score")
    return score if score is not None else result.get("label")
