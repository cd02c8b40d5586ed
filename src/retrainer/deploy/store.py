"""The rollout store: rollouts, their transitions (CAS, audited) and traffic stats.

Every transition is one transaction that checks the rollout's ``epoch`` (compare and
swap), writes the new state and appends the audit event, so two processes ticking the
same rollout cannot both move it. Traffic stats are not audited (they are data, like
the prediction log); :meth:`RolloutStore.add_stats` adds a batch in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from retrainer.deploy.guardrails import TrafficStats
from retrainer.errors import ConflictError, NotFoundError
from retrainer.registry.audit import append_event
from retrainer.registry.db import Database, as_utc
from retrainer.registry.tables import Rollout, RolloutStat

__all__ = ["ACTIVE", "RolloutInfo", "RolloutStore"]

ACTIVE = "active"
_FINAL = ("promoted", "rolled_back", "aborted")


@dataclass(frozen=True)
class RolloutInfo:
    """One rollout as stored."""

    id: int
    model: str
    candidate: int
    baseline: int | None
    strategy: str
    plan: dict[str, Any]
    step: int
    state: str
    epoch: int
    actor: str
    reason: str | None
    started_at: datetime
    step_started_at: datetime
    finished_at: datetime | None

    @property
    def steps(self) -> list[float]:
        """Candidate traffic per step: the canary percentages; shadow is one step of 0."""
        return [float(p) for p in self.plan.get("steps", [0.0])]

    @property
    def percentage(self) -> float:
        """The candidate's share of traffic now (0 for shadow, and once finished)."""
        return self.steps[self.step] if self.state == ACTIVE else 0.0

    @property
    def last_step(self) -> bool:
        return self.step >= len(self.steps) - 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "candidate": self.candidate,
            "baseline": self.baseline,
            "strategy": self.strategy,
            "plan": self.plan,
            "step": self.step,
            "steps": self.steps,
            "percentage": self.percentage,
            "state": self.state,
            "actor": self.actor,
            "reason": self.reason,
            "started_at": self.started_at.isoformat(),
            "step_started_at": self.step_started_at.isoformat(),
            "finished_at": None if self.finished_at is None else self.finished_at.isoformat(),
        }


def _info(r: Rollout) -> RolloutInfo:
    return RolloutInfo(
        r.id,
        r.model,
        r.candidate,
        r.baseline,
        r.strategy,
        dict(r.plan),
        r.step,
        r.state,
        r.epoch,
        r.actor,
        r.reason,
        as_utc(r.started_at),
        as_utc(r.step_started_at),
        None if r.finished_at is None else as_utc(r.finished_at),
    )


class RolloutStore:
    """Rollouts of every model in one store. All methods are one transaction each."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(
        self,
        model: str,
        *,
        candidate: int,
        baseline: int | None,
        strategy: str,
        plan: Mapping[str, Any],
        actor: str,
        reason: str,
    ) -> RolloutInfo:
        """Start an active rollout at step 0, audited ``rollout.start``.

        Raises ConflictError when the model already has an active rollout.
        """

        def fn(s: Session) -> RolloutInfo:
            now = self.db.clock()
            row = Rollout(
                model=model,
                candidate=candidate,
                baseline=baseline,
                strategy=strategy,
                plan=dict(plan),
                step=0,
                state=ACTIVE,
                active_model=model,
                epoch=1,
                actor=actor,
                reason=reason,
                started_at=now,
                step_started_at=now,
                finished_at=None,
            )
            s.add(row)
            s.flush()
            append_event(
                s,
                at=now,
                actor=actor,
                action="rollout.start",
                subject=f"{model}:{candidate}",
                payload={
                    "rollout": row.id,
                    "strategy": strategy,
                    "baseline": baseline,
                    "plan": dict(plan),
                    "reason": reason,
                },
            )
            return _info(row)

        try:
            return self.db.transaction(fn)
        except IntegrityError as exc:
            active = self.active(model)
            what = f" (rollout {active.id} of version {active.candidate})" if active else ""
            raise ConflictError(
                f"model {model!r} already has an active rollout{what}; "
                f"finish or abort it first (retrainer rollout abort {model})"
            ) from exc

    def active(self, model: str) -> RolloutInfo | None:
        """The model's active rollout, or None."""

        def fn(s: Session) -> RolloutInfo | None:
            row = s.scalar(select(Rollout).where(Rollout.active_model == model))
            return None if row is None else _info(row)

        return self.db.transaction(fn)

    def latest(self, model: str) -> RolloutInfo | None:
        """The model's newest rollout, active or finished, or None."""

        def fn(s: Session) -> RolloutInfo | None:
            q = select(Rollout).where(Rollout.model == model).order_by(Rollout.id.desc()).limit(1)
            row = s.scalar(q)
            return None if row is None else _info(row)

        return self.db.transaction(fn)

    def of_version(self, model: str, version: int) -> list[RolloutInfo]:
        """Every rollout of ``model`` with ``version`` as candidate or baseline, oldest first."""

        def fn(s: Session) -> list[RolloutInfo]:
            q = (
                select(Rollout)
                .where(
                    Rollout.model == model,
                    or_(Rollout.candidate == version, Rollout.baseline == version),
                )
                .order_by(Rollout.id)
            )
            return [_info(r) for r in s.scalars(q)]

        return self.db.transaction(fn)

    def get(self, rollout_id: int) -> RolloutInfo:
        """One rollout. Raises NotFoundError."""

        def fn(s: Session) -> RolloutInfo:
            row = s.get(Rollout, rollout_id)
            if row is None:
                raise NotFoundError(f"no rollout {rollout_id}")
            return _info(row)

        return self.db.transaction(fn)

    def transition(
        self,
        current: RolloutInfo,
        *,
        actor: str,
        action: str,
        reason: str,
        step: int | None = None,
        state: str | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> RolloutInfo:
        """Move ``current`` to ``step`` and/or a final ``state``, if nobody moved it first.

        One transaction: CAS on the epoch, the new step (its clock restarts) or state,
        and the audit event ``action`` (subject ``MODEL:CANDIDATE``). Raises
        ConflictError (nothing changed) when the rollout moved meanwhile.
        """
        if state is not None and state not in _FINAL:
            raise ValueError(f"state: expected one of {', '.join(_FINAL)}, got {state!r}")

        def fn(s: Session) -> RolloutInfo:
            now = self.db.clock()
            values: dict[str, Any] = {"epoch": current.epoch + 1, "reason": reason}
            if step is not None:
                values |= {"step": step, "step_started_at": now}
            if state is not None:
                values |= {"state": state, "active_model": None, "finished_at": now}
            done = s.execute(
                update(Rollout)
                .where(
                    Rollout.id == current.id,
                    Rollout.epoch == current.epoch,
                    Rollout.state == ACTIVE,
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                raise ConflictError(
                    f"rollout {current.id} of {current.model} changed meanwhile; look again"
                )
            append_event(
                s,
                at=now,
                actor=actor,
                action=action,
                subject=f"{current.model}:{current.candidate}",
                payload={
                    "rollout": current.id,
                    "from_step": current.step,
                    "to_step": current.step if step is None else step,
                    "state": state or ACTIVE,
                    "reason": reason,
                    **(payload or {}),
                },
            )
            row = s.get(Rollout, current.id, populate_existing=True)
            assert row is not None
            return _info(row)

        return self.db.transaction(fn)

    def add_stats(self, rollout_id: int, step: int, stats: Mapping[int, TrafficStats]) -> None:
        """Add each version's stats to the step's totals, in one transaction."""

        def fn(s: Session) -> None:
            now = self.db.clock()
            for version, add in sorted(stats.items()):
                if not add.requests:
                    continue
                row = s.scalar(
                    select(RolloutStat)
                    .where(
                        RolloutStat.rollout_id == rollout_id,
                        RolloutStat.step == step,
                        RolloutStat.version == version,
                    )
                    .with_for_update()
                )
                if row is None:
                    s.add(
                        RolloutStat(
                            rollout_id=rollout_id,
                            step=step,
                            version=version,
                            requests=add.requests,
                            errors=add.errors,
                            latency=dict(add.latency),
                            predictions=dict(add.predictions),
                            updated_at=now,
                        )
                    )
                    s.flush()
                    continue
                total = _stats(row) + add
                row.requests, row.errors = total.requests, total.errors
                row.latency, row.predictions = dict(total.latency), dict(total.predictions)
                row.updated_at = now

        try:
            self.db.transaction(fn)
        except IntegrityError:  # two first flushes of one version raced: add again
            self.db.transaction(fn)

    def stats(self, rollout_id: int, step: int | None) -> dict[int, TrafficStats]:
        """Each version's totals for one step (``None``: over every step)."""

        def fn(s: Session) -> dict[int, TrafficStats]:
            q = select(RolloutStat).where(RolloutStat.rollout_id == rollout_id)
            if step is not None:
                q = q.where(RolloutStat.step == step)
            out: dict[int, TrafficStats] = {}
            for row in s.scalars(q.order_by(RolloutStat.step)):
                out[row.version] = out.get(row.version, TrafficStats()) + _stats(row)
            return out

        return self.db.transaction(fn)


def _stats(row: RolloutStat) -> TrafficStats:
    return TrafficStats(
        int(row.requests),
        int(row.errors),
        {str(k): int(v) for k, v in row.latency.items()},
        {str(k): int(v) for k, v in row.predictions.items()},
    )
