"""How much holdout (and how many resamples) a confidence level needs, and whether the world
changed: the champion on its own holdout versus the champion on the new one.

The rules, for a two-sided percentile interval at confidence ``c``:

- **resamples**: each tail holds ``(1 - c) / 2`` of the resamples and should rest on at
  least 5 of them, so at least ``10 / (1 - c)`` resamples (200 at 95 %, 1,000 at 99 %).
- **holdout rows**: one row of the rarest class must weigh no more than a tail,
  ``1 / n <= (1 - c) / 2``, so at least ``2 / (1 - c)`` rows of *each* class for a
  classifier, and of the whole holdout for a regressor (40 at 95 %, 200 at 99 %). With
  fewer rows the ends of the interval are decided by one or two rows, and the interval
  covers the true difference less often than it claims.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import pandas as pd

from retrainer.errors import EvaluationError
from retrainer.evaluate.bootstrap import batch_metric, resampled
from retrainer.evaluate.metrics import METRICS

__all__ = ["champion_on_holdouts", "check_holdout", "min_holdout_rows", "min_resamples"]

Array = np.ndarray[Any, Any]


def _per_tail(confidence: float) -> float:
    return round(1.0 / (1.0 - confidence), 6)  # 1 / 0.05 is 20.000000000000004


def min_resamples(confidence: float) -> int:
    """Fewest bootstrap resamples for an interval at ``confidence``: 5 in each tail.

    >>> min_resamples(0.95), min_resamples(0.99)
    (200, 1000)
    """
    return math.ceil(10 * _per_tail(confidence))


def min_holdout_rows(confidence: float) -> int:
    """Fewest rows of each class (or of the holdout, for a regressor) at ``confidence``.

    >>> min_holdout_rows(0.95), min_holdout_rows(0.9), min_holdout_rows(0.99)
    (40, 20, 200)
    """
    return math.ceil(2 * _per_tail(confidence))


def check_holdout(
    y: Array, task: Literal["classification", "regression"], confidence: float
) -> None:
    """Raise EvaluationError when ``y`` is too small for an interval at ``confidence``.

    The message names the minimum needed and what was found. A holdout with one class
    only passes this check: its metric may still be defined (accuracy), and where it is
    not (roc_auc) the gates say ``not_evaluable``.
    """
    need = min_holdout_rows(confidence)
    labelled = y[~_missing(y)]
    if task == "regression" or len(np.unique(labelled)) < 2:
        if len(labelled) < need:
            raise EvaluationError(
                f"the holdout has {len(labelled)} labelled rows; a {confidence:.0%} "
                f"confidence interval needs at least {need} (2 / (1 - confidence)). Hold out "
                "more rows (data.holdout.fraction, data.window) or lower evaluate.confidence"
            )
        return
    values, counts = np.unique(labelled, return_counts=True)
    small = [(v, int(c)) for v, c in zip(values.tolist(), counts, strict=True) if c < need]
    if small:
        listed = ", ".join(f"{c} of class {v!r}" for v, c in small)
        raise EvaluationError(
            f"the holdout has {listed}; a {confidence:.0%} confidence interval needs at "
            f"least {need} rows of each class (2 / (1 - confidence)). Hold out more rows "
            "(data.holdout.fraction, data.window) or lower evaluate.confidence"
        )


def _missing(y: Array) -> Array:
    return np.asarray(pd.isna(y), dtype=bool)


def champion_on_holdouts(
    name: str,
    original: tuple[Array, Array],
    new: tuple[Array, Array],
    *,
    resamples: int,
    confidence: float,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """The champion's metric on its own holdout and on the new one, and what it means.

    ``original`` and ``new`` are ``(labels, champion outputs)``. The change is oriented
    like an improvement (positive: the champion does better on the new rows); its
    interval is an unpaired bootstrap (the two holdouts are different rows). A change
    whose interval lies wholly below zero means the world changed under the champion.
    """
    sign = 1.0 if METRICS[name].higher_is_better else -1.0
    (y0, o0), (y1, o1) = original, new
    before = float(batch_metric(name, y0[None, :], o0[None, :])[0])
    after = float(batch_metric(name, y1[None, :], o1[None, :])[0])
    [m0] = resampled(name, y0, [o0], resamples=resamples, rng=rng)
    [m1] = resampled(name, y1, [o1], resamples=resamples, rng=rng)
    diffs = sign * (m1 - m0)
    alpha = 1.0 - confidence
    if np.isnan(diffs).all():
        lo = hi = float("nan")
    else:
        lo, hi = (float(v) for v in np.nanquantile(diffs, [alpha / 2, 1 - alpha / 2]))
    change = sign * (after - before)
    if not np.isfinite(change) or not np.isfinite(lo):
        verdict = "unknown"
        text = f"{name} of the champion could not be compared across its two holdouts"
    elif hi < 0:
        verdict = "world_changed"
        text = (
            f"the world changed: the champion scores {name} {after:.4f} on the new holdout "
            f"against {before:.4f} on its own ({confidence:.0%} CI of the change "
            f"[{lo:+.4f}, {hi:+.4f}])"
        )
    else:
        verdict = "stable"
        text = (
            f"the champion holds up: {name} {after:.4f} on the new holdout against "
            f"{before:.4f} on its own ({confidence:.0%} CI of the change [{lo:+.4f}, {hi:+.4f}])"
        )
    return {
        "metric": name,
        "original": _finite(before),
        "new": _finite(after),
        "change": _finite(change),
        "ci_low": _finite(lo),
        "ci_high": _finite(hi),
        "original_rows": len(y0),
        "new_rows": len(y1),
        "verdict": verdict,
        "reason": text,
    }


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None
