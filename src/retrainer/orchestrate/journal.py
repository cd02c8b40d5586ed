"""The run journal: each cycle is a run, each finished step a row with its output.

A run that did not finish (the process died) stays ``running``; the next cycle for
the same model resumes it, skipping the steps already journaled and reusing their
outputs. Step outputs are JSON and must hold everything later steps need.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from retrainer.errors import NotFoundError
from retrainer.registry.audit import append_event
from retrainer.registry.db import Database, as_utc
from retrainer.registry.tables import Run, RunStep

__all__ = ["Journal", "RunState"]


@dataclass
class RunState:
    """A run and its journaled steps (name -> output), in order."""

    id: str
    model: str
    status: str
    actor: str
    trigger: dict[str, Any]
    started_at: datetime
    finished_at: datetime | None = None
    outcome: str | None = None
    error: str | None = None
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out = dict(self.__dict__)
        out["started_at"] = self.started_at.isoformat()
        out["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        return out


def _state(run: Run, steps: list[RunStep]) -> RunState:
    return RunState(
        run.id,
        run.model,
        run.status,
        run.actor,
        run.trigger,
        as_utc(run.started_at),
        as_utc(run.finished_at) if run.finished_at else None,
        run.outcome,
        run.error,
        {st.name: st.output for st in sorted(steps, key=lambda x: x.seq) if st.status == "done"},
    )


class Journal:
    """Runs and steps of one store (each method one transaction)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def open_run(self, model: str, *, actor: str, request: dict[str, Any]) -> tuple[RunState, bool]:
        """Resume the model's unfinished run, or start a new one. Returns (run, resumed)."""

        def fn(s: Session) -> tuple[RunState, bool]:
            run = s.scalar(
                select(Run)
                .where(Run.model == model, Run.status == "running")
                .order_by(Run.started_at.desc())
                .limit(1)
            )
            now = self.db.clock()
            if run is not None:
                append_event(
                    s,
                    at=now,
                    actor=actor,
                    action="run.resume",
                    subject=f"run/{run.id}",
                    payload={"model": model},
                )
                return _state(
                    run, list(s.scalars(select(RunStep).where(RunStep.run_id == run.id)))
                ), True
            run = Run(
                id=str(uuid.uuid4()),
                model=model,
                status="running",
                actor=actor,
                trigger=request,
                started_at=now,
            )
            s.add(run)
            s.flush()
            append_event(
                s,
                at=now,
                actor=actor,
                action="run.start",
                subject=f"run/{run.id}",
                payload={"model": model, "request": request},
            )
            return _state(run, []), False

        return self.db.transaction(fn)

    def step_done(
        self, run_id: str, name: str, output: dict[str, Any], *, started_at: datetime
    ) -> None:
        """Journal a finished step (idempotent per run and step name)."""

        def fn(s: Session) -> None:
            row = s.get(RunStep, (run_id, name))
            seq = s.scalar(
                select(func.count()).select_from(RunStep).where(RunStep.run_id == run_id)
            )
            if row is None:
                s.add(
                    RunStep(
                        run_id=run_id,
                        name=name,
                        seq=int(seq or 0),
                        status="done",
                        output=output,
                        started_at=started_at,
                        finished_at=self.db.clock(),
                    )
                )
            else:
                row.status, row.output, row.finished_at = "done", output, self.db.clock()

        self.db.transaction(fn)

    def claim_key(self, run_id: str, key: str) -> str | None:
        """Give the run its idempotency key; return the id of another run holding it."""

        def holder(s: Session) -> str | None:
            return s.scalar(select(Run.id).where(Run.idempotency_key == key))

        def claim(s: Session) -> None:
            run = s.get(Run, run_id)
            assert run is not None
            run.idempotency_key = key

        current = self.db.transaction(holder)
        if current is not None:
            return None if current == run_id else current
        try:
            self.db.transaction(claim)
        except IntegrityError:
            return self.db.transaction(holder)
        return None

    def finish(
        self,
        run_id: str,
        *,
        status: str,
        outcome: str,
        actor: str,
        error: str | None = None,
        failed_step: str | None = None,
        traceback: str | None = None,
    ) -> None:
        """Close the run as ``succeeded``, ``skipped`` or ``failed`` (audited).

        ``traceback`` is kept in the failed step's output (not in the audit event)."""

        def fn(s: Session) -> None:
            run = s.get(Run, run_id)
            if run is None:
                raise NotFoundError(f"no run {run_id}")
            now = self.db.clock()
            run.status, run.outcome, run.error, run.finished_at = status, outcome, error, now
            if status == "failed":  # a failed run must not block a retry on the same evidence
                run.idempotency_key = None
            if failed_step is not None:
                s.merge(
                    RunStep(
                        run_id=run_id,
                        name=failed_step,
                        seq=999,
                        status="failed",
                        output={"error": error, "traceback": traceback},
                        started_at=now,
                        finished_at=now,
                    )
                )
            append_event(
                s,
                at=now,
                actor=actor,
                action=f"run.{status}",
                subject=f"run/{run_id}",
                payload={"model": run.model, "outcome": outcome, "error": error},
            )

        self.db.transaction(fn)

    def get(self, run_id: str) -> RunState:
        """One run with its steps. Raises NotFoundError."""

        def fn(s: Session) -> RunState:
            run = s.get(Run, run_id)
            if run is None:
                raise NotFoundError(f"no run {run_id!r}")
            return _state(run, list(s.scalars(select(RunStep).where(RunStep.run_id == run_id))))

        return self.db.transaction(fn)

    def runs(
        self, model: str | None = None, *, limit: int = 20, status: str | None = None
    ) -> list[RunState]:
        """Newest runs first (without step outputs), optionally only those in ``status``."""

        def fn(s: Session) -> list[RunState]:
            q = select(Run)
            if model is not None:
                q = q.where(Run.model == model)
            if status is not None:
                q = q.where(Run.status == status)
            rows = s.scalars(q.order_by(Run.started_at.desc()).limit(limit)).all()
            return [_state(r, []) for r in rows]

        return self.db.transaction(fn)
