"""One policy replayed over a history, through the code production runs.

After the warm-up batches train version 1, each later batch ``t``:

1. is answered by the serving champion; its metric on ``t``'s labelled rows is the
   policy's score for the batch (the backtest's own yardstick: the policy never sees it);
2. becomes known to the policy (a :class:`Known` view): ``t``'s features now, its labels
   ``label_delay`` batches later. The monitor reads only this view: drift of ``t``
   against the champion's reference profile, the CBPE estimate on ``t``, the realised
   metric on the newest batch whose labels are in;
3. the policy decides (for ``spec``: :func:`retrainer.monitor.triggers.decide` with
   the spec's triggers, cooldown and limits on the batches' own clock);
4. a retrain selects the spec's window from the known, labelled, accepted batches
   (:func:`retrainer.train.windows.training_sets`), checks leakage, fits with the
   spec's trainer and, for gated policies, judges the candidate against the champion
   with :func:`retrainer.evaluate.compare.evaluate_candidate`. A promoted version
   serves from batch ``t + 1``.

Batches are screened with the spec's data contract; one that fails is quarantined:
still answered and scored (the model serves whatever arrives), never trained on or
monitored. Nothing is written anywhere: no store, no artifacts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from retrainer.backtest.history import Batch
from retrainer.backtest.policies import Policy
from retrainer.data.contract import check_batch
from retrainer.errors import RetrainerError, TrainingError
from retrainer.evaluate.compare import evaluate_candidate
from retrainer.evaluate.metrics import METRICS
from retrainer.monitor.performance import model_outputs, realised_metrics
from retrainer.monitor.triggers import TriggerContext, TriggerDecision, decide
from retrainer.orchestrate.evidence import (
    MonitorKit,
    cbpe_calibration,
    drift_config,
    drift_evidence,
    reference_profile,
)
from retrainer.spec import PipelineSpec
from retrainer.train.leakage import check_leakage
from retrainer.train.trainers import build_trainer
from retrainer.train.windows import training_sets

__all__ = ["Known", "Replay"]

Progress = Callable[[int, int], None]


@dataclass
class Version:
    """A model the replay trained: what it was trained on, and what it is judged by."""

    number: int
    model: Any
    train: pd.DataFrame
    holdout: pd.DataFrame
    through: int
    trained_at: datetime | None
    holdout_metric: float | None = None
    _kit: MonitorKit | None = None

    def kit(self, spec: PipelineSpec) -> MonitorKit:
        """Reference profile and CBPE, built once (as production does at READY)."""
        if self._kit is None:
            self._kit = MonitorKit(
                reference_profile(spec, self.train),
                cbpe_calibration(spec, self.model, self.holdout),
                drift_config(spec),
            )
        return self._kit


@dataclass(frozen=True)
class Known:
    """What the policy may know after batch ``now`` arrived: batches up to ``now``, the
    labels of those up to ``now - label_delay`` only."""

    batches: tuple[Batch, ...]
    labelled_through: int
    target: str

    @property
    def now(self) -> int:
        return len(self.batches) - 1

    def frame(self, index: int) -> pd.DataFrame:
        """Batch ``index`` as known now: without labels while they are still to come."""
        frame = self.batches[index].frame
        if index <= self.labelled_through or self.target not in frame:
            return frame
        return frame.assign(**{self.target: np.nan})


@dataclass
class Tally:
    """Counts and the per-batch record of one policy."""

    retrains: int = 0
    promotions: int = 0
    train_seconds: float = 0.0
    per_batch: list[dict[str, Any]] = field(default_factory=list)


class Replay:
    """Replays ``batches`` under ``policy`` with ``spec`` (see the module docstring)."""

    def __init__(
        self,
        spec: PipelineSpec,
        policy: Policy,
        batches: list[Batch],
        *,
        warmup: int,
        label_delay: int,
        min_labels: int,
    ) -> None:
        if warmup < 1 or warmup >= len(batches):
            raise TrainingError(
                f"--warmup {warmup}: expected at least 1 and fewer than the "
                f"{len(batches)} batches of the history"
            )
        self.spec, self.policy, self.batches = spec, policy, batches
        self.warmup, self.delay, self.min_labels = warmup, label_delay, min_labels
        m = spec.model
        self.features, self.target = list(m.features.all), m.target
        self.metric = spec.evaluate.metric
        self.watched = sorted(
            {self.metric}
            | {
                t.performance.metric
                for t in spec.triggers
                if t.performance and t.performance.metric
            }
        )
        self.trainer = build_trainer(m, spec.train)
        self.accepted = [self._screen(b) for b in batches]
        self.trainings: list[datetime | None] = []  # when each version was trained
        self.trained_through = -1
        self.ticks: list[datetime] = []
        self.champion_since: datetime | None = None
        self.warmup_seconds = 0.0
        self._outputs: dict[tuple[int, int], dict[str, np.ndarray[Any, Any]]] = {}

    # -- the replay -------------------------------------------------------------------

    def run(self, progress: Progress | None = None) -> dict[str, Any]:
        """The policy's result: counts and one record per batch after the warm-up."""
        started = time.perf_counter()
        champion = self._bootstrap()
        tally = Tally()
        total = len(self.batches) - self.warmup
        for t in range(self.warmup, len(self.batches)):
            record = self._serve(champion, t)
            known = Known(tuple(self.batches[: t + 1]), t - self.delay, self.target)
            champion = self._step(champion, known, record, tally)
            tally.per_batch.append(record)
            if progress is not None:
                progress(t - self.warmup + 1, total)
        return self._summary(tally, time.perf_counter() - started)

    def _bootstrap(self) -> Version:
        refused = [(i, why) for i, why in enumerate(self.accepted[: self.warmup]) if why]
        if len(refused) == self.warmup:
            first, why = refused[0]
            raise TrainingError(
                f"policy {self.policy.name}: none of the {self.warmup} warm-up batches passed "
                f"the data contract (batch {first}: {why}); cut bigger batches (--batch-by) "
                "or use more --warmup batches"
            )
        known = Known(tuple(self.batches[: self.warmup]), self.warmup - 1, self.target)
        version, seconds, record = self._train(known, champion=None)
        self.warmup_seconds = seconds
        if record is not None and not record.passed:
            raise TrainingError(
                f"policy {self.policy.name}: the warm-up model failed its gates "
                f"({record.summary()}); use more --warmup batches or check the spec"
            )
        self.champion_since = version.trained_at
        return version

    def _serve(self, champion: Version, t: int) -> dict[str, Any]:
        """The champion answers batch ``t``; scored on its labels (which the policy never
        sees here)."""
        frame = self.batches[t].frame
        labelled = int(frame[self.target].notna().sum()) if self.target in frame else 0
        record: dict[str, Any] = {
            "index": t,
            "metric": None,
            "labelled": labelled,
            "model_version": champion.number,
            "accepted": self.accepted[t] is None,
            "retrained": False,
            "promoted": False,
        }
        try:
            outputs = self._outputs_of(champion, t)
        except Exception as exc:  # noqa: BLE001 - e.g. infinity in a quarantined batch
            record["error"] = f"version {champion.number} could not answer: {exc}"
            return record
        if labelled >= self.min_labels:
            values = realised_metrics(frame, outputs, [self.metric], target=self.target)
            record["metric"] = values[self.metric]
        return record

    def _step(
        self, champion: Version, known: Known, record: dict[str, Any], tally: Tally
    ) -> Version:
        decision = self._decide(champion, known, record)
        if decision is None or not decision.fire:
            if decision is not None:
                record["reason"] = decision.reason
            if self.accepted[known.now] is not None:
                record["reason"] = f"quarantined: {self.accepted[known.now]}"
            return champion
        record["trigger"], record["reason"] = decision.kind, decision.reason
        if decision.kind == "schedule" or any(
            a.get("kind") == "schedule" for a in decision.numbers.get("also", [])
        ):
            self.ticks.append(_tick(decision))
        fresh = range(self.trained_through + 1, known.labelled_through + 1)
        if not any(self.accepted[i] is None for i in fresh):  # never twice on the same data
            record["reason"] += "; no retrain: no new labelled batch since the last training"
            return champion
        try:
            version, seconds, judged = self._train(known, champion=champion)
        except RetrainerError as exc:  # the champion keeps serving, as in production
            record["error"] = str(exc)
            return champion
        tally.retrains += 1
        tally.train_seconds += seconds
        record["retrained"] = True
        record["candidate"] = {"version": version.number, "holdout_metric": version.holdout_metric}
        if judged is not None:
            record["candidate"] |= {
                "champion_metric": judged.champion_metric,
                "passed": judged.passed,
                "summary": judged.summary(),
            }
            if not judged.passed:
                return champion
        tally.promotions += 1
        record["promoted"] = True
        self.champion_since = version.trained_at
        return version

    def _decide(
        self, champion: Version, known: Known, record: dict[str, Any]
    ) -> TriggerDecision | None:
        """The policy's decision after batch ``known.now``; None where it has nothing to
        decide (``never``)."""
        kind, t = self.policy.kind, known.now
        if kind == "every_batch":
            return TriggerDecision(True, "every_batch", "retrain after every batch")
        if kind == "periodic":
            due = (t - self.warmup + 1) % self.policy.every == 0
            reason = f"every {self.policy.every} batches"
            return TriggerDecision(due, "periodic" if due else "none", reason)
        if self.accepted[t] is not None:
            return None  # quarantined: the monitor never sees it
        ctx = self._context(champion, known, record)
        return None if kind == "never" else decide(self.spec, ctx)

    def _context(self, champion: Version, known: Known, record: dict[str, Any]) -> TriggerContext:
        """What production's monitor and decide steps would know (the Known view only)."""
        t = known.now
        frame = known.frame(t)
        proba = self._outputs_of(champion, t).get("proba")
        drift, estimated = champion.kit(self.spec).measure(
            self.spec, champion.model, frame, proba=proba
        )
        record["drift_share"] = drift.get("share_drifted")
        record["drifted"] = drift.get("drifted", [])
        est: dict[str, tuple[float, int]] = {}
        if estimated is not None:
            record["estimated"] = estimated.get(self.metric)
            est = {
                k: (float(v), int(estimated["rows"]))
                for k, v in estimated.items()
                if k in METRICS and v is not None
            }
        now = _clock(self.batches[t].end)
        accepted_rows = [len(b.frame) for b in known.batches if self.accepted[b.index] is None]
        return TriggerContext(
            has_champion=True,
            accepted_rows_total=sum(accepted_rows),
            rows_since_last_training=sum(
                len(b.frame)
                for b in known.batches[self.trained_through + 1 :]
                if self.accepted[b.index] is None
            ),
            realised=self._realised(champion, known),
            estimated=est,
            drift=drift_evidence(drift),
            now=now,
            champion_holdout=(
                {} if champion.holdout_metric is None else {self.metric: champion.holdout_metric}
            ),
            champion_since=self.champion_since,
            last_training_at=max((at for at in self.trainings if at), default=None),
            retrains_in_period=sum(
                1
                for at in self.trainings
                if now is not None and at is not None and at > now - self.spec.retrain_policy.per
            ),
            last_schedule_tick=max(self.ticks, default=None),
        )

    def _realised(self, champion: Version, known: Known) -> dict[str, tuple[float, int]]:
        """The champion's metrics on the newest accepted batch whose labels are in, after
        the newest training (as production's monitor scores batches)."""
        for s in range(known.labelled_through, self.trained_through, -1):
            if s < 0 or self.accepted[s] is not None:
                continue
            frame = known.frame(s)
            values = realised_metrics(
                frame, self._outputs_of(champion, s), self.watched, target=self.target
            )
            labelled = int(frame[self.target].notna().sum()) if self.target in frame else 0
            return {k: (v, labelled) for k, v in values.items() if v is not None}
        return {}

    # -- training ---------------------------------------------------------------------

    def _train(self, known: Known, *, champion: Version | None) -> tuple[Version, float, Any]:
        """Fit a version on the known, labelled, accepted batches; judge it when gated.

        Returns (version, CPU seconds of the fit, decision record or None)."""
        through = known.labelled_through
        data = self._window_rows(known, through)
        spec = self.spec
        train, holdout, dropped = training_sets(data, spec)
        check_leakage(
            train,
            spec.model,
            spec.train.leakage,
            seed=spec.train.seed,
            holdout_rows_dropped=dropped,
        )
        cpu = time.process_time()
        fitted = self.trainer.fit(train, seed=spec.train.seed)
        seconds = time.process_time() - cpu
        version = Version(
            number=len(self.trainings) + 1,
            model=fitted,
            train=train,
            holdout=holdout,
            through=through,
            trained_at=_clock(self.batches[known.now].end),
        )
        self.trainings.append(version.trained_at)  # only the champion's Version is kept
        self.trained_through = through
        record = None
        if self.policy.gated or champion is None:
            record = evaluate_candidate(
                fitted,
                None if champion is None else champion.model,
                holdout,
                model=spec.model,
                evaluate=spec.evaluate,
                champion_version=None if champion is None else champion.number,
                rng=np.random.default_rng(spec.train.seed),
                champion_holdout=None if champion is None else champion.holdout,
            )
            version.holdout_metric = record.candidate_metric
        return version, seconds, record

    def _window_rows(self, known: Known, through: int) -> pd.DataFrame:
        """Accepted batches up to ``through`` in arrival order, from the first one the
        spec's window can reach (older ones cannot contribute a row)."""
        usable = [b for b in known.batches[: through + 1] if self.accepted[b.index] is None]
        if not usable:
            raise TrainingError("no accepted batch with labels to train on yet")
        window, tcol = self.spec.data.window, self.spec.data.time_column
        first = 0
        if window.last is not None and tcol is not None and usable[-1].end is not None:
            cut = usable[-1].end - window.last
            first = next(
                (i for i, b in enumerate(usable) if b.end is not None and b.end > cut),
                len(usable) - 1,
            )
        if window.rows is not None:
            rows, start = 0, len(usable)
            while start > first and rows < window.rows:
                start -= 1
                rows += len(usable[start].frame)
            first = start
        frames = [known.frame(b.index) for b in usable[first:]]
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

    # -- helpers ----------------------------------------------------------------------

    def _outputs_of(self, version: Version, t: int) -> dict[str, np.ndarray[Any, Any]]:
        key = (version.number, t)
        if key not in self._outputs:
            self._outputs = {k: v for k, v in self._outputs.items() if k[1] >= t - self.delay - 1}
            self._outputs[key] = model_outputs(
                version.model, self.batches[t].frame, self.watched, self.features
            )
        return self._outputs[key]

    def _screen(self, batch: Batch) -> str | None:
        """None when the batch passes the data contract, else its first failure."""
        m = self.spec.model
        report = check_batch(
            batch.frame,
            self.spec.contract,
            required_columns=[m.target],
            numeric_columns=m.features.numeric,
            categorical_columns=m.features.categorical,
            time_column=self.spec.data.time_column,
        )
        return None if report.passed else report.summary().splitlines()[0]

    def _summary(self, tally: Tally, wall: float) -> dict[str, Any]:
        scored = [r["metric"] for r in tally.per_batch if r["metric"] is not None]
        higher = METRICS[self.metric].higher_is_better
        return {
            "description": self.policy.describe(),
            "mean": float(np.mean(scored)) if scored else None,
            "worst": (min(scored) if higher else max(scored)) if scored else None,
            "scored_batches": len(scored),
            "retrains": tally.retrains,
            "promotions": tally.promotions,
            "train_seconds": round(tally.train_seconds, 3),
            "warmup_train_seconds": round(self.warmup_seconds, 3),
            "wall_seconds": round(wall, 3),
            "per_batch": tally.per_batch,
        }


def _clock(end: pd.Timestamp | None) -> datetime | None:
    """A batch's end as the replay's clock (UTC; naive times are taken as UTC)."""
    if end is None:
        return None
    stamp = end if end.tzinfo is not None else end.tz_localize("UTC")
    return stamp.tz_convert("UTC").to_pydatetime()


def _tick(decision: TriggerDecision) -> datetime:
    fired = [decision.numbers, *decision.numbers.get("also", [])]
    tick = next(n["tick"] for n in fired if "tick" in n)
    return datetime.fromisoformat(tick).astimezone(UTC)
