"""``retrainer quickstart``: stream 50 years of rainfall data through the real loop.

Each year of days arrives as one new batch file in the workspace; after each, one
cycle runs (ingest, contract, monitor, decide, train, evaluate, register, promote),
exactly as ``retrainer run`` would. One delivery has a renamed column and is
quarantined. Alongside, version 1 is scored on every batch as if nobody retrained,
which is the "without retraining" line of the report.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from retrainer.errors import SpecError
from retrainer.monitor.performance import realised_metric
from retrainer.orchestrate.cycle import CycleResult, run_cycle
from retrainer.quickstart.rainfall import CHANGE_ROW, load_rainfall
from retrainer.quickstart.workspace_init import BATCH_DIR, init_workspace, write_batch
from retrainer.registry.db import Clock, utc_now
from retrainer.registry.registry import CHAMPION
from retrainer.registry.serialization import load_model
from retrainer.threads import model_threads
from retrainer.workspace import STATE_DIR, Workspace

__all__ = ["BatchPoint", "QuickstartResult", "VersionRow", "run_quickstart", "story"]

MARKER = "quickstart.marker"
BROKEN_YEAR = 1960
"""The year whose delivery arrives with a renamed column (to show quarantine)."""


@dataclass(frozen=True)
class BatchPoint:
    """One year of data: who served it and how well, with and without retraining."""

    year: int
    rows: int
    status: str
    champion: int | None
    with_retraining: float | None
    without_retraining: float | None
    event: str


@dataclass(frozen=True)
class VersionRow:
    """One trained version: when, why and on which rows, and how it did."""

    version: int
    status: str
    trained_on: str
    train_rows: int
    trigger_kind: str
    trigger: str
    reason: str
    holdout_metric: float | None
    champion_metric: float | None
    decision: str
    promoted: bool


@dataclass
class QuickstartResult:
    """Everything the summary table and the HTML report show."""

    workspace: Path
    metric: str
    change_date: str
    points: list[BatchPoint] = field(default_factory=list)
    versions: list[VersionRow] = field(default_factory=list)
    seconds: float = 0.0
    report: Path | None = None
    waiting: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "workspace": str(self.workspace),
            "metric": self.metric,
            "change_date": self.change_date,
            "seconds": round(self.seconds, 1),
            "report": str(self.report) if self.report else None,
            "waiting_for_approval": self.waiting,
            "points": [asdict(p) for p in self.points],
            "versions": [asdict(v) for v in self.versions],
        }


ProgressCallback = Callable[[int, int, str], None]
"""Called with (batches done, batches in all, a one-line note)."""


def _prepare(directory: Path, approval: str) -> None:
    if directory.exists() and not directory.is_dir():
        raise SpecError(
            f"{directory} is a file, not a folder; choose a folder (retrainer quickstart DIR)"
        )
    if directory.exists() and any(directory.iterdir()):
        if not (directory / STATE_DIR / MARKER).exists():
            raise SpecError(
                f"{directory} exists and is not a quickstart workspace; "
                "choose another folder (retrainer quickstart DIR)"
            )
        shutil.rmtree(directory)
    init_workspace(directory, example="rainfall", warmup_years=0, approval=approval)
    (directory / STATE_DIR).mkdir(mode=0o700, exist_ok=True)
    (directory / STATE_DIR / MARKER).write_text("created by retrainer quickstart\n")


def run_quickstart(
    directory: Path,
    *,
    actor: str,
    warmup_years: int = 3,
    clock: Clock = utc_now,
    progress: ProgressCallback | None = None,
    approval: str = "auto",
) -> QuickstartResult:
    """Stream the rainfall years through the loop in ``directory`` (recreated if ours).

    With ``approval="manual"`` the stream stops at the first version that awaits
    approval (``result.waiting``): a person decides before the story goes on.
    """
    started = time.perf_counter()
    _prepare(directory, approval)
    data = load_rainfall()
    years = [(int(y), rows) for y, rows in data.groupby(data["date"].dt.year)]
    warmup = pd.concat([r for _, r in years[:warmup_years]])
    batches = [(years[0][0], warmup), *years[warmup_years:]]
    result = QuickstartResult(directory, "", str(data["date"].iloc[CHANGE_ROW].date()))
    with Workspace.open(directory, clock=clock) as ws:
        result.metric = ws.spec.evaluate.metric
        baseline: Any = None
        for done, (year, rows) in enumerate(batches, start=1):
            frame = rows.rename(columns={"dew_point": "dewpoint"}) if year == BROKEN_YEAR else rows
            write_batch(directory / BATCH_DIR, f"rain-{year}", frame)
            cycle = run_cycle(ws, actor=actor)
            if baseline is None and ws.registry.get_alias(ws.spec.model.name, CHAMPION) == 1:
                info = ws.registry.get(ws.spec.model.name, 1)
                assert info.artifact_sha256 is not None
                baseline = load_model(ws.artifacts.get(info.artifact_sha256, what="model v1"))
            point = _point(ws, year, rows, cycle, baseline)
            result.points.append(point)
            if progress:
                progress(done, len(batches), f"{year}: {point.event}")
            if cycle.steps.get("promote", {}).get("awaiting_approval"):
                result.waiting = cycle.version
                break
        result.versions = _versions(ws)
    result.seconds = time.perf_counter() - started
    return result


def _point(
    ws: Workspace, year: int, rows: pd.DataFrame, cycle: CycleResult, baseline: Any
) -> BatchPoint:
    spec = ws.spec
    monitored = cycle.steps.get("monitor", {}).get("batches", [])
    quarantined = cycle.steps.get("contract", {}).get("quarantined", [])
    with_rt = monitored[-1]["metrics"].get(spec.evaluate.metric) if monitored else None
    without = None
    if baseline is not None and monitored:
        with model_threads(len(rows)):
            without = realised_metric(
                baseline,
                rows,
                metric=spec.evaluate.metric,
                features=list(spec.model.features.all),
                target=spec.model.target,
            )
    if quarantined:
        event = f"quarantined: {quarantined[0]['why']}"
    elif cycle.version is not None:
        event = cycle.outcome
    else:
        event = cycle.outcome.removeprefix("no retrain: ")
    return BatchPoint(
        year=year,
        rows=len(rows),
        status="quarantined" if quarantined else "accepted",
        champion=cycle.steps.get("monitor", {}).get("champion"),
        with_retraining=with_rt,
        without_retraining=without,
        event=event,
    )


def _short_trigger(trigger: dict[str, Any]) -> str:
    kind, n = trigger.get("kind", ""), trigger.get("numbers", {})
    if kind == "performance":
        return f"{n['metric']} {n['value']:.3f} < {n['threshold']}"
    if kind == "data_volume":
        return f"{n['rows']} new rows"
    if kind == "bootstrap":
        return "first version"
    if kind == "drift":
        return f"drift {len(n['drifted'])}/{round(len(n['drifted']) / n['share'])} features"
    return str(trigger.get("reason", kind))


def story(result: QuickstartResult) -> list[str]:
    """What happened around the change, in a few plain sentences."""
    change_year = int(result.change_date[:4])
    lines = [f"The data changed on {result.change_date} (row 12,000)."]
    before = [p for p in result.points if p.year <= change_year and p.with_retraining is not None]
    first = next((p for p in result.points if p.year > change_year and p.champion), None)
    if first is None or not before:
        return lines
    typical = sum(p.with_retraining or 0 for p in before) / len(before)
    lines.append(
        f"On the first batch after it ({first.year}) champion v{first.champion} scored "
        f"{result.metric} {first.with_retraining:.3f} (before: {typical:.3f} on average)."
    )
    retrained = next(
        (
            v
            for v in result.versions
            if v.trigger_kind == "performance" and v.version > (first.champion or 0)
        ),
        None,
    )
    if retrained is not None and retrained.holdout_metric is not None:
        verdict = "promoted" if retrained.promoted else "not promoted"
        lines.append(
            f"That triggered a retrain: v{retrained.version} scored {retrained.holdout_metric:.3f} "
            f"against the champion's {retrained.champion_metric or 0:.3f} on the same holdout "
            f"rows, and was {verdict}."
        )
    return lines


def _versions(ws: Workspace) -> list[VersionRow]:
    model = ws.spec.model.name
    promoted = {m.to_version for m in ws.registry.history(model, CHAMPION)}
    rows = []
    for v in reversed(ws.registry.versions(model)):
        span = v.lineage.get("time_range") or [None, None]
        rows.append(
            VersionRow(
                version=v.version,
                status=v.status,
                trained_on=f"{str(span[0])[:7]}..{str(span[1])[:7]}",
                train_rows=int(v.lineage.get("train_rows", 0)),
                trigger_kind=str(v.lineage.get("trigger", {}).get("kind", "")),
                trigger=_short_trigger(v.lineage.get("trigger", {})),
                reason=str(v.lineage.get("trigger", {}).get("reason", "")),
                holdout_metric=v.decision.get("candidate_metric"),
                champion_metric=v.decision.get("champion_metric"),
                decision=str(v.decision.get("summary", "")),
                promoted=v.version in promoted,
            )
        )
    return rows
