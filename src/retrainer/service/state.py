"""Everything one running server owns, and what each endpoint does (routes stay thin).

:class:`ServiceState` holds the open workspace, the :class:`~.pool.ModelPool`, the
prediction log writer and the metrics. It is built by :func:`retrainer.service.create_app`
and lives on ``app.state.service``; there is no module-level state.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from retrainer.deploy.predlog import LOG_DIR, PredictionLogWriter, PredictionRecord
from retrainer.errors import ConflictError
from retrainer.monitor.predictions import InvalidRecordsError, add_labels, label_text
from retrainer.service.metrics import ServiceMetrics
from retrainer.service.pool import ModelPool, ServedModel, VersionSelector
from retrainer.service.schema import InputProblem
from retrainer.workspace import Workspace

__all__ = ["Reply", "ServiceConfig", "ServiceState"]

logger = logging.getLogger(__name__)


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
        token: When set, ``/v1/*`` requires ``Authorization: Bearer <token>``.
    """

    poll_seconds: float = 2.0
    retry_seconds: float = 30.0
    max_body_bytes: int = 1_048_576
    log_queue: int = 10_000
    log_batch_rows: int = 1_000
    log_flush_seconds: float = 1.0
    log_dir: Path | None = None
    token: str | None = None


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
        self.pool = ModelPool(
            ws,
            selector=selector,
            poll_seconds=config.poll_seconds,
            retry_seconds=config.retry_seconds,
            on_swap=self._swapped,
            on_failure=self._load_failed,
        )
        self.log = PredictionLogWriter(
            config.log_dir or ws.root / LOG_DIR,
            max_queue=config.log_queue,
            batch_rows=config.log_batch_rows,
            flush_seconds=config.log_flush_seconds,
            on_drop=lambda reason, n: m.log_dropped.labels(reason).inc(n),
            on_write=m.log_written.inc,
        )

    def _swapped(self, name: str, version: int) -> None:
        self.metrics.swaps.labels(name).inc()
        self.metrics.model_version.labels(name).set(version)

    def _load_failed(self, name: str, version: int, reason: str) -> None:
        self.metrics.load_failures.labels(name).inc()

    def start(self) -> None:
        """Load the champions, start the poller and the log writer."""
        self.log.start()
        self.pool.start()

    def close(self) -> None:
        """Stop polling, flush the log, release the store (idempotent)."""
        self.pool.stop()
        self.log.close()
        self.ws.close()

    # -- health --------------------------------------------------------------------------

    def health(self) -> Reply:
        """``ok`` or ``degraded`` (with reasons); always 200 while the process runs."""
        problems = self.pool.problems()
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
        ids_key = request_key or uuid.uuid4().hex
        served, fell_back = self.pool.get(name, ids_key)
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
            results = _predict(served, parsed.frame)
        except Exception as exc:  # answer, count and log; never crash
            logger.exception("%s v%s: predict failed", name, version)
            m.errors.labels(name, "predict_failed").inc()
            m.requests.labels(name, version, "500").inc()
            return _problem(500, f"prediction failed: {type(exc).__name__}")
        now = datetime.now(UTC)
        records = []
        for row, result in zip(parsed.rows, results, strict=True):
            result["prediction_id"] = uuid.uuid4().hex
            records.append(
                PredictionRecord(
                    model=name,
                    version=served.version,
                    prediction_id=result["prediction_id"],
                    predicted_at=now,
                    features=row,
                    label=result.get("label"),
                    score=result.get("score"),
                    probabilities=result.get("probabilities"),
                )
            )
            m.predictions.labels(name, version, result.get("label") or "").inc()
            if result.get("score") is not None:
                m.score.labels(name, version).observe(result["score"])
        self.log.submit(records)  # never blocks: a full queue drops and counts
        m.requests.labels(name, version, "200").inc()
        m.latency.labels(name, version).observe(time.perf_counter() - start)
        return Reply(
            200,
            {
                "model": name,
                "version": served.version,
                "predictions": [{"prediction_id": r.pop("prediction_id"), **r} for r in results],
            },
        )

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


def _predict(served: ServedModel, frame: Any) -> list[dict[str, Any]]:
    """One result per row: ``label`` + ``probabilities`` (+ ``score`` when binary), or ``score``."""
    if served.task == "classification":
        proba = np.asarray(served.estimator.predict_proba(frame), dtype=float)
        names = [label_text(c) for c in served.classes]
        best = proba.argmax(axis=1)
        out = []
        for i in range(len(frame)):
            result: dict[str, Any] = {
                "label": names[best[i]],
                "probabilities": {n: float(p) for n, p in zip(names, proba[i], strict=True)},
            }
            if len(names) == 2:
                result["score"] = float(proba[i, 1])
            out.append(result)
        return out
    values = np.asarray(served.estimator.predict(frame), dtype=float).reshape(-1)
    return [{"score": float(v)} for v in values]
