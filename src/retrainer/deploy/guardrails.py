"""Traffic statistics of a rollout and the guardrails judged on them (pure functions).

:class:`TrafficStats` is what a version served during one step: requests, errors, a
sparse latency histogram good for a p99 within 5 % (log buckets of ratio 1.1 from
0.01 ms), and a sparse histogram of its predictions. Stats add up (``a + b``), so the
server can accumulate them in memory and flush them to the store in batches.

:func:`evaluate_guardrails` compares a candidate's stats with the thresholds of the
spec's ``deploy.rollback`` section and, for drift and the realised metric, with the
champion. Each guardrail gives a :class:`Verdict`: ``pass``, ``trip`` (roll back) or
``wait`` (too few requests or labels to judge yet); reasons name the numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from retrainer.spec import GuardrailSpec

__all__ = [
    "RealisedMetric",
    "TrafficStats",
    "Verdict",
    "evaluate_guardrails",
    "latency_bucket",
    "prediction_bucket",
    "psi",
    "tripped",
]

_LAT_BASE_MS = 0.01
_LAT_RATIO = 1.1
_PRED_BINS = 20
_PSI_EPS = 1e-4


def latency_bucket(ms: float) -> str:
    """The histogram bucket of a latency: ``k`` covers ``(0.01*1.1**(k-1), 0.01*1.1**k]`` ms."""
    if not ms > _LAT_BASE_MS:  # also NaN
        return "0"
    return str(math.ceil(math.log(ms / _LAT_BASE_MS, _LAT_RATIO) - 1e-9))


def _bucket_upper_ms(key: str) -> float:
    return _LAT_BASE_MS * _LAT_RATIO ** int(key)


def prediction_bucket(prediction: float | int | str | bool | None) -> str:
    """The histogram bucket of one prediction, comparable across versions.

    Numbers in [0, 1] (probabilities) fall in 20 equal bins ``p0``..``p19``; other
    numbers in signed log buckets (``+k``/``-k``, ratio 1.25); text and booleans are
    their own category (``c:VALUE``); None and NaN are ``none``.
    """
    if prediction is None:
        return "none"
    if isinstance(prediction, bool | str):
        return f"c:{prediction}"
    value = float(prediction)
    if math.isnan(value):
        return "none"
    if 0.0 <= value <= 1.0:
        return f"p{min(int(value * _PRED_BINS), _PRED_BINS - 1)}"
    sign = "+" if value > 0 else "-"
    return f"{sign}{math.floor(math.log(abs(value), 1.25))}" if value else "p0"


def _merge(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    out = dict(a)
    for k, n in b.items():
        out[k] = out.get(k, 0) + int(n)
    return out


@dataclass(frozen=True)
class TrafficStats:
    """What one version served: counts and sparse histograms (bucket key -> count)."""

    requests: int = 0
    errors: int = 0
    latency: Mapping[str, int] = field(default_factory=dict)
    predictions: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def one(
        cls,
        *,
        latency_ms: float,
        error: bool = False,
        prediction: float | int | str | bool | None = None,
        predictions: Sequence[float | int | str | bool | None] = (),
    ) -> TrafficStats:
        """The stats of a single request (an error has no prediction).

        Its prediction histogram holds ``predictions`` (one per row) when given, else
        ``prediction``.
        """
        preds: dict[str, int] = {}
        if not error:
            for value in predictions or (prediction,):
                bucket = prediction_bucket(value)
                preds[bucket] = preds.get(bucket, 0) + 1
        return cls(1, int(error), {latency_bucket(latency_ms): 1}, preds)

    def __add__(self, other: TrafficStats) -> TrafficStats:
        return TrafficStats(
            self.requests + other.requests,
            self.errors + other.errors,
            _merge(self.latency, other.latency),
            _merge(self.predictions, other.predictions),
        )

    @property
    def error_rate(self) -> float:
        """errors / requests (NaN with no requests)."""
        return self.errors / self.requests if self.requests else math.nan

    def latency_quantile(self, q: float) -> float:
        """The upper edge (ms) of the bucket holding quantile ``q`` (NaN when empty)."""
        total = sum(self.latency.values())
        if not total:
            return math.nan
        rank = max(1, math.ceil(q * total))
        seen = 0
        for key in sorted(self.latency, key=int):
            seen += self.latency[key]
            if seen >= rank:
                return _bucket_upper_ms(key)
        return _bucket_upper_ms(max(self.latency, key=int))  # pragma: no cover

    @property
    def p99_ms(self) -> float:
        """The 99th latency percentile, in ms, within one bucket (10 %) above the truth."""
        return self.latency_quantile(0.99)

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": None if math.isnan(self.error_rate) else round(self.error_rate, 6),
            "p99_ms": None if math.isnan(self.p99_ms) else round(self.p99_ms, 3),
        }


def psi(actual: Mapping[str, int], expected: Mapping[str, int]) -> float:
    """Population stability index of two histograms over the union of their buckets.

    Empty buckets count as a share of 1e-4, so the value is finite. NaN if either is empty.
    """
    n_a, n_e = sum(actual.values()), sum(expected.values())
    if not n_a or not n_e:
        return math.nan
    total = 0.0
    for key in set(actual) | set(expected):
        a = max(actual.get(key, 0) / n_a, _PSI_EPS)
        e = max(expected.get(key, 0) / n_e, _PSI_EPS)
        total += (a - e) * math.log(a / e)
    return total


@dataclass(frozen=True)
class RealisedMetric:
    """A version's metric on its labelled predictions during the rollout."""

    value: float
    labelled: int


@dataclass(frozen=True)
class Verdict:
    """One guardrail's judgement: ``status`` pass | trip | wait, the value and why."""

    name: str
    status: Literal["pass", "trip", "wait", "off"]
    value: float | None
    threshold: float | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "value": self.value,
            "threshold": self.threshold,
            "reason": self.reason,
        }


def tripped(verdicts: list[Verdict]) -> list[Verdict]:
    """The verdicts that call for a rollback."""
    return [v for v in verdicts if v.status == "trip"]


def _r(x: float) -> float:
    return round(x, 6)


def evaluate_guardrails(
    spec: GuardrailSpec,
    candidate: TrafficStats,
    champion: TrafficStats,
    *,
    realised: tuple[RealisedMetric | None, RealisedMetric | None] = (None, None),
    metric: str = "metric",
    higher_is_better: bool = True,
) -> list[Verdict]:
    """Judge the candidate's stats; ``realised`` is (candidate, champion) on labels.

    Error rate, p99 and drift wait until the candidate served ``spec.min_samples``
    requests (drift also needs as many champion predictions); the metric waits until
    both versions have ``spec.min_labels`` labelled predictions.
    """
    n = candidate.requests
    enough = n >= spec.min_samples
    short = f"{n} of {spec.min_samples} requests so far"
    out: list[Verdict] = []

    if spec.error_rate is None:
        out.append(Verdict("error_rate", "off", None, None, "not configured"))
    elif not enough:
        out.append(Verdict("error_rate", "wait", None, spec.error_rate, short))
    else:
        rate = candidate.error_rate
        bad = rate > spec.error_rate
        text = (
            f"error rate {rate:.4f} ({candidate.errors}/{n}) "
            f"{'above' if bad else 'within'} {spec.error_rate}"
        )
        out.append(
            Verdict("error_rate", "trip" if bad else "pass", _r(rate), spec.error_rate, text)
        )

    if spec.latency_p99_ms is None:
        out.append(Verdict("latency_p99_ms", "off", None, None, "not configured"))
    elif not enough:
        out.append(Verdict("latency_p99_ms", "wait", None, spec.latency_p99_ms, short))
    else:
        p99 = candidate.p99_ms
        bad = p99 > spec.latency_p99_ms
        text = f"latency p99 {p99:.1f} ms {'above' if bad else 'within'} {spec.latency_p99_ms} ms"
        out.append(
            Verdict("latency_p99_ms", "trip" if bad else "pass", _r(p99), spec.latency_p99_ms, text)
        )

    out.append(_drift(spec, candidate, champion, enough, short))
    out.append(_metric(spec, realised, metric, higher_is_better))
    return out


def _drift(
    spec: GuardrailSpec, candidate: TrafficStats, champion: TrafficStats, enough: bool, short: str
) -> Verdict:
    limit = spec.prediction_drift
    if limit is None:
        return Verdict("prediction_drift", "off", None, None, "not configured")
    n_champ = sum(champion.predictions.values())
    if not enough or n_champ < spec.min_samples:
        why = short if not enough else f"{n_champ} of {spec.min_samples} champion predictions"
        return Verdict("prediction_drift", "wait", None, limit, why)
    value = psi(candidate.predictions, champion.predictions)
    bad = value > limit
    text = f"prediction PSI vs the champion {value:.3f} {'above' if bad else 'within'} {limit}"
    return Verdict("prediction_drift", "trip" if bad else "pass", _r(value), limit, text)


def _metric(
    spec: GuardrailSpec,
    realised: tuple[RealisedMetric | None, RealisedMetric | None],
    metric: str,
    higher_is_better: bool,
) -> Verdict:
    limit = spec.metric_drop
    if limit is None:
        return Verdict("metric_drop", "off", None, None, "not configured")
    cand, champ = realised
    have = [0 if r is None else r.labelled for r in realised]
    if cand is None or champ is None or min(have) < spec.min_labels:
        return Verdict(
            "metric_drop",
            "wait",
            None,
            limit,
            f"labels so far: candidate {have[0]}, champion {have[1]} "
            f"(each needs {spec.min_labels})",
        )
    drop = champ.value - cand.value if higher_is_better else cand.value - champ.value
    bad = drop > limit
    text = (
        f"realised {metric} {cand.value:.4f} vs champion {champ.value:.4f} "
        f"(drop {drop:.4f} {'above' if bad else 'within'} {limit}; "
        f"labels: candidate {cand.labelled}, champion {champ.labelled})"
    )
    return Verdict("metric_drop", "trip" if bad else "pass", _r(drop), limit, text)
