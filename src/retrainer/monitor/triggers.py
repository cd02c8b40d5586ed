"""Triggers: should this cycle retrain? Each answer carries a plain reason and numbers.

Triggers are evaluated in spec order and the first that fires decides; with no
champion yet the cycle always trains (``bootstrap``). Pure: everything a trigger
needs is in the :class:`TriggerContext` the cycle gathers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from retrainer.spec import PipelineSpec

__all__ = ["TriggerContext", "TriggerDecision", "decide"]


@dataclass(frozen=True)
class TriggerContext:
    """What is known when the cycle decides."""

    has_champion: bool
    accepted_rows_total: int
    rows_since_last_training: int
    realised: dict[str, tuple[float, int]] = field(default_factory=dict)
    """metric name -> (value, labelled rows) on the newest batch, for the champion"""
    manual_reason: str | None = None


@dataclass(frozen=True)
class TriggerDecision:
    """Fire or not; which trigger; why; the numbers behind it."""

    fire: bool
    kind: str
    reason: str
    numbers: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def decide(spec: PipelineSpec, ctx: TriggerContext) -> TriggerDecision:
    """The first trigger that fires, or a decision not to retrain with every reason."""
    if ctx.accepted_rows_total == 0:
        return TriggerDecision(False, "none", "no accepted data yet")
    if not ctx.has_champion:
        return TriggerDecision(
            True,
            "bootstrap",
            f"no champion yet: training version 1 on {ctx.accepted_rows_total} accepted rows",
            {"rows": ctx.accepted_rows_total},
        )
    if ctx.manual_reason is not None:
        return TriggerDecision(True, "manual", f"manual retrain: {ctx.manual_reason}", {})
    quiet: list[str] = []
    for trig in spec.triggers:
        if trig.data_volume is not None:
            need, have = trig.data_volume.rows, ctx.rows_since_last_training
            if have >= need:
                return TriggerDecision(
                    True,
                    "data_volume",
                    f"{have} new rows since the last training (threshold {need})",
                    {"rows": have, "threshold": need},
                )
            quiet.append(f"{have}/{need} new rows")
        elif trig.performance is not None:
            p = trig.performance
            name = p.metric or spec.evaluate.metric
            seen = ctx.realised.get(name)
            if seen is None or seen[1] < p.min_rows:
                count = "none scored" if seen is None else f"{seen[1]} of {p.min_rows}"
                quiet.append(f"{name}: not enough labelled rows to judge ({count})")
                continue
            value, rows = seen
            crossed = [
                (word, bound)
                for word, bound in (("below", p.below), ("above", p.above))
                if bound is not None and (value < bound if word == "below" else value > bound)
            ]
            if crossed:
                word, bound = crossed[0]
                return TriggerDecision(
                    True,
                    "performance",
                    f"champion {name} {_shown(value, bound)} on the newest batch "
                    f"({rows} rows) is {word} {bound}",
                    {"metric": name, "value": value, "rows": rows, "threshold": bound},
                )
            bounds = " or ".join(
                f"{word} {bound}"
                for word, bound in (("below", p.below), ("above", p.above))
                if bound is not None
            )
            given = [b for b in (p.below, p.above) if b is not None]
            near = min(given, key=lambda b: abs(b - value))
            quiet.append(
                f"champion {name} {_shown(value, near)} ({rows} rows) within bounds "
                f"(fires {bounds})"
            )
    if quiet:
        reason = f"no trigger fired: {'; '.join(quiet)}"
    elif any(t.manual is not None for t in spec.triggers):
        reason = "no automatic trigger configured (manual only: 'retrainer retrain')"
    else:
        reason = "no trigger fired (none configured)"
    return TriggerDecision(False, "none", reason, {})


def _shown(value: float, bound: float) -> str:
    """``value`` to 3 decimals, or more where 3 would hide which side of ``bound`` it is on."""
    if value == bound:
        return f"{value:.3f}"
    for digits in range(3, 10):
        text = f"{value:.{digits}f}"
        if float(text) != bound and (float(text) < bound) == (value < bound):
            return text
    return repr(value)
