"""Run a backtest: read the history once to check it, replay each policy (in parallel
processes when there are several), and assemble the result the CLI prints and saves.

Each worker process reads the spec and the history itself (cheaper than sending the
frames over a pipe, and the same rows by construction: the history is read the same
way) and reports its progress through a queue the parent turns into progress bars.
"""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_limits

from retrainer.backtest.history import BatchBy, load_history, split_batches
from retrainer.backtest.policies import Policy, policy_spec
from retrainer.backtest.replay import Replay
from retrainer.errors import SpecError
from retrainer.evaluate.decision import finite_or_none
from retrainer.evaluate.metrics import METRICS
from retrainer.spec import PipelineSpec, load_spec

__all__ = ["BacktestSettings", "run_backtest"]

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class BacktestSettings:
    """What to replay and how; the result repeats it under ``settings``."""

    spec: Path
    data: Path
    batch_by: BatchBy
    policies: list[Policy] = field(default_factory=list)
    time_column: str | None = None
    label_delay: int = 0
    warmup: int = 3
    min_labels: int = 20
    workers: int = 0
    """0: one process per policy, at most one per CPU; 1: in this process"""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out |= {
            "spec": str(self.spec),
            "data": str(self.data),
            "batch_by": str(self.batch_by),
            "policies": [p.name for p in self.policies],
        }
        return out


def _spec(settings: BacktestSettings) -> PipelineSpec:
    spec = load_spec(settings.spec)
    if settings.label_delay < 0:
        raise SpecError(f"--label-delay: expected 0 or more batches, got {settings.label_delay}")
    if settings.min_labels < 1:
        raise SpecError(f"--min-labels: expected at least 1, got {settings.min_labels}")
    return _with_time_column(spec, settings.time_column)


def _with_time_column(spec: PipelineSpec, column: str | None) -> PipelineSpec:
    """``spec`` with ``--time-column`` in place of ``data.time_column`` (when given)."""
    if column is None or column == spec.data.time_column:
        return spec
    data = spec.data.model_copy(update={"time_column": column})
    return spec.model_copy(update={"data": data})


def _batches(settings: BacktestSettings, spec: PipelineSpec) -> list[Any]:
    tcol = spec.data.time_column
    data = load_history(settings.data, time_column=tcol)
    missing = [c for c in [*spec.model.features.all, spec.model.target] if c not in data.columns]
    if missing:
        raise SpecError(
            f"--data {settings.data}: no column(s) {', '.join(missing)} that the spec's model "
            f"needs (columns: {', '.join(map(str, data.columns))})"
        )
    return split_batches(data, settings.batch_by, time_column=tcol)


def replay_policy(
    settings: BacktestSettings, policy: Policy, report: Callable[[int, int], None] | None
) -> dict[str, Any]:
    """Replay one policy from the files named in ``settings`` (runs in a worker process)."""
    main = _spec(settings)
    spec = _with_time_column(policy_spec(policy, main), settings.time_column)
    replay = Replay(
        spec,
        policy,
        _batches(settings, main),
        warmup=settings.warmup,
        label_delay=settings.label_delay,
        min_labels=settings.min_labels,
    )
    # One thread per policy: policies run side by side in processes, and OpenMP's
    # spinning threads under load made a 500-row predict_proba take half a second.
    with threadpool_limits(limits=1):
        return replay.run(report)


def _in_worker(settings: BacktestSettings, policy: Policy, q: Any) -> dict[str, Any]:
    return replay_policy(settings, policy, lambda done, total: q.put((policy.name, done, total)))


def run_backtest(settings: BacktestSettings, progress: Progress | None = None) -> dict[str, Any]:
    """Replay every policy of ``settings`` and return the JSON-ready result.

    Bad input (spec, data, policies, warm-up) is reported before any policy runs.
    """
    spec = _spec(settings)
    for policy in settings.policies:
        policy_spec(policy, spec)  # a bad spec:PATH fails now, not in a worker
    batches = _batches(settings, spec)
    if settings.warmup < 1 or settings.warmup >= len(batches):
        raise SpecError(
            f"--warmup {settings.warmup}: expected at least 1 and fewer than the "
            f"{len(batches)} batches the history makes with --batch-by {settings.batch_by}"
        )
    started = time.perf_counter()
    results = _run_all(settings, progress)
    target = spec.model.target
    strict: dict[str, Any] = finite_or_none(  # strict JSON: an undefined metric is null
        {
            "metric": spec.evaluate.metric,
            "higher_is_better": METRICS[spec.evaluate.metric].higher_is_better,
            "settings": settings.to_dict() | {"time_column": spec.data.time_column},
            "batches": [
                b.to_dict(target=target) | {"warmup": b.index < settings.warmup} for b in batches
            ],
            "policies": {p.name: results[p.name] for p in settings.policies},
            "wall_seconds": round(time.perf_counter() - started, 3),
        }
    )
    return strict


def _run_all(settings: BacktestSettings, progress: Progress | None) -> dict[str, dict[str, Any]]:
    policies = settings.policies
    workers = settings.workers or min(len(policies), os.cpu_count() or 1)
    if workers <= 1 or len(policies) == 1:
        return {p.name: replay_policy(settings, p, _reporter(progress, p.name)) for p in policies}
    ctx = get_context("spawn")  # no fork of a process that may hold threads
    with ctx.Manager() as manager, ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        q = manager.Queue()
        futures: dict[str, Future[dict[str, Any]]] = {
            p.name: pool.submit(_in_worker, settings, p, q) for p in policies
        }
        while not all(f.done() for f in futures.values()):
            _drain(q, progress, timeout=0.2)
        _drain(q, progress, timeout=0)
        return {name: f.result() for name, f in futures.items()}


def _reporter(progress: Progress | None, name: str) -> Callable[[int, int], None] | None:
    if progress is None:
        return None
    return lambda done, total: progress(name, done, total)


def _drain(q: Any, progress: Progress | None, *, timeout: float) -> None:
    try:
        item = q.get(timeout=timeout) if timeout else q.get_nowait()
        while True:
            if progress is not None:
                progress(*item)
            item = q.get_nowait()
    except queue.Empty:
        return
