"""Gates and the decision record: one explanation of every pass and fail of a candidate.

A gate ends in one of four statuses:

================= ==================================================================
``pass``          evaluated, and the candidate meets the gate
``fail``          evaluated, and it does not: the candidate is blocked
``not_evaluable`` the gate applies but could not be computed (a metric undefined on
                  the holdout, a slice too small): the candidate is blocked, never a
                  silent pass
``skipped``       the gate does not apply (no champion yet, not configured)
================= ==================================================================

A record passes only when every gate is ``pass`` or ``skipped``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["GATE_STATUSES", "DecisionRecord", "GateResult", "GateStatus", "finite_or_none"]

GateStatus = Literal["pass", "fail", "not_evaluable", "skipped"]
GATE_STATUSES: tuple[GateStatus, ...] = ("pass", "fail", "not_evaluable", "skipped")


@dataclass(frozen=True)
class GateResult:
    """One gate: its status, why in plain words, and the numbers behind it.

    Attributes:
        name: A stable gate name (``scores``, ``vs_champion``, ``slice:region`` ...).
        status: ``pass``, ``fail``, ``not_evaluable`` or ``skipped``.
        reason: Plain language, with the numbers.
        value: The measured value the threshold is compared with, if one.
        threshold: The threshold it is compared with, if one.
        ci_low / ci_high: The confidence interval of ``value``, if one.
        numbers: Every other number worth keeping (JSON-ready).
        details: Rows behind the gate (one per slice, per group...), JSON-ready dicts.
    """

    name: str
    status: GateStatus
    reason: str
    value: float | None = None
    threshold: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    numbers: dict[str, Any] = field(default_factory=dict)
    details: tuple[dict[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if self.status not in GATE_STATUSES:
            raise ValueError(
                f"gate {self.name!r}: expected status in {', '.join(GATE_STATUSES)}, "
                f"got {self.status!r}"
            )

    @property
    def passed(self) -> bool:
        """True for ``pass`` and ``skipped``: the gate does not block."""
        return self.status in ("pass", "skipped")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, with ``passed``."""
        return {
            "name": self.name,
            "status": self.status,
            "passed": self.passed,
            "reason": self.reason,
            "value": self.value,
            "threshold": self.threshold,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "numbers": dict(self.numbers),
            "details": [dict(d) for d in self.details],
        }


@dataclass(frozen=True)
class DecisionRecord:
    """Every gate of a candidate; ``passed`` only when no gate blocks."""

    metric: str
    candidate_metric: float
    champion_metric: float | None
    champion_version: int | None
    holdout_rows: int
    gates: tuple[GateResult, ...]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when every gate passed or was skipped."""
        return all(g.passed for g in self.gates)

    def summary(self) -> str:
        """One line: the verdict and the reasons of the blocking gates (or all, if passed)."""
        shown = [g for g in self.gates if not g.passed] or [
            g for g in self.gates if g.status == "pass"
        ]
        verdict = "passed" if self.passed else "failed"
        return f"{verdict}: " + "; ".join(g.reason for g in shown)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, including ``passed`` and ``summary``.

        Non-finite floats (an undefined metric) become ``None``: strict JSON, which
        PostgreSQL's JSON columns require, has no NaN.
        """
        out: dict[str, Any] = finite_or_none(
            {
                "metric": self.metric,
                "candidate_metric": self.candidate_metric,
                "champion_metric": self.champion_metric,
                "champion_version": self.champion_version,
                "holdout_rows": self.holdout_rows,
                "gates": [g.to_dict() for g in self.gates],
                "extra": dict(self.extra),
                "passed": self.passed,
                "summary": self.summary(),
            }
        )
        return out


def finite_or_none(value: Any) -> Any:
    """``value`` with every NaN or infinite float (at any depth) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(v) for v in value]
    return value
