"""Gates and the decision record: one explanation of every pass and fail of a candidate."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["DecisionRecord", "GateResult"]


@dataclass(frozen=True)
class GateResult:
    """One gate: did it pass, why in plain words, and the numbers behind it."""

    name: str
    passed: bool
    reason: str
    numbers: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DecisionRecord:
    """Every gate of a candidate; ``passed`` only when all passed."""

    metric: str
    candidate_metric: float
    champion_metric: float | None
    champion_version: int | None
    holdout_rows: int
    gates: tuple[GateResult, ...]

    @property
    def passed(self) -> bool:
        """True when every gate passed."""
        return all(g.passed for g in self.gates)

    def summary(self) -> str:
        """One line: the verdict and the reasons of the failed gates (or all, if passed)."""
        shown = [g for g in self.gates if not g.passed] or list(self.gates)
        verdict = "passed" if self.passed else "failed"
        return f"{verdict}: " + "; ".join(g.reason for g in shown)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, including ``passed`` and ``summary``."""
        out = asdict(self)
        out["gates"] = [asdict(g) for g in self.gates]
        out["passed"] = self.passed
        out["summary"] = self.summary()
        return out
