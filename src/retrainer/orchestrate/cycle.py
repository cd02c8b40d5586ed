"""One cycle of the loop for one model, as journaled, resumable steps.

``ingest -> contract -> monitor -> decide -> datasets -> train -> evaluate -> register
-> promote``. Each finished step is journaled with its output; a cycle that dies is
resumed by the next ``run_cycle`` from the first unfinished step, so finished work is
never repeated. One cycle per model runs at a time (a lease in the store). Whatever
fails, the champion alias only ever moves by the compare-and-swap of the last step,
so a failure at any step leaves the previous champion serving.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from retrainer.governance.config_audit import record_spec_change
from retrainer.orchestrate.lease import new_holder_id
from retrainer.orchestrate.steps import Steps, Stop, why
from retrainer.threads import model_threads

if TYPE_CHECKING:
    from retrainer.workspace import Workspace

__all__ = ["STEPS", "CycleResult", "StepCallback", "run_cycle"]

log = logging.getLogger(__name__)

STEPS = (
    "ingest",
    "contract",
    "monitor",
    "decide",
    "datasets",
    "train",
    "evaluate",
    "register",
    "promote",
)
StepCallback = Callable[[str, dict[str, Any]], None]
"""Called after each step is journaled with (step name, its output)."""


@dataclass(frozen=True)
class CycleResult:
    """How a cycle ended and what each step produced."""

    run_id: str
    model: str
    status: str  # succeeded | skipped | failed
    outcome: str
    resumed: bool
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def version(self) -> int | None:
        """The candidate version this cycle trained, if any."""
        return self.steps.get("train", {}).get("version")

    @property
    def promoted(self) -> bool:
        """True when this cycle moved the champion to its candidate."""
        return bool(self.steps.get("promote", {}).get("promoted"))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {**self.__dict__, "version": self.version, "promoted": self.promoted}


def run_cycle(
    ws: Workspace,
    *,
    actor: str,
    manual_reason: str | None = None,
    on_step: StepCallback | None = None,
    stop: Callable[[], bool] | None = None,
) -> CycleResult:
    """Run (or resume) one cycle for the workspace's model and return how it ended.

    Raises LeaseHeldError if another cycle of the model is running. A step's failure
    is journaled and audited, the run is marked failed, and the error is re-raised.
    ``stop`` is asked after each journaled step: when it returns True before the last
    step, the run is left ``running`` (the next cycle resumes it from the next step)
    and the result's status is ``interrupted``.
    """
    model = ws.spec.model.name
    holder = new_holder_id()
    lease = f"cycle:{model}"
    token = ws.leases.acquire(lease, holder)
    try:
        record_spec_change(ws, actor=actor)  # config changes are audited
        request = {"manual_reason": manual_reason} if manual_reason else {}
        run, resumed = ws.journal.open_run(model, actor=actor, request=request)
        cycle = Steps(ws, run.id, actor, run.trigger.get("manual_reason"), dict(run.steps))
        if resumed:
            log.info("resuming run %s after steps: %s", run.id, ", ".join(run.steps) or "none")
        status, outcome = "succeeded", ""
        for name in STEPS:
            if name in cycle.outputs:
                continue
            started = ws.db.clock()
            try:
                # small frames: one thread; training decides for itself by its frame's size
                with nullcontext() if name == "train" else model_threads():
                    output = getattr(cycle, f"step_{name}")()
            except Stop as stop:
                ws.journal.step_done(run.id, name, stop.output, started_at=started)
                cycle.outputs[name] = stop.output
                if on_step:
                    on_step(name, stop.output)
                status, outcome = stop.status, stop.outcome
                break
            except BaseException as exc:
                error = why(exc)
                ws.journal.finish(
                    run.id,
                    status="failed",
                    outcome=f"failed at step {name}",
                    actor=actor,
                    error=error,
                    failed_step=name,
                    traceback=_traceback(exc),
                )
                raise
            ws.journal.step_done(run.id, name, output, started_at=started)
            cycle.outputs[name] = output
            if on_step:
                on_step(name, output)
            ws.leases.renew(lease, holder, token)
            if stop is not None and name != STEPS[-1] and stop():
                after = STEPS[STEPS.index(name) + 1]
                log.info("run %s interrupted after step %s", run.id, name)
                outcome = (
                    f"interrupted after step {name}: run {run.id} stays open and the next "
                    f"cycle resumes it at step {after}"
                )
                return CycleResult(run.id, model, "interrupted", outcome, resumed, cycle.outputs)
        else:
            outcome = cycle.outputs["promote"]["outcome"]
        ws.journal.finish(run.id, status=status, outcome=outcome, actor=actor)
        return CycleResult(run.id, model, status, outcome, resumed, cycle.outputs)
    finally:
        ws.leases.release(lease, holder, token)


def _traceback(exc: BaseException, limit: int = 20_000) -> str:
    """The formatted traceback (with its causes: the user's code behind a TrainingError),
    its last ``limit`` characters."""
    text = "".join(traceback.format_exception(exc))
    return text if len(text) <= limit else "...\n" + text[-limit:]
