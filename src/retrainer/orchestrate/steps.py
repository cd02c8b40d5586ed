"""The steps of one cycle: what each does, and the JSON it journals.

:class:`Steps` holds one run's state (its outputs so far, loaded frames and models);
``step_<name>`` returns the step's output or raises :class:`Stop` to end the cycle
early. :func:`~retrainer.orchestrate.cycle.run_cycle` runs them in order, journals each
and resumes a run from its first unfinished step.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from retrainer.data.ledger import SnapshotRecord
from retrainer.data.parts import ParquetFiles
from retrainer.data.screen import Reference, batch_flags, screen_pending
from retrainer.data.sources import BatchRef
from retrainer.deploy.store import RolloutStore
from retrainer.errors import ConflictError, DataSourceError, DiskFullError, RetrainerError
from retrainer.evaluate.compare import evaluate_candidate
from retrainer.evaluate.metrics import METRICS
from retrainer.evaluate.servability import StoredArtifact
from retrainer.governance.lineage import (
    fitted_lineage,
    missing_lineage,
    store_spec,
    training_lineage,
)
from retrainer.monitor.drift.partial import sample_rows
from retrainer.monitor.performance import model_outputs, realised_metrics
from retrainer.monitor.triggers import TriggerContext, decide
from retrainer.orchestrate.evidence import (
    MonitorKit,
    build_evidence,
    drift_evidence,
    policy_evidence,
)
from retrainer.orchestrate.promote_step import Promotion
from retrainer.orchestrate.step_data import StepData
from retrainer.registry import CHAMPION
from retrainer.registry.db import as_utc
from retrainer.spec import spec_hash
from retrainer.threads import model_threads
from retrainer.train.leakage import check_leakage
from retrainer.train.trainers import build_trainer
from retrainer.train.windows import training_sets

if TYPE_CHECKING:
    from retrainer.workspace import Workspace

__all__ = ["Steps", "Stop", "why"]

log = logging.getLogger(__name__)


class Stop(Exception):
    """A step ended the cycle early (nothing to do, duplicate evidence)."""

    def __init__(self, status: str, outcome: str, output: dict[str, Any]) -> None:
        super().__init__(outcome)
        self.status, self.outcome, self.output = status, outcome, output


def why(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, RetrainerError) else f"{type(exc).__name__}: {exc}"


class Steps(StepData, Promotion):
    """The steps of one run; each returns its JSON output (or raises Stop)."""

    def __init__(
        self,
        ws: Workspace,
        run_id: str,
        actor: str,
        manual_reason: str | None,
        outputs: dict[str, dict[str, Any]],
    ) -> None:
        self.ws, self.spec, self.run_id, self.actor = ws, ws.spec, run_id, actor
        self.model = ws.spec.model.name
        self.manual_reason = manual_reason
        self.outputs = outputs
        self._frames: dict[int, pd.DataFrame] = {}
        self._parts: dict[int, ParquetFiles | None] = {}
        self._models: dict[int, Any] = {}

    # -- helpers ----------------------------------------------------------------------

    def _load_version(self, version: int) -> Any:
        if version not in self._models:
            info = self.ws.registry.get(self.model, version)
            if info.artifact_sha256 is None:
                raise ConflictError(f"{self.model}:{version} has no artifact")
            self._models[version] = self._load_artifact(info.artifact_sha256, version)
        return self._models[version]

    def _load_artifact(self, sha256: str, version: int) -> Any:
        from retrainer.registry.serialization import load_model  # skops: slow to import

        data = self.ws.artifacts.get(sha256, what=f"model {self.model} v{version}")
        return load_model(data, extra_trusted=self.spec.train.trusted_types)

    # -- steps ------------------------------------------------------------------------

    def step_ingest(self) -> dict[str, Any]:
        source = self.ws.source()
        ledger = self.ws.ledger
        mark = ledger.watermark(self.model, source.uri)
        refs = source.discover(mark)
        received: list[tuple[BatchRef, SnapshotRecord | None, dict[str, Any]]] = []
        for ref in refs:
            try:
                frame = source.read(ref)
            except DataSourceError as exc:
                reasons: dict[str, Any] = {
                    "failures": [
                        {"check": "UNREADABLE", "column": None, "message": str(exc), "examples": []}
                    ]
                }
                received.append((ref, None, reasons))
                mark = source.advance(mark, ref, pd.DataFrame())
                continue
            try:
                snap = ledger.snapshot(
                    self.model, "batch", source.uri, frame, time_column=self.spec.data.time_column
                )
            except DataSourceError:  # no or unreadable time column: the contract names it
                snap = ledger.snapshot(self.model, "batch", source.uri, frame, time_column=None)
            self._remember(snap.id, frame)
            received.append((ref, snap, {}))
            mark = source.advance(mark, ref, frame)
        ids = ledger.record_batches(
            self.model, self.run_id, received, watermark=dict(mark or {}), actor=self.actor
        )
        return {"source": source.uri, "batches": ids}

    def step_contract(self) -> dict[str, Any]:
        def reference() -> Reference | None:
            champion = self.ws.registry.get_alias(self.model, CHAMPION)
            snap = None if champion is None else self._lineage(champion).get("train_snapshot")
            if snap is None:
                return None
            label = f"the champion's training data (v{champion})"
            return Reference(label, self._null_shares(int(snap)))

        return screen_pending(
            self.ws.ledger,
            self.spec,
            run_id=self.run_id,
            actor=self.actor,
            load=self._frame,
            reference=reference,
            remember=self._remember,
        )

    def _lineage(self, version: int) -> dict[str, Any]:
        return dict(self.ws.registry.get(self.model, version).lineage)

    def _trained_through(self) -> int | None:
        """The newest batch id any READY version was trained on (None before the first)."""
        ready = [v for v in self.ws.registry.versions(self.model) if v.status == "READY"]
        return max((int(v.lineage.get("max_batch_id", 0)) for v in ready), default=None)

    def step_monitor(self) -> dict[str, Any]:
        champion = self.ws.registry.get_alias(self.model, CHAMPION)
        if champion is None:
            return {"champion": None, "batches": []}
        metrics = {self.spec.evaluate.metric} | {
            t.performance.metric
            for t in self.spec.triggers
            if t.performance and t.performance.metric
        }
        m = self.spec.model
        info = self.ws.registry.get(self.model, champion)
        horizon = info.lineage.get("max_batch_id")
        rows = []
        kit: MonitorKit | None = None
        for batch in self.ws.ledger.unscored(self.model, champion, after_id=horizon):
            assert batch.snapshot_id is not None
            frame = self._frame(batch.snapshot_id)
            kit = kit or MonitorKit.load(
                self.spec,
                self.ws.artifacts,
                info.lineage,
                what=f"model {self.model} v{champion}",
                train_frame=lambda: self._frame(int(info.lineage["train_snapshot"])),
            )
            model, names = self._load_version(champion), sorted(metrics)
            outputs = model_outputs(model, frame, names, list(m.features.all))
            drift, estimated = kit.measure(self.spec, model, frame, proba=outputs.get("proba"))
            values = realised_metrics(frame, outputs, names, target=m.target)
            labelled = int(frame[m.target].notna().sum()) if m.target in frame else 0
            self.ws.ledger.record_score(
                self.model, champion, batch.id, values, labelled, drift=drift, estimated=estimated
            )
            rows.append(
                {
                    "id": batch.id,
                    "key": batch.batch_key,
                    "rows": len(frame),
                    "labelled": labelled,
                    "metrics": values,
                    "estimated": estimated,
                    "drift": {k: drift[k] for k in ("drifted", "share_drifted", "summary")},
                }
            )
        return {"champion": champion, "batches": rows}

    def step_decide(self) -> dict[str, Any]:
        reg, ledger = self.ws.registry, self.ws.ledger
        champion = reg.get_alias(self.model, CHAMPION)
        trained_through = self._trained_through()
        realised: dict[str, tuple[float, int]] = {}
        latest = (
            None
            if champion is None
            else ledger.latest_score(self.model, champion, after_id=trained_through)
        )
        estimated: dict[str, tuple[float, int]] = {}
        if latest is not None:
            realised = {k: (v, latest.labelled) for k, v in latest.metrics.items() if v is not None}
            est = latest.estimated or {}
            estimated = {
                k: (float(v), int(est["rows"]))
                for k, v in est.items()
                if k in METRICS and v is not None
            }
        now = as_utc(self.ws.db.clock())
        ctx = TriggerContext(
            has_champion=champion is not None,
            accepted_rows_total=ledger.rows_accepted_after(self.model, None),
            rows_since_last_training=ledger.rows_accepted_after(self.model, trained_through),
            realised=realised,
            estimated=estimated,
            drift=drift_evidence(latest.drift if latest else None),
            manual_reason=self.manual_reason,
            now=now,
            **policy_evidence(self.ws.registry, self.spec, champion, now),
        )
        waiting = self._awaiting_approval(champion)
        if waiting is not None and self.manual_reason is None:
            raise Stop(
                "succeeded",
                f"no retrain: version {waiting} awaits approval",
                {"fire": False, "kind": "none", "reason": f"version {waiting} awaits approval"},
            )
        rolling = RolloutStore(self.ws.db).active(self.model)
        if rolling is not None and self.manual_reason is None:
            why = f"version {rolling.candidate} is in a {rolling.strategy} rollout"
            raise Stop(
                "succeeded",
                f"no retrain: {why}",
                {"fire": False, "kind": "none", "reason": why},
            )
        decision = decide(self.spec, ctx)
        if not decision.fire:
            raise Stop("succeeded", f"no retrain: {decision.reason}", decision.to_dict())
        return decision.to_dict()

    def step_datasets(self) -> dict[str, Any]:
        spec, ledger = self.spec, self.ws.ledger
        batches = ledger.batches(self.model, status=("accepted", "released"))
        tcol = spec.data.time_column
        uri = f"{self.model}:accepted-batches"
        if self._in_parts:
            tsnap, hsnap, overlap = self._sets_in_parts(batches, uri)
        else:
            frames = [self._frame(b.snapshot_id) for b in batches if b.snapshot_id is not None]
            train, holdout, overlap = training_sets(pd.concat(frames, ignore_index=True), spec)
            tsnap = ledger.snapshot(self.model, "train", uri, train, time_column=tcol)
            hsnap = ledger.snapshot(self.model, "holdout", uri, holdout, time_column=tcol)
            self._frames[tsnap.id], self._frames[hsnap.id] = train, holdout
        kind = self.outputs["decide"]["kind"]
        key = hashlib.sha256(
            "\x1f".join(
                [self.model, tsnap.content_hash, hsnap.content_hash, kind, spec_hash(self.spec)]
            ).encode()
        ).hexdigest()
        output = {
            "train": tsnap.to_dict(),
            "holdout": hsnap.to_dict(),
            "max_batch_id": max(b.id for b in batches),
            "idempotency_key": key,
            "holdout_rows_dropped": overlap,
            "data_flags": {
                str(k): v
                for k, v in batch_flags(
                    ledger, batches, since=tsnap.time_min if tcol else None
                ).items()
            },
        }
        other = self.ws.journal.claim_key(self.run_id, key)
        if other is not None:
            raise Stop(
                "skipped",
                f"no retrain: run {other} already trained on the same evidence ({kind})",
                {**output, "duplicate_of": other},
            )
        return output

    def step_train(self) -> dict[str, Any]:
        reg = self.ws.registry
        live = {r.id for r in self.ws.journal.runs(self.model, status="running")} - {self.run_id}
        for v in reg.versions(self.model):  # attempts that died before they were registered
            if v.status == "PENDING" and v.run_id not in live:
                reg.set_status(
                    self.model,
                    v.version,
                    "FAILED",
                    actor=self.actor,
                    reason="interrupted before it was registered",
                )
        ds = self.outputs["datasets"]
        train_data = self._dataset(ds["train"]["id"])
        checked = train_data
        if not isinstance(checked, pd.DataFrame):  # the checks read a sample anyway
            limit, seed = self.spec.train.leakage.max_rows, self.spec.train.seed
            checked = sample_rows(self.ws.executor, checked, limit, seed=seed)
        leakage = check_leakage(
            checked,
            self.spec.model,
            self.spec.train.leakage,
            seed=self.spec.train.seed,
            holdout_rows_dropped=int(ds.get("holdout_rows_dropped", 0)),
        )
        trainer = build_trainer(self.spec.model, self.spec.train)
        lineage = training_lineage(self.ws, ds, self.outputs["decide"], leakage.to_dict())
        version = reg.create_version(
            self.model,
            run_id=self.run_id,
            actor=self.actor,
            params=trainer.describe(),
            lineage=lineage,
        )
        from retrainer.registry.serialization import dump_model  # skops: slow to import

        started = time.perf_counter()
        try:
            store_spec(self.ws)
            with model_threads(int(ds["train"]["row_count"])):
                fitted = self.ws.executor.fit(trainer, train_data, seed=self.spec.train.seed)
            sha = self.ws.artifacts.put(dump_model(fitted))
            fitted_info = fitted_lineage(fitted)
        except BaseException as exc:
            reg.set_status(self.model, version, "FAILED", actor=self.actor, reason=why(exc))
            if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                raise DiskFullError(f"no space left while training version {version}") from exc
            raise
        reg.attach_artifact(self.model, version, sha, actor=self.actor, lineage=fitted_info)
        self._models[version] = fitted
        return {
            "version": version,
            "sha256": sha,
            "seconds": round(time.perf_counter() - started, 3),
            "executor": self.ws.executor.name,
        }

    def step_evaluate(self) -> dict[str, Any]:
        version = self.outputs["train"]["version"]
        candidate = self._load_version_pending(version)
        champion_version = self.ws.registry.get_alias(self.model, CHAMPION)
        champion = None if champion_version is None else self._load_version(champion_version)
        artifact = StoredArtifact(
            self.ws.artifacts.uri,
            self.outputs["train"]["sha256"],
            base_dir=str(self.ws.root),
            trusted_types=tuple(self.spec.train.trusted_types),
        )
        try:
            record = evaluate_candidate(
                candidate,
                champion,
                self._judged(self.outputs["datasets"]["holdout"]["id"]),
                model=self.spec.model,
                evaluate=self.spec.evaluate,
                champion_version=champion_version,
                rng=np.random.default_rng(self.spec.train.seed),
                champion_holdout=self._own_holdout(champion_version),
                artifact=artifact,
            )
        except Exception as exc:  # the candidate cannot be judged: it never becomes READY
            self.ws.registry.set_status(
                self.model,
                version,
                "FAILED",
                actor=self.actor,
                reason=f"evaluation failed: {why(exc)}",
            )
            raise
        return {"decision": record.to_dict(), "champion": champion_version}

    def _own_holdout(self, version: int | None) -> pd.DataFrame | None:
        """The holdout ``version`` was judged on when it was trained, if still readable."""
        snap = None if version is None else self._lineage(version).get("holdout_snapshot")
        if snap is None:
            return None
        try:
            return self._judged(int(snap))
        except RetrainerError as exc:
            log.warning("holdout of version %s not readable: %s", version, exc)
            return None

    def _load_version_pending(self, version: int) -> Any:
        sha = self.outputs["train"]["sha256"]
        if version not in self._models:
            self._models[version] = self._load_artifact(sha, version)
        return self._models[version]

    def step_register(self) -> dict[str, Any]:
        version = self.outputs["train"]["version"]
        decision = self.outputs["evaluate"]["decision"]
        info = self.ws.registry.get(self.model, version)
        if info.status != "READY":  # not yet registered (a resumed run may find it READY)
            self.ws.artifacts.get(
                self.outputs["train"]["sha256"], what=f"model {self.model} v{version}"
            )
            metrics = {
                decision["metric"]: decision["candidate_metric"],
                "holdout_rows": decision["holdout_rows"],
            }
            ds = self.outputs["datasets"]
            derived = build_evidence(
                self.spec,
                self.ws.artifacts,
                self._load_version_pending(version),
                self._dataset(ds["train"]["id"]),
                self._judged(ds["holdout"]["id"]),
                executor=self.ws.executor,
            )
            self.ws.registry.mark_ready(
                self.model,
                version,
                metrics=metrics,
                decision=decision,
                actor=self.actor,
                lineage=derived,
                require=missing_lineage,
            )
        return {"version": version, "passed": decision["passed"]}
