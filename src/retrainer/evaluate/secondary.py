"""Secondary metrics: each with its own thresholds, one gate ``secondary:<metric>`` each.

``min`` and ``max`` bound the candidate's value on the holdout. ``max_drop`` is a
non-inferiority test against the champion on the same rows: the lower bound of the
paired bootstrap interval of the improvement must be above ``-max_drop``. Without a
champion, ``max_drop`` is not checked; a metric undefined on the holdout is
``not_evaluable``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from retrainer.evaluate.bootstrap import paired_bootstrap
from retrainer.evaluate.decision import GateResult
from retrainer.evaluate.outputs import Outputs, safe_score

if TYPE_CHECKING:
    from retrainer.spec import SecondaryMetric

__all__ = ["secondary_gate"]


def secondary_gate(
    name: str,
    limits: SecondaryMetric,
    y: np.ndarray[Any, Any],
    candidate: Outputs,
    champion: Outputs | None,
    *,
    resamples: int,
    confidence: float,
    rng: np.random.Generator,
) -> GateResult:
    """Judge one secondary metric."""
    gate = f"secondary:{name}"
    cand_out = candidate.for_metric(name)
    value = safe_score(name, y, cand_out)
    numbers: dict[str, Any] = {"min": limits.min, "max": limits.max, "max_drop": limits.max_drop}
    if not np.isfinite(value):
        return GateResult(gate, "not_evaluable", f"{name} could not be computed on the holdout")
    numbers["candidate"] = value
    problems, notes = [], [f"{name} {value:.4f}"]
    if limits.min is not None and value < limits.min:
        problems.append(f"{name} {value:.4f} is below the minimum {limits.min}")
    if limits.max is not None and value > limits.max:
        problems.append(f"{name} {value:.4f} is above the maximum {limits.max}")
    lo = hi = None
    if limits.max_drop is not None and champion is not None:
        champ_out = champion.for_metric(name)
        champ = safe_score(name, y, champ_out)
        if not np.isfinite(champ):
            return GateResult(
                gate,
                "not_evaluable",
                f"{name} of the champion could not be computed",
                numbers=numbers,
            )
        observed, lo, hi = paired_bootstrap(
            name, y, champ_out, cand_out, resamples=resamples, confidence=confidence, rng=rng
        )
        numbers.update(champion=champ, improvement=observed, ci_low=lo, ci_high=hi)
        text = (
            f"vs champion {champ:.4f} (improvement {observed:+.4f}, "
            f"{confidence:.0%} CI [{lo:+.4f}, {hi:+.4f}])"
        )
        notes.append(text)
        if not lo > -limits.max_drop:
            problems.append(
                f"{name} {value:.4f} may be worse than the champion by more than "
                f"{limits.max_drop} ({text})"
            )
    if problems:
        return GateResult(
            gate, "fail", "; ".join(problems), value=value, ci_low=lo, ci_high=hi, numbers=numbers
        )
    return GateResult(
        gate,
        "pass",
        " ".join(notes) + ": within its thresholds",
        value=value,
        ci_low=lo,
        ci_high=hi,
        numbers=numbers,
    )
