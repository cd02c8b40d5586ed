"""Label-free performance estimation: confidence-based performance estimation (CBPE).

A binary classifier's calibrated probability ``p`` of the positive class says how often
its prediction is right: a row predicted positive is a true positive with probability
``p`` and a false positive with ``1 - p``. Summing these over the rows of a sample gives
the *expected* confusion matrix, and from it the expected accuracy, precision, recall,
F1 and balanced accuracy, without a single label (the approach NannyML calls CBPE).
ROC AUC is estimated from the expected ROC curve: at each threshold on the model's score,
the expected true and false positive rates are the sums of ``p`` and ``1 - p`` above it,
divided by the expected positives and negatives; the area under that curve (trapezoids)
is the estimate. The thresholds are the model's *raw* scores, so ties that calibration
introduces (isotonic regression is a step function) do not blur the ranking.

Calibration: :meth:`CBPE.fit` always fits an isotonic regression of the labels on the
model's probabilities of a labelled reference (the champion's holdout, never its
training rows, which would be over-confident), with at least
:data:`MIN_REFERENCE_ROWS` rows and :data:`MIN_CLASS_ROWS` of each class. Isotonic
regression costs little when the model is already calibrated and repairs it when not.

Sampling error: the band of an :class:`Estimate` is where the *realised* metric of the
current sample is expected to fall, if labels were drawn from the calibrated
probabilities (labels are simulated, ``samples`` times): value +- z * standard deviation
of the simulated metric, clipped to [0, 1].

What CBPE assumes, so what it cannot see: that ``P(y | x)`` is the same now as on the
reference (only ``P(x)`` may change: covariate shift), and that current rows lie where
the reference had rows. Under concept shift (the relation between features and label
changes) the probabilities are wrong and so is the estimate, typically still close to the
reference value while the realised metric falls; the band does not cover that error.
Only labels (:func:`retrainer.monitor.realised.realised_performance`) reveal it.

The fitted estimator serialises to JSON (:meth:`CBPE.to_bytes`), never pickle, so it can
be stored as an artifact next to the model.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from scipy import stats
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import precision_score, recall_score

from retrainer.evaluate.metrics import score

__all__ = [
    "CBPE",
    "CBPE_METRICS",
    "MIN_CLASS_ROWS",
    "MIN_REFERENCE_ROWS",
    "Estimate",
]

CBPE_METRICS: Final = ("accuracy", "balanced_accuracy", "f1", "precision", "recall", "roc_auc")
"""The metrics CBPE estimates (binary classification)."""
MIN_REFERENCE_ROWS: Final = 200
"""Fewest labelled reference rows :meth:`CBPE.fit` accepts."""
MIN_CLASS_ROWS: Final = 20
"""Fewest reference rows of each class :meth:`CBPE.fit` accepts."""

_FORMAT = "retrainer.cbpe"
_FORMAT_VERSION = 1
_BLOCK = 2_000_000  # simulated labels held in memory at once

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class Estimate:
    """An estimated metric and its sampling-error band.

    Attributes:
        metric: The metric's name.
        value: The expected metric; None when undefined (no rows; precision with no
            predicted positives; ROC AUC when one class is not expected at all).
        lower: Lower end of the band (None when ``value`` is).
        upper: Upper end of the band (None when ``value`` is).
        sampling_error: Standard deviation of the realised metric expected from sampling
            alone (None when ``value`` is).
        rows: Rows the estimate is based on.
        confidence: The band's nominal coverage.
    """

    metric: str
    value: float | None
    lower: float | None
    upper: float | None
    sampling_error: float | None
    rows: int
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return dict(self.__dict__)


def _confusion_metric(metric: str, tp: Array, fp: Array, fn: Array, tn: Array) -> Array:
    """``metric`` from (expected or simulated) confusion-matrix counts; NaN if undefined."""
    with np.errstate(divide="ignore", invalid="ignore"):
        n = tp + fp + fn + tn
        if metric == "accuracy":
            out = (tp + tn) / n
        elif metric == "precision":
            out = tp / (tp + fp)
        elif metric == "recall":
            out = tp / (tp + fn)
        elif metric == "f1":
            out = 2 * tp / (2 * tp + fp + fn)
        elif metric == "balanced_accuracy":
            out = (tp / (tp + fn) + tn / (tn + fp)) / 2
        else:  # pragma: no cover - guarded by CBPE.fit
            raise ValueError(f"not a confusion-matrix metric: {metric!r}")
    return np.asarray(out, dtype=float)


def _expected_roc_auc(raw: Array, p: Array) -> float:
    """Area under the expected ROC curve: thresholds at the raw scores, rates from ``p``."""
    positives, negatives = float(p.sum()), float((1 - p).sum())
    if positives <= 0 or negatives <= 0:
        return math.nan
    order = np.argsort(-raw, kind="mergesort")
    s, q = raw[order], p[order]
    ends = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]  # last row of each tie group
    tpr = np.r_[0.0, np.cumsum(q)[ends] / positives]
    fpr = np.r_[0.0, np.cumsum(1 - q)[ends] / negatives]
    return float(np.trapezoid(tpr, fpr))


def _check_proba(proba: Any, name: str, *, allow_empty: bool) -> Array:
    arr = np.asarray(proba, dtype=float)
    if arr.ndim == 2 and arr.shape[1] == 2:
        arr = arr[:, 1]
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be the positive-class probabilities (1-D, or n x 2 from "
            f"predict_proba); got an array of shape {arr.shape}"
        )
    if not allow_empty and arr.size == 0:
        raise ValueError(f"{name} is empty")
    bad = ~np.isfinite(arr) | (arr < 0) | (arr > 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name} must hold probabilities in [0, 1]; row {i} is {float(arr[i])!r} "
            f"({int(bad.sum())} such rows)"
        )
    return arr


class CBPE:
    """A fitted confidence-based performance estimator for one metric of a binary classifier.

    Build with :meth:`fit` (or :meth:`from_bytes`), then call :meth:`estimate` on the
    model's probabilities for unlabelled rows. Instances are immutable.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> p = rng.uniform(size=2000)
        >>> y = (rng.uniform(size=2000) < p).astype(int)
        >>> cbpe = CBPE.fit(y, p, "accuracy")
        >>> round(cbpe.estimate(p).value, 2)
        0.75
    """

    def __init__(
        self,
        *,
        metric: str,
        threshold: float,
        calibration_x: Array,
        calibration_y: Array,
        reference_rows: int,
        reference_value: float | None,
        positive: Any = 1,
        confidence: float = 0.95,
        samples: int = 200,
    ) -> None:
        if metric not in CBPE_METRICS:
            raise ValueError(
                f"CBPE estimates one of {', '.join(CBPE_METRICS)}; got {metric!r} instead"
            )
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1); got {threshold!r} instead")
        if not 0.0 < confidence < 1.0:
            raise ValueError(f"confidence must be in (0, 1); got {confidence!r} instead")
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
            raise ValueError(f"samples must be an integer >= 2; got {samples!r} instead")
        x = np.asarray(calibration_x, dtype=float)
        y = np.asarray(calibration_y, dtype=float)
        if x.ndim != 1 or x.shape != y.shape or x.size < 1:
            raise ValueError("calibration_x and calibration_y must be 1-D of the same length")
        if not (np.all(np.isfinite(x)) and np.all(np.diff(x) >= 0)):
            raise ValueError("calibration_x must be finite and non-decreasing")
        if not (np.all(np.isfinite(y)) and np.all((y >= 0) & (y <= 1))):
            raise ValueError("calibration_y must hold probabilities in [0, 1]")
        self.metric = metric
        self.threshold = float(threshold)
        self.calibration_x = x
        self.calibration_y = y
        self.reference_rows = int(reference_rows)
        self.reference_value = reference_value
        self.positive = positive
        self.confidence = float(confidence)
        self.samples = samples

    def __repr__(self) -> str:
        return (
            f"CBPE(metric={self.metric!r}, threshold={self.threshold}, "
            f"reference_rows={self.reference_rows}, reference_value={self.reference_value!r})"
        )

    # -- fitting -----------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        y_true_reference: Any,
        proba_reference: Any,
        metric: str,
        *,
        threshold: float = 0.5,
        positive: Any = None,
        confidence: float = 0.95,
        samples: int = 200,
    ) -> CBPE:
        """Calibrate on a labelled reference (the champion's holdout) for ``metric``.

        Args:
            y_true_reference: The reference labels (two classes).
            proba_reference: The model's positive-class probabilities for those rows
                (1-D, or the n x 2 output of ``predict_proba``).
            metric: One of :data:`CBPE_METRICS`.
            threshold: A row is predicted positive when its (raw) probability is at
                least this.
            positive: The positive label; by default ``1`` if present, else the greater
                label (the class of ``predict_proba``'s second column).
            confidence: Nominal coverage of the sampling-error band.
            samples: Simulated label sets used to measure the sampling error.

        Raises:
            ValueError: unknown metric; labels not binary; fewer than
                :data:`MIN_REFERENCE_ROWS` rows or :data:`MIN_CLASS_ROWS` of a class;
                probabilities outside [0, 1]; lengths differ.
        """
        if metric not in CBPE_METRICS:
            raise ValueError(
                f"CBPE estimates one of {', '.join(CBPE_METRICS)}; got {metric!r} instead"
            )
        proba = _check_proba(proba_reference, "proba_reference", allow_empty=False)
        labels = np.asarray(y_true_reference)
        if labels.ndim != 1 or len(labels) != len(proba):
            raise ValueError(
                f"y_true_reference must be 1-D with one label per probability "
                f"({len(proba)}); got shape {labels.shape}"
            )
        classes = np.unique(labels)
        if len(classes) > 2:
            raise ValueError(
                f"CBPE is for binary classifiers; y_true_reference has {len(classes)} "
                f"classes: {classes[:5].tolist()}"
            )
        if positive is None:
            positive = 1 if 1 in classes.tolist() else classes[-1]
        y = (labels == positive).astype(int)
        counts = {"positive": int(y.sum()), "negative": int(len(y) - y.sum())}
        if len(y) < MIN_REFERENCE_ROWS or min(counts.values()) < MIN_CLASS_ROWS:
            raise ValueError(
                f"CBPE needs a labelled reference of at least {MIN_REFERENCE_ROWS} rows with "
                f"{MIN_CLASS_ROWS} of each class (positive = {positive!r}); got {len(y)} rows, "
                f"{counts['positive']} positive and {counts['negative']} negative"
            )
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(proba, y)
        return cls(
            metric=metric,
            threshold=threshold,
            calibration_x=np.asarray(iso.X_thresholds_, dtype=float),
            calibration_y=np.asarray(iso.y_thresholds_, dtype=float),
            reference_rows=len(y),
            reference_value=_realised(metric, y, proba, threshold),
            positive=positive.item() if isinstance(positive, np.generic) else positive,
            confidence=confidence,
            samples=samples,
        )

    # -- estimating --------------------------------------------------------------------

    def calibrate(self, proba: Any) -> Array:
        """The calibrated positive-class probabilities of ``proba`` (piecewise linear map)."""
        raw = _check_proba(proba, "proba", allow_empty=True)
        return np.asarray(np.interp(raw, self.calibration_x, self.calibration_y), dtype=float)

    def estimate(self, proba_current: Any, *, rng: np.random.Generator | None = None) -> Estimate:
        """The expected ``metric`` on rows whose labels are unknown, with its band.

        ``rng`` draws the simulated labels of the sampling-error band (default: a
        generator seeded with 0, so equal inputs give equal results).
        """
        raw = _check_proba(proba_current, "proba_current", allow_empty=True)
        if raw.size == 0:
            return Estimate(self.metric, None, None, None, None, 0, self.confidence)
        p = np.interp(raw, self.calibration_x, self.calibration_y)
        value = self._expected(raw, p)
        if not math.isfinite(value):
            return Estimate(self.metric, None, None, None, None, len(raw), self.confidence)
        simulated = self._simulate(raw, p, rng or np.random.default_rng(0))
        spread = float(np.nanstd(simulated, ddof=1)) if np.isfinite(simulated).sum() > 1 else 0.0
        z = float(stats.norm.ppf(0.5 + self.confidence / 2))
        return Estimate(
            metric=self.metric,
            value=value,
            lower=max(0.0, value - z * spread),
            upper=min(1.0, value + z * spread),
            sampling_error=spread,
            rows=len(raw),
            confidence=self.confidence,
        )

    def _expected(self, raw: Array, p: Array) -> float:
        if self.metric == "roc_auc":
            return _expected_roc_auc(raw, p)
        hat = raw >= self.threshold
        tp = p[hat].sum()
        fp = (1 - p[hat]).sum()
        fn = p[~hat].sum()
        tn = (1 - p[~hat]).sum()
        cm = (np.asarray(v, dtype=float) for v in (tp, fp, fn, tn))
        return float(_confusion_metric(self.metric, *cm))

    def _simulate(self, raw: Array, p: Array, rng: np.random.Generator) -> Array:
        """The realised metric on ``samples`` label sets drawn from ``p`` (NaN: undefined)."""
        n = len(raw)
        per_block = max(1, _BLOCK // n)
        out: list[Array] = []
        if self.metric == "roc_auc":
            ranks = stats.rankdata(raw)  # average ranks: ties count one half, as in sklearn
        else:
            hat = (raw >= self.threshold).astype(float)
            predicted_pos = hat.sum()
        done = 0
        while done < self.samples:
            k = min(per_block, self.samples - done)
            y = (rng.random((k, n)) < p).astype(float)
            pos = y.sum(axis=1)
            if self.metric == "roc_auc":
                with np.errstate(divide="ignore", invalid="ignore"):
                    auc = (y @ ranks - pos * (pos + 1) / 2) / (pos * (n - pos))
                out.append(np.where((pos > 0) & (pos < n), auc, np.nan))
            else:
                tp = y @ hat
                fp = predicted_pos - tp
                fn = pos - tp
                tn = n - predicted_pos - fn
                out.append(_confusion_metric(self.metric, tp, fp, fn, tn))
            done += k
        return np.concatenate(out)

    # -- persistence -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Everything the estimator needs, as JSON-ready values."""
        return {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "metric": self.metric,
            "threshold": self.threshold,
            "positive": self.positive,
            "confidence": self.confidence,
            "samples": self.samples,
            "calibration": {
                "x": self.calibration_x.tolist(),
                "y": self.calibration_y.tolist(),
            },
            "reference": {"rows": self.reference_rows, "value": self.reference_value},
        }

    def to_bytes(self) -> bytes:
        """UTF-8 JSON of :meth:`to_dict` (no pickle), for the artifact store."""
        return json.dumps(self.to_dict(), sort_keys=True, allow_nan=False).encode()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CBPE:
        """The estimator :meth:`to_dict` described. Raises ValueError naming a bad field."""
        if data.get("format") != _FORMAT or data.get("format_version") != _FORMAT_VERSION:
            raise ValueError(
                f"not a CBPE estimator of format {_FORMAT!r} version {_FORMAT_VERSION}: "
                f"format={data.get('format')!r}, format_version={data.get('format_version')!r}"
            )
        try:
            calibration, reference = data["calibration"], data["reference"]
            value = reference["value"]
            return cls(
                metric=str(data["metric"]),
                threshold=float(data["threshold"]),
                calibration_x=np.asarray(calibration["x"], dtype=float),
                calibration_y=np.asarray(calibration["y"], dtype=float),
                reference_rows=int(reference["rows"]),
                reference_value=None if value is None else float(value),
                positive=data["positive"],
                confidence=float(data["confidence"]),
                samples=int(data["samples"]),
            )
        except KeyError as exc:
            raise ValueError(f"CBPE estimator: missing field {exc.args[0]!r}") from exc
        except (TypeError, ValueError) as exc:
            raise ValueError(f"CBPE estimator: {exc}") from exc

    @classmethod
    def from_bytes(cls, blob: bytes) -> CBPE:
        """The estimator :meth:`to_bytes` wrote. Raises ValueError if it is not one."""
        try:
            data = json.loads(blob)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"CBPE estimator: not JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise ValueError(f"CBPE estimator: expected a JSON object, got {type(data).__name__}")
        return cls.from_dict(data)


def _realised(metric: str, y: Array, proba: Array, threshold: float) -> float | None:
    """The metric with labels: ``retrainer.evaluate.metrics`` where it has it, else sklearn."""
    hat = (proba >= threshold).astype(int)
    try:
        if metric == "roc_auc":
            value = score(metric, y, proba)
        elif metric == "precision":
            value = float(precision_score(y, hat, zero_division=np.nan))
        elif metric == "recall":
            value = float(recall_score(y, hat, zero_division=np.nan))
        else:
            value = score(metric, y, hat)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
