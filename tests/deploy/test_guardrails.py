"""Guardrails as pure functions: stats add up, p99 within a bucket, PSI, verdicts with numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from retrainer.deploy.guardrails import (
    RealisedMetric,
    TrafficStats,
    evaluate_guardrails,
    latency_bucket,
    prediction_bucket,
    psi,
    tripped,
)
from retrainer.spec import GuardrailSpec


def stats(
    latencies: list[float], errors: int = 0, predictions: list[float] | None = None
) -> TrafficStats:
    total = TrafficStats()
    preds = predictions if predictions is not None else [0.5] * len(latencies)
    for i, ms in enumerate(latencies):
        total += TrafficStats.one(latency_ms=ms, error=i < errors, prediction=preds[i])
    return total


def test_stats_add_up_and_p99_is_within_one_bucket_above_the_truth() -> None:
    rng = np.random.default_rng(0)
    lat = rng.lognormal(mean=2.0, sigma=0.6, size=5000).tolist()
    s = stats(lat[:2500]) + stats(lat[2500:])
    assert (s.requests, s.errors) == (5000, 0)
    truth = float(np.quantile(lat, 0.99, method="inverted_cdf"))
    assert truth <= s.p99_ms <= truth * 1.1 + 1e-9


def test_latency_buckets_are_monotonic_and_tiny_values_go_to_zero() -> None:
    keys = [int(latency_bucket(ms)) for ms in (0.0, 0.01, 0.02, 1.0, 10.0, 1000.0)]
    assert keys == sorted(keys) and keys[0] == 0
    assert latency_bucket(float("nan")) == "0"


def test_prediction_buckets_for_probabilities_values_and_classes() -> None:
    assert prediction_bucket(0.0) == "p0" and prediction_bucket(1.0) == "p19"
    assert prediction_bucket("yes") == "c:yes" and prediction_bucket(True) == "c:True"
    assert prediction_bucket(None) == prediction_bucket(float("nan")) == "none"
    assert prediction_bucket(-30.0).startswith("-") and prediction_bucket(30.0).startswith("+")


def test_psi_is_zero_for_equal_shares_and_large_for_disjoint_ones() -> None:
    assert psi({"a": 10, "b": 30}, {"a": 1, "b": 3}) == pytest.approx(0.0)
    assert psi({"a": 100}, {"b": 100}) > 5
    assert math.isnan(psi({}, {"a": 1}))


GUARD = GuardrailSpec(
    error_rate=0.02,
    latency_p99_ms=50.0,
    prediction_drift=0.2,
    metric_drop=0.03,
    min_samples=100,
    min_labels=50,
)


def by_name(verdicts: list) -> dict:  # type: ignore[type-arg]
    return {v.name: v for v in verdicts}


def test_a_healthy_candidate_passes_every_guardrail() -> None:
    cand, champ = stats([10.0] * 500), stats([10.0] * 500)
    realised = (RealisedMetric(0.80, 60), RealisedMetric(0.81, 60))
    v = by_name(evaluate_guardrails(GUARD, cand, champ, realised=realised, metric="roc_auc"))
    assert {k: x.status for k, x in v.items()} == dict.fromkeys(v, "pass")
    assert not tripped(list(v.values()))


def test_error_rate_trips_with_the_numbers_in_the_reason() -> None:
    v = by_name(evaluate_guardrails(GUARD, stats([10.0] * 200, errors=10), stats([10.0] * 200)))
    assert v["error_rate"].status == "trip"
    assert v["error_rate"].reason == "error rate 0.0500 (10/200) above 0.02"


def test_latency_p99_trips_and_names_the_threshold() -> None:
    v = by_name(evaluate_guardrails(GUARD, stats([10.0] * 190 + [300.0] * 10), stats([10.0] * 200)))
    assert v["latency_p99_ms"].status == "trip"
    assert "above 50.0 ms" in v["latency_p99_ms"].reason
    assert v["latency_p99_ms"].value is not None and v["latency_p99_ms"].value >= 300.0


def test_prediction_drift_trips_against_the_champion() -> None:
    cand = stats([5.0] * 200, predictions=[0.9] * 200)
    champ = stats([5.0] * 200, predictions=[0.1] * 200)
    v = by_name(evaluate_guardrails(GUARD, cand, champ))
    assert v["prediction_drift"].status == "trip"
    assert v["prediction_drift"].reason.startswith("prediction PSI vs the champion ")
    assert "above 0.2" in v["prediction_drift"].reason


def test_metric_drop_trips_once_both_have_enough_labels() -> None:
    cand, champ = stats([5.0] * 200), stats([5.0] * 200)
    few = (RealisedMetric(0.5, 10), RealisedMetric(0.9, 500))
    assert (
        by_name(evaluate_guardrails(GUARD, cand, champ, realised=few))["metric_drop"].status
        == "wait"
    )
    worse = (RealisedMetric(0.70, 80), RealisedMetric(0.80, 90))
    v = by_name(evaluate_guardrails(GUARD, cand, champ, realised=worse, metric="roc_auc"))[
        "metric_drop"
    ]
    assert v.status == "trip"
    assert v.reason == (
        "realised roc_auc 0.7000 vs champion 0.8000 "
        "(drop 0.1000 above 0.03; labels: candidate 80, champion 90)"
    )


def test_lower_is_better_metrics_drop_the_other_way() -> None:
    cand, champ = stats([5.0] * 200), stats([5.0] * 200)
    worse = (RealisedMetric(2.0, 80), RealisedMetric(1.0, 80))
    v = evaluate_guardrails(
        GUARD, cand, champ, realised=worse, metric="rmse", higher_is_better=False
    )
    assert by_name(v)["metric_drop"].status == "trip"


def test_too_few_requests_wait_and_unset_guardrails_are_off() -> None:
    spec = GuardrailSpec(error_rate=0.02, latency_p99_ms=None, prediction_drift=None)
    v = by_name(evaluate_guardrails(spec, stats([5.0] * 10, errors=10), TrafficStats()))
    assert (
        v["error_rate"].status == "wait" and v["error_rate"].reason == "10 of 100 requests so far"
    )
    assert v["latency_p99_ms"].status == v["prediction_drift"].status == "off"
