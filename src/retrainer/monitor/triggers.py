"""Triggers: should this cycle retrain? Each answer carries a plain reason and numbers.

With no champion yet the cycle always trains (``bootstrap``); a manual request always
trains. Otherwise every automatic trigger of the spec is evaluated on the evidence the
cycle gathered (a :class:`TriggerContext`), and the spec's ``retrain_policy`` combines
them (``any`` or ``all``) and then holds a firing decision back during a cooldown or
once ``max_retrains`` per period is reached. Pure: no I/O, the clock is in the context.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

from retrainer.evaluate.metrics import METRICS
from retrainer.spec import (
    DataVolumeTrigger,
    DriftTrigger,
    PerformanceTrigger,
    PipelineSpec,
    ScheduleTrigger,
)

__all__ = ["DriftEvidence", "TriggerContext", "TriggerDecision", "decide", "schedule_tick"]


@dataclass(frozen=True)
class DriftEvidence:
    """The drift verdict on the newest batch against the champion's reference profile."""

    drifted: tuple[str, ...]
    share: float
    checked: int
    domain_auc: float | None = None


@dataclass(frozen=True)
class TriggerContext:
    """What is known when the cycle decides."""

    has_champion: bool
    accepted_rows_total: int
    rows_since_last_training: int
    realised: dict[str, tuple[float, int]] = field(default_factory=dict)
    """metric name -> (value, labelled rows) on the newest batch, for the champion"""
    estimated: dict[str, tuple[float, int]] = field(default_factory=dict)
    """metric name -> (CBPE estimate, rows) on the newest batch, without its labels"""
    champion_holdout: dict[str, float] = field(default_factory=dict)
    """the champion's metrics on its own holdout, for ``drop``"""
    drift: DriftEvidence | None = None
    now: datetime | None = None
    champion_since: datetime | None = None
    last_training_at: datetime | None = None
    retrains_in_period: int = 0
    last_schedule_tick: datetime | None = None
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


@dataclass(frozen=True)
class _Verdict:
    fired: bool
    kind: str
    reason: str
    numbers: dict[str, Any] = field(default_factory=dict)


def decide(spec: PipelineSpec, ctx: TriggerContext) -> TriggerDecision:
    """Bootstrap, manual, or the automatic triggers combined under the retrain policy."""
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
    verdicts = [v for t in spec.triggers if (v := _evaluate(t, spec, ctx)) is not None]
    if not verdicts:
        manual_only = any(t.manual is not None for t in spec.triggers)
        reason = (
            "no automatic trigger configured (manual only: 'retrainer retrain')"
            if manual_only
            else "no trigger fired (none configured)"
        )
        return TriggerDecision(False, "none", reason, {})
    fired = [v for v in verdicts if v.fired]
    policy = spec.retrain_policy
    if policy.combine == "all" and len(fired) < len(verdicts):
        waiting = "; ".join(v.reason for v in verdicts if not v.fired)
        return TriggerDecision(
            False,
            "none",
            f"{len(fired)} of {len(verdicts)} triggers fired and all are required: {waiting}",
            {"fired": [v.kind for v in fired]},
        )
    if not fired:
        return TriggerDecision(
            False, "none", "no trigger fired: " + "; ".join(v.reason for v in verdicts), {}
        )
    first = fired[0]
    numbers = dict(first.numbers)
    if len(fired) > 1:
        numbers["also"] = [{"kind": v.kind, **v.numbers} for v in fired[1:]]
    reason = "; ".join(v.reason for v in fired)
    held = _held_back(spec, ctx)
    if held is not None:
        return TriggerDecision(False, "none", f"{held} (would have fired: {reason})", numbers)
    return TriggerDecision(True, first.kind, reason, numbers)


def _held_back(spec: PipelineSpec, ctx: TriggerContext) -> str | None:
    """Why the retrain policy holds a firing decision back, or None."""
    policy = spec.retrain_policy
    if policy.cooldown is not None and ctx.now is not None and ctx.last_training_at is not None:
        ready = ctx.last_training_at + policy.cooldown
        if ctx.now < ready:
            return (
                f"cooling down: last retrain at {ctx.last_training_at:%Y-%m-%d %H:%M} UTC, "
                f"next possible at {ready:%Y-%m-%d %H:%M} UTC"
            )
    if policy.max_retrains is not None and ctx.retrains_in_period >= policy.max_retrains:
        days = policy.per.total_seconds() / 86400
        return (
            f"retrain limit reached: {ctx.retrains_in_period} in the last {days:g} days "
            f"(max_retrains {policy.max_retrains})"
        )
    return None


def _evaluate(trig: Any, spec: PipelineSpec, ctx: TriggerContext) -> _Verdict | None:
    if trig.data_volume is not None:
        return _data_volume(trig.data_volume, ctx)
    if trig.performance is not None:
        return _performance(trig.performance, spec, ctx)
    if trig.drift is not None:
        return _drift(trig.drift, ctx)
    if trig.schedule is not None:
        return _schedule(trig.schedule, ctx)
    return None  # manual: only by request


def _data_volume(t: DataVolumeTrigger, ctx: TriggerContext) -> _Verdict:
    need, have = t.rows, ctx.rows_since_last_training
    if have >= need:
        reason = f"{have} new rows since the last training (threshold {need})"
        return _Verdict(True, "data_volume", reason, {"rows": have, "threshold": need})
    return _Verdict(False, "data_volume", f"{have}/{need} new rows")


def _performance(p: PerformanceTrigger, spec: PipelineSpec, ctx: TriggerContext) -> _Verdict:
    name = p.metric or spec.evaluate.metric
    seen, how = ctx.realised.get(name), ""
    if (seen is None or seen[1] < p.min_rows) and p.estimated and name in ctx.estimated:
        seen, how = ctx.estimated[name], "estimated (CBPE) "
    if seen is None or seen[1] < p.min_rows:
        count = "none scored" if seen is None else f"{seen[1]} of {p.min_rows}"
        return _Verdict(
            False, "performance", f"{name}: not enough labelled rows to judge ({count})"
        )
    value, rows = seen
    bounds: list[tuple[str, float, bool]] = []
    if p.below is not None:
        bounds.append(("below", p.below, value < p.below))
    if p.above is not None:
        bounds.append(("above", p.above, value > p.above))
    base = ctx.champion_holdout.get(name)
    if p.drop is not None and base is not None:
        floor = base - p.drop if METRICS[name].higher_is_better else base + p.drop
        worse = value < floor if METRICS[name].higher_is_better else value > floor
        bounds.append((f"more than {p.drop} worse than its holdout {base:.3f}, past", floor, worse))
    numbers: dict[str, Any] = {"metric": name, "value": value, "rows": rows}
    if how:
        numbers["estimated"] = True
    for word, bound, hit in bounds:
        if hit:
            reason = (
                f"champion {how}{name} {_shown(value, bound)} on the newest batch "
                f"({rows} rows) is {word} {bound:g}"
            )
            return _Verdict(True, "performance", reason, {**numbers, "threshold": bound})
    if not bounds:
        return _Verdict(False, "performance", f"{name}: no holdout value to compare with")
    near = min((b for _, b, _ in bounds), key=lambda b: abs(b - value))
    shown = " or ".join(f"{w} {b:g}" for w, b, _ in bounds)
    reason = (
        f"champion {how}{name} {_shown(value, near)} ({rows} rows) within bounds (fires {shown})"
    )
    return _Verdict(False, "performance", reason, numbers)


def _drift(t: DriftTrigger, ctx: TriggerContext) -> _Verdict:
    d = ctx.drift
    if d is None or d.checked == 0:
        return _Verdict(False, "drift", "drift: no batch checked against the champion yet")
    numbers = {"drifted": list(d.drifted), "share": d.share, "domain_auc": d.domain_auc}
    hits = []
    if t.share is not None and d.share >= t.share:
        hits.append(
            f"{len(d.drifted)} of {d.checked} features drifted ({d.share:.0%} >= {t.share:.0%})"
        )
    watched = [f for f in (t.features or []) if f in d.drifted]
    if watched:
        hits.append(f"watched feature(s) drifted: {', '.join(watched)}")
    if t.domain_auc is not None and d.domain_auc is not None and d.domain_auc >= t.domain_auc:
        hits.append(f"domain classifier AUC {d.domain_auc:.3f} >= {t.domain_auc}")
    if hits:
        return _Verdict(True, "drift", "drift: " + "; ".join(hits), numbers)
    listed = f" ({', '.join(d.drifted)})" if d.drifted else ""
    return _Verdict(
        False, "drift", f"drift: {len(d.drifted)} of {d.checked} features drifted{listed}", numbers
    )


def schedule_tick(cron: str, timezone: str, now: datetime) -> datetime:
    """The latest tick of ``cron`` (in ``timezone``) at or before ``now``."""
    local = now.astimezone(ZoneInfo(timezone))
    if croniter.match(cron, local):
        return local.replace(second=0, microsecond=0)
    return croniter(cron, local).get_prev(datetime)


def _schedule(t: ScheduleTrigger, ctx: TriggerContext) -> _Verdict:
    if ctx.now is None:
        return _Verdict(False, "schedule", "schedule: no clock")
    tick = schedule_tick(t.cron, t.timezone, ctx.now)
    since = ctx.last_schedule_tick or ctx.champion_since
    if since is not None and tick <= since:
        nxt = croniter(t.cron, ctx.now.astimezone(ZoneInfo(t.timezone))).get_next(datetime)
        return _Verdict(False, "schedule", f"schedule '{t.cron}': next at {nxt:%Y-%m-%d %H:%M %Z}")
    reason = f"schedule '{t.cron}' ({t.timezone}): due since {tick:%Y-%m-%d %H:%M %Z}"
    return _Verdict(True, "schedule", reason, {"tick": tick.isoformat(), "cron": t.cron})


def _shown(value: float, bound: float) -> str:
    """``value`` to 3 decimals, or more where 3 would hide which side of ``bound`` it is on."""
    if value == bound:
        return f"{value:.3f}"
    for digits in range(3, 10):
        text = f"{value:.{digits}f}"
        if float(text) != bound and (float(text) < bound) == (value < bound):
            return text
    return repr(value)
