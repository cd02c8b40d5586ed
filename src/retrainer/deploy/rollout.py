"""The rollout engine: start, tick, abort and advance a shadow or canary rollout.

State machine (one row in ``rollouts``; every arrow is one audited CAS transaction)::

    start ──► active(step 0) ──advance──► active(step i+1) ──last step passed──► promoted
                 │   └─────────────── guardrail trips ──► rolled_back (alert)
                 └─ abort (operator, corrupt candidate, champion moved) ──► aborted (alert)

The champion alias does not move while a rollout is active: the router sends the
step's share of traffic to the candidate, and the ``canary`` alias names the version
that takes that share (the candidate at the start, the champion again after a rollback
or abort; compare-and-swap moves, in alias history). Only when the last step passes is
the candidate promoted, through :func:`retrainer.registry.promote` (CAS on the champion
the rollout started from). Everything is read from the store on each call, so a
restarted server (or another process) resumes where the last one left off.

``tick`` is meant to be called every few seconds by whoever serves the model (after
flushing its stats); it is safe to call from several processes at once.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from retrainer.deploy.alerts import Alerter, WebhookAlerter
from retrainer.deploy.guardrails import (
    RealisedMetric,
    TrafficStats,
    Verdict,
    evaluate_guardrails,
    tripped,
)
from retrainer.deploy.store import RolloutInfo, RolloutStore
from retrainer.errors import ConflictError, NotFoundError, PolicyError, RetrainerError
from retrainer.evaluate.metrics import METRICS
from retrainer.registry.promotion import promote
from retrainer.registry.registry import ANY, CHAMPION, Registry
from retrainer.spec import GuardrailSpec, PipelineSpec

if TYPE_CHECKING:
    from retrainer.workspace import Workspace

__all__ = [
    "CANARY_ALIAS",
    "RolloutEngine",
    "TickResult",
    "abort",
    "advance",
    "rollout_status",
    "start_rollout",
    "tick",
]

log = logging.getLogger(__name__)

CANARY_ALIAS = "canary"
SYSTEM_ACTOR = "retrainer-rollout"

Action = Literal["none", "wait", "advanced", "promoted", "rolled_back", "aborted"]


@dataclass(frozen=True)
class TickResult:
    """What one tick did: ``action``, the rollout after it, the verdicts and why."""

    action: Action
    rollout: RolloutInfo | None
    reason: str
    verdicts: list[Verdict] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "rollout": None if self.rollout is None else self.rollout.to_dict(),
            "reason": self.reason,
            "verdicts": [v.to_dict() for v in self.verdicts],
        }


def _plan(spec: PipelineSpec) -> dict[str, Any]:
    deploy = spec.deploy
    metric = METRICS[spec.evaluate.metric]
    common = {
        "rollback": deploy.rollback.model_dump(mode="json"),
        "metric": metric.name,
        "higher_is_better": metric.higher_is_better,
    }
    if deploy.strategy == "canary":
        c = deploy.canary
        return {
            "steps": list(c.steps),
            "min_requests": c.min_requests,
            "dwell_s": c.dwell.total_seconds(),
            "sticky_key": c.sticky_key,
            **common,
        }
    s = deploy.shadow
    return {
        "steps": [0.0],
        "min_requests": s.min_requests,
        "dwell_s": s.dwell.total_seconds(),
        "sticky_key": None,
        **common,
    }


class RolloutEngine:
    """Rollouts of one workspace; ``now`` defaults to the store's clock."""

    def __init__(self, ws: Workspace, *, alerter: Alerter | None = None) -> None:
        self.ws = ws
        self.store = RolloutStore(ws.db)
        self.registry: Registry = ws.registry
        self.alerter: Alerter = alerter or WebhookAlerter(ws.spec.deploy.alert, ws.secrets)

    # -- start ---------------------------------------------------------------------------

    def start(self, model: str, candidate: int, *, actor: str, reason: str) -> RolloutInfo:
        """Start a rollout of ``candidate`` against the current champion.

        Raises PolicyError (strategy is direct, no champion to compare with, the
        candidate is the champion, not READY or its gates did not pass), ConflictError
        (an active rollout exists), NotFoundError.
        """
        strategy = self.ws.spec.deploy.strategy
        if strategy == "direct":
            raise PolicyError(
                f"deploy.strategy is 'direct' for {model}: promote instead of rolling out"
            )
        info = self.registry.get(model, candidate)
        if info.status != "READY" or not info.gates_passed:
            raise PolicyError(
                f"{model}:{candidate} is {info.status}"
                f"{'' if info.gates_passed else ' and its gates did not all pass'}; "
                "only a READY version whose gates passed can be rolled out"
            )
        champion = self.registry.get_alias(model, CHAMPION)
        if champion is None:
            raise PolicyError(f"{model} has no champion to roll {candidate} out against")
        if champion == candidate:
            raise PolicyError(f"{model}:{candidate} is already the champion")
        rollout = self.store.create(
            model,
            candidate=candidate,
            baseline=champion,
            strategy=strategy,
            plan=_plan(self.ws.spec),
            actor=actor,
            reason=reason,
        )
        self._move_canary(rollout, candidate, actor=actor, why=f"rollout {rollout.id} started")
        return rollout

    # -- tick ----------------------------------------------------------------------------

    def judge(
        self, rollout: RolloutInfo, now: datetime
    ) -> tuple[dict[int, TrafficStats], list[Verdict]]:
        """The current step's stats per version and the guardrails' verdicts on them.

        The candidate is judged on the current step; its predictions are compared with
        the champion's over the whole rollout (a 100 % step leaves the champion none).
        """
        stats = self.store.stats(rollout.id, rollout.step)
        reference = self.store.stats(rollout.id, None).get(rollout.baseline or -1, TrafficStats())
        guard = GuardrailSpec.model_validate(rollout.plan["rollback"])
        realised: tuple[RealisedMetric | None, RealisedMetric | None] = (None, None)
        if guard.metric_drop is not None:
            realised = (
                self._realised(rollout, rollout.candidate, now),
                self._realised(rollout, rollout.baseline, now),
            )
        verdicts = evaluate_guardrails(
            guard,
            stats.get(rollout.candidate, TrafficStats()),
            reference,
            realised=realised,
            metric=str(rollout.plan["metric"]),
            higher_is_better=bool(rollout.plan["higher_is_better"]),
        )
        return stats, verdicts

    def tick(self, model: str, *, now: datetime | None = None) -> TickResult:
        """Judge the active rollout of ``model`` once and act: roll back, advance, promote.

        No active rollout: action ``none``. Idempotent and safe to call concurrently: a
        lost compare-and-swap means another process acted; the result says so.
        """
        now = now or self.ws.db.clock()
        rollout = self.store.active(model)
        if rollout is None:
            return TickResult("none", self.store.latest(model), "no active rollout")
        champion = self.registry.get_alias(model, CHAMPION)
        try:
            if champion == rollout.candidate:  # promoted, state not yet written (crash)
                done = self.store.transition(
                    rollout,
                    actor=SYSTEM_ACTOR,
                    action="rollout.promoted",
                    reason=f"version {rollout.candidate} is champion",
                    state="promoted",
                )
                return TickResult("promoted", done, done.reason or "")
            if champion != rollout.baseline:
                why = f"champion moved to version {champion} outside the rollout"
                return TickResult("aborted", self._finish(rollout, "aborted", why), why)
            stats, verdicts = self.judge(rollout, now)
            bad = tripped(verdicts)
            if bad:
                why = "guardrail tripped: " + "; ".join(v.reason for v in bad)
                done = self._finish(rollout, "rolled_back", why, verdicts=verdicts)
                return TickResult("rolled_back", done, why, verdicts)
            waiting = self._waiting(rollout, stats.get(rollout.candidate), verdicts, now)
            if waiting:
                return TickResult("wait", rollout, waiting, verdicts)
            return self._step_passed(rollout, verdicts, actor=SYSTEM_ACTOR, manual=None)
        except ConflictError as exc:
            log.info("rollout %s of %s: another process acted first (%s)", rollout.id, model, exc)
            return TickResult("none", self.store.latest(model), f"another process acted: {exc}")

    def _waiting(
        self,
        rollout: RolloutInfo,
        candidate: TrafficStats | None,
        verdicts: list[Verdict],
        now: datetime,
    ) -> str | None:
        need, dwell = int(rollout.plan["min_requests"]), float(rollout.plan["dwell_s"])
        have = 0 if candidate is None else candidate.requests
        elapsed = max((now - rollout.step_started_at).total_seconds(), 0.0)
        unjudged = [v.name for v in verdicts if v.status == "wait" and v.name != "metric_drop"]
        if have >= need and elapsed >= dwell and not unjudged:
            return None
        parts = [f"{have}/{need} requests", f"{_dur(elapsed)}/{_dur(dwell)} dwell"]
        if unjudged:
            parts.append(f"not yet judged: {', '.join(unjudged)}")
        return f"step {rollout.step + 1}/{len(rollout.steps)}: " + ", ".join(parts)

    def _step_passed(
        self, rollout: RolloutInfo, verdicts: list[Verdict], *, actor: str, manual: str | None
    ) -> TickResult:
        payload = {"verdicts": [v.to_dict() for v in verdicts], "manual": manual is not None}
        if not rollout.last_step:
            why = manual or f"step {rollout.step + 1} passed its guardrails"
            done = self.store.transition(
                rollout,
                actor=actor,
                action="rollout.advance",
                reason=why,
                step=rollout.step + 1,
                payload=payload,
            )
            return TickResult("advanced", done, why, verdicts)
        why = manual or f"rollout {rollout.id}: every step passed its guardrails"
        try:
            promote(
                self.registry,
                rollout.model,
                rollout.candidate,
                actor=actor,
                reason=why,
                expected=rollout.baseline,
            )
        except (ConflictError, PolicyError, NotFoundError) as exc:
            reason = f"promotion refused: {exc}"
            return TickResult("aborted", self._finish(rollout, "aborted", reason), reason)
        done = self.store.transition(
            rollout,
            actor=actor,
            action="rollout.promoted",
            reason=why,
            state="promoted",
            payload=payload,
        )
        return TickResult("promoted", done, why, verdicts)

    # -- operator and server actions -----------------------------------------------------

    def abort(self, model: str, *, actor: str, reason: str, integrity: bool = False) -> RolloutInfo:
        """End the active rollout as ``aborted``; the champion is untouched. Alerts.

        ``integrity=True`` (the server found the candidate's artifact corrupt) also marks
        the candidate ``QUARANTINED``. Raises NotFoundError when nothing is active.
        """
        rollout = self._require_active(model)
        done = self._finish(rollout, "aborted", reason, actor=actor)
        if integrity:
            try:
                self.registry.set_status(
                    model, rollout.candidate, "QUARANTINED", actor=actor, reason=reason
                )
            except RetrainerError:
                log.exception("could not quarantine %s:%s", model, rollout.candidate)
        return done

    def advance(self, model: str, *, actor: str, reason: str) -> TickResult:
        """Manual override: move to the next step (or promote after the last), unjudged.

        Audited like an automatic advance, with ``manual: true`` and the operator's reason.
        Raises NotFoundError when nothing is active, ConflictError when it moved meanwhile.
        """
        rollout = self._require_active(model)
        champion = self.registry.get_alias(model, CHAMPION)
        if champion != rollout.baseline:
            raise ConflictError(
                f"{model}@champion is version {champion}, not {rollout.baseline} as when "
                f"rollout {rollout.id} started; abort it instead"
            )
        _, verdicts = self.judge(rollout, self.ws.db.clock())
        return self._step_passed(rollout, verdicts, actor=actor, manual=f"manual: {reason}")

    def status(self, model: str, *, now: datetime | None = None) -> dict[str, Any]:
        """The active (else the latest) rollout, its step's stats and verdicts, as a dict."""
        now = now or self.ws.db.clock()
        rollout = self.store.active(model) or self.store.latest(model)
        champion = self.registry.get_alias(model, CHAMPION)
        if rollout is None:
            return {"model": model, "champion": champion, "rollout": None}
        stats, verdicts = self.judge(rollout, now)
        roles = {rollout.baseline: "champion", rollout.candidate: rollout.strategy}
        versions = []
        for version in sorted({v for v in (rollout.baseline, rollout.candidate) if v} | set(stats)):
            row = stats.get(version, TrafficStats()).to_dict()
            versions.append({"version": version, "role": roles.get(version, "other"), **row})
        waiting = None
        if rollout.state == "active":
            waiting = self._waiting(rollout, stats.get(rollout.candidate), verdicts, now)
        return {
            "model": model,
            "champion": champion,
            "rollout": rollout.to_dict(),
            "versions": versions,
            "verdicts": [v.to_dict() for v in verdicts],
            "waiting": waiting,
        }

    # -- helpers -------------------------------------------------------------------------

    def _require_active(self, model: str) -> RolloutInfo:
        rollout = self.store.active(model)
        if rollout is None:
            latest = self.store.latest(model)
            last = "" if latest is None else f" (the last one, {latest.id}, is {latest.state})"
            raise NotFoundError(f"model {model!r} has no active rollout{last}")
        return rollout

    def _finish(
        self,
        rollout: RolloutInfo,
        state: Literal["rolled_back", "aborted"],
        reason: str,
        *,
        actor: str = SYSTEM_ACTOR,
        verdicts: list[Verdict] | None = None,
    ) -> RolloutInfo:
        action = "rollout.rolled_back" if state == "rolled_back" else "rollout.abort"
        payload = {"verdicts": [v.to_dict() for v in verdicts or []]}
        done = self.store.transition(
            rollout, actor=actor, action=action, reason=reason, state=state, payload=payload
        )
        if rollout.baseline is not None:
            self._move_canary(rollout, rollout.baseline, actor=actor, why=reason)
        self.alerter.send(
            {
                "event": action,
                "model": rollout.model,
                "rollout": rollout.id,
                "candidate": rollout.candidate,
                "champion": rollout.baseline,
                "state": state,
                "step": rollout.step,
                "reason": reason,
                "verdicts": payload["verdicts"],
                "at": (done.finished_at or self.ws.db.clock()).isoformat(),
                "message": f"{rollout.model}: rollout of version {rollout.candidate} "
                f"{state.replace('_', ' ')}: {reason}",
            }
        )
        return done

    def _move_canary(self, rollout: RolloutInfo, to: int, *, actor: str, why: str) -> None:
        """Point the ``canary`` alias at ``to``; a failure is logged (routing is unaffected)."""
        try:
            if self.registry.get_alias(rollout.model, CANARY_ALIAS) == to:
                return
            self.registry.move_alias(
                rollout.model, CANARY_ALIAS, to, expected=ANY, actor=actor, reason=why
            )
        except RetrainerError:
            log.exception("could not move %s@%s to %s", rollout.model, CANARY_ALIAS, to)

    def _realised(
        self, rollout: RolloutInfo, version: int | None, now: datetime
    ) -> RealisedMetric | None:
        if version is None:
            return None
        from retrainer.monitor.realised import realised_performance

        seconds = max(1, math.ceil((now - rollout.started_at).total_seconds()) + 1)
        frame = realised_performance(
            self.ws.db,
            rollout.model,
            metric=str(rollout.plan["metric"]),
            window=timedelta(seconds=seconds),
            since=rollout.started_at,
            until=rollout.started_at + timedelta(seconds=seconds),
            version=version,
            min_labels=1,
        )
        if frame.empty:
            return None
        labelled = int(frame["labelled"].sum())
        value = float(frame["value"].iloc[0])
        return None if math.isnan(value) else RealisedMetric(value, labelled)


def _dur(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


# -- functional entry points (the CLI and the cycle use these) -----------------------------


def start_rollout(
    ws: Workspace, model: str, candidate: int, *, actor: str, reason: str
) -> RolloutInfo:
    """See :meth:`RolloutEngine.start`."""
    return RolloutEngine(ws).start(model, candidate, actor=actor, reason=reason)


def tick(
    ws: Workspace, model: str, *, now: datetime | None = None, alerter: Alerter | None = None
) -> TickResult:
    """See :meth:`RolloutEngine.tick`."""
    return RolloutEngine(ws, alerter=alerter).tick(model, now=now)


def abort(
    ws: Workspace,
    model: str,
    *,
    actor: str,
    reason: str,
    integrity: bool = False,
    alerter: Alerter | None = None,
) -> RolloutInfo:
    """See :meth:`RolloutEngine.abort`."""
    return RolloutEngine(ws, alerter=alerter).abort(
        model, actor=actor, reason=reason, integrity=integrity
    )


def advance(ws: Workspace, model: str, *, actor: str, reason: str) -> TickResult:
    """See :meth:`RolloutEngine.advance`."""
    return RolloutEngine(ws).advance(model, actor=actor, reason=reason)


def rollout_status(ws: Workspace, model: str, *, now: datetime | None = None) -> dict[str, Any]:
    """See :meth:`RolloutEngine.status`."""
    return RolloutEngine(ws).status(model, now=now)
