"""Evidence for the triggers: a champion's reference profile and CBPE calibration, and
what the retrain policy needs from versions and alias history (policy_evidence).

Both are built once, when a version becomes READY, from the rows it was trained on
(the profile) and its holdout (the calibration), stored as content-addressed artifacts
and named in the version's lineage. Checking a new batch then reads only those two
artifacts, never the training data again. A version made before they existed gets
them built on first use (from its training snapshot) and kept in memory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from retrainer.evaluate.metrics import METRICS
from retrainer.monitor.drift import DriftConfig, ReferenceProfile, drift_report
from retrainer.monitor.drift.partial import PartitionMapper
from retrainer.monitor.estimate import CBPE, CBPE_METRICS
from retrainer.monitor.triggers import DriftEvidence
from retrainer.registry.registry import CHAMPION, Registry
from retrainer.spec import PipelineSpec

if TYPE_CHECKING:
    from retrainer.registry.artifacts import ArtifactStore

__all__ = [
    "MonitorKit",
    "build_evidence",
    "cbpe_calibration",
    "drift_config",
    "drift_evidence",
    "policy_evidence",
    "reference_profile",
]

log = logging.getLogger(__name__)

PROFILE_KEY = "reference_profile_sha256"
CBPE_KEY = "cbpe_sha256"


def drift_config(spec: PipelineSpec) -> DriftConfig:
    """The spec's ``monitor.drift`` section as the drift report's config."""
    d = spec.monitor.drift
    return DriftConfig(
        alpha=d.alpha,
        correction=d.correction,
        min_samples=d.min_samples,
        numeric_test=d.numeric_test,
        numeric_effect=d.numeric.effect,  # type: ignore[arg-type]  # checked by the spec
        numeric_min_effect=d.numeric.min_effect,
        categorical_effect=d.categorical.effect,  # type: ignore[arg-type]
        categorical_min_effect=d.categorical.min_effect,
        domain_classifier=d.domain_classifier,
        seed=spec.train.seed,
    )


def reference_profile(
    spec: PipelineSpec, train: Any, executor: PartitionMapper | None = None
) -> ReferenceProfile:
    """The drift reference of a version: its training rows' profile, built partition by
    partition on ``executor`` (in place when None); the same bytes on every executor."""
    f = spec.model.features
    return ReferenceProfile.build(
        train,
        numeric=f.numeric,
        categorical=f.categorical,
        seed=spec.train.seed,
        profile_rows=spec.monitor.drift.profile_rows,
        executor=executor,
    )


def cbpe_calibration(spec: PipelineSpec, model: Any, holdout: pd.DataFrame) -> CBPE | None:
    """CBPE calibrated on ``model``'s holdout, or None (regression, other metric, too few)."""
    metric = spec.evaluate.metric
    if spec.model.task != "classification" or metric not in CBPE_METRICS:
        return None
    labelled = holdout[holdout[spec.model.target].notna()]
    try:
        proba = np.asarray(model.predict_proba(labelled[list(spec.model.features.all)]))
        if proba.ndim != 2 or proba.shape[1] != 2:
            return None  # CBPE is for binary classifiers
        return CBPE.fit(labelled[spec.model.target].to_numpy(), proba[:, 1], metric)
    except ValueError as exc:  # too few rows or one class: no estimate, said in the log
        log.info("no CBPE calibration for %s: %s", metric, exc)
        return None


def build_evidence(
    spec: PipelineSpec,
    artifacts: ArtifactStore,
    model: Any,
    train: Any,
    holdout: pd.DataFrame,
    *,
    executor: PartitionMapper | None = None,
) -> dict[str, str]:
    """Build, store and name (for the lineage) the profile and calibration of a version;
    ``train`` is a frame, or data in parts that ``executor`` reads."""
    out = {PROFILE_KEY: artifacts.put(reference_profile(spec, train, executor).to_bytes())}
    cbpe = cbpe_calibration(spec, model, holdout)
    if cbpe is not None:
        out[CBPE_KEY] = artifacts.put(cbpe.to_bytes())
    return out


@dataclass
class MonitorKit:
    """What the monitor checks batches with, for one champion version."""

    profile: ReferenceProfile
    cbpe: CBPE | None
    config: DriftConfig

    @classmethod
    def load(
        cls,
        spec: PipelineSpec,
        artifacts: ArtifactStore,
        lineage: dict[str, Any],
        *,
        what: str,
        train_frame: Any,
    ) -> MonitorKit:
        """From the version's lineage; ``train_frame()`` rebuilds a profile that is missing."""
        if PROFILE_KEY in lineage:
            data = artifacts.get(lineage[PROFILE_KEY], what=f"reference profile of {what}")
            profile = ReferenceProfile.from_bytes(data)
        else:
            log.info("%s has no stored reference profile; building it from its training rows", what)
            profile = reference_profile(spec, train_frame())
        cbpe = None
        if CBPE_KEY in lineage:
            cbpe = CBPE.from_bytes(artifacts.get(lineage[CBPE_KEY], what=f"CBPE of {what}"))
        return cls(profile, cbpe, drift_config(spec))

    def measure(
        self,
        spec: PipelineSpec,
        model: Any,
        batch: pd.DataFrame,
        *,
        proba: np.ndarray[Any, Any] | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """(drift report, estimated metrics) of ``model`` on ``batch``, JSON-ready.

        ``proba``: the positive-class probabilities of ``batch``'s rows when the caller has
        them already (the monitor scores the batch anyway), so the model predicts once.
        """
        report = drift_report(self.profile, batch, self.config).to_dict()
        if self.cbpe is None or len(batch) == 0:
            return report, None
        if proba is None or proba.ndim != 1:
            proba = np.asarray(model.predict_proba(batch[list(spec.model.features.all)]))[:, 1]
        est = self.cbpe.estimate(proba)
        return report, {
            est.metric: est.value,
            "lower": est.lower,
            "upper": est.upper,
            "rows": est.rows,
        }


def drift_evidence(drift: dict[str, Any] | None) -> DriftEvidence | None:
    """The trigger's view of a stored drift report."""
    if not drift:
        return None
    return DriftEvidence(
        drifted=tuple(drift.get("drifted", [])),
        share=float(drift.get("share_drifted") or 0.0),
        # the share's denominator; 0 when no feature could be judged (not "no drift")
        checked=int(drift.get("n_features") or 0) if drift.get("n_evaluated") else 0,
        domain_auc=drift.get("domain_auc"),
    )


def policy_evidence(
    registry: Registry, spec: PipelineSpec, champion: int | None, now: datetime
) -> dict[str, Any]:
    """What the schedule, ``drop`` and the retrain policy need: from versions and history."""
    versions = [v for v in registry.versions(spec.model.name) if v.status != "FAILED"]
    per = spec.retrain_policy.per
    fired = [  # every trigger that fired for a version, also those listed after the first
        t
        for v in versions
        for trig in [v.lineage.get("trigger") or {}]
        for t in [trig, *(trig.get("numbers") or {}).get("also", [])]
    ]
    ticks = [
        datetime.fromisoformat(t["numbers"]["tick"] if "numbers" in t else t["tick"])
        for t in fired
        if t.get("kind") == "schedule"
    ]
    moves = [m for m in registry.history(spec.model.name, CHAMPION) if m.to_version]
    holdout = {}
    if champion is not None:
        info = next((v for v in versions if v.version == champion), None)
        holdout = {
            k: float(v)
            for k, v in (info.metrics if info else {}).items()
            if k in METRICS and v is not None
        }
    return {
        "champion_holdout": holdout,
        "champion_since": moves[-1].at if moves else None,
        "last_training_at": max((v.created_at for v in versions), default=None),
        "retrains_in_period": sum(1 for v in versions if v.created_at > now - per),
        "last_schedule_tick": max(ticks, default=None),
    }
