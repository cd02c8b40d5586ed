"""The server's Prometheus metrics, in a registry owned by one app (never the global one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "ServiceMetrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServiceMetrics:
    """Every metric the server exposes at ``GET /metrics``.

    Names (all prefixed ``retrainer_serve_``): ``requests_total{model,version,status}``,
    ``request_seconds{model,version}`` (histogram), ``errors_total{model,kind}``,
    ``predictions_total{model,version,label}`` (classifiers: the predicted class),
    ``prediction_score{model,version}`` (histogram of regression outputs and of the
    positive-class probability of binary classifiers),
    ``unknown_categories_total{model,feature}``, ``model_version{model}``,
    ``model_swaps_total{model}``, ``model_load_failures_total{model}``,
    ``shadow_total{model,outcome}``, ``log_written_total``, ``log_dropped_total{reason}``,
    ``log_queue_rows``.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        p = "retrainer_serve_"
        self.requests = Counter(
            p + "requests_total",
            "Prediction requests by model, served version and HTTP status.",
            ["model", "version", "status"],
            registry=r,
        )
        self.latency = Histogram(
            p + "request_seconds",
            "Prediction request latency (parse, validate, predict).",
            ["model", "version"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            p + "errors_total",
            "Refused or failed requests by kind (invalid_json, invalid_input, unknown_model, "
            "not_ready, too_large, predict_failed, unauthorized).",
            ["model", "kind"],
            registry=r,
        )
        self.predictions = Counter(
            p + "predictions_total",
            "Predicted rows by model, version and predicted class ('' for regression).",
            ["model", "version", "label"],
            registry=r,
        )
        self.score = Histogram(
            p + "prediction_score",
            "Regression outputs, or the positive-class probability of binary classifiers.",
            ["model", "version"],
            buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 10, 100, 1000),
            registry=r,
        )
        self.unknown_categories = Counter(
            p + "unknown_categories_total",
            "Categorical values not seen in training (accepted: one-hot encoded as all zeros).",
            ["model", "feature"],
            registry=r,
        )
        self.model_version = Gauge(
            p + "model_version", "The version each model serves by default.", ["model"], registry=r
        )
        self.swaps = Counter(
            p + "model_swaps_total", "Versions swapped in after loading.", ["model"], registry=r
        )
        self.load_failures = Counter(
            p + "model_load_failures_total",
            "Versions that failed to load (never swapped in).",
            ["model"],
            registry=r,
        )
        self.shadow = Counter(
            p + "shadow_total",
            "Shadow-scoring jobs by outcome (scored, failed, dropped, not_loaded).",
            ["model", "outcome"],
            registry=r,
        )
        self.log_written = Counter(
            p + "log_written_total", "Prediction log rows written to Parquet.", registry=r
        )
        self.log_dropped = Counter(
            p + "log_dropped_total",
            "Prediction log rows dropped (queue_full, write_error); predictions still succeeded.",
            ["reason"],
            registry=r,
        )
        self.log_queue = Gauge(
            p + "log_queue_rows", "Prediction log rows waiting to be written.", registry=r
        )

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
