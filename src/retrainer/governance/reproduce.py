"""Reproduce a version: retrain it from its recorded inputs and compare with what is stored.

:func:`reproduce` reads the version's recorded spec, training snapshot and holdout
snapshot from the artifact store and verifies each against its recorded hash first (a
changed input is reported and nothing is retrained). It then rebuilds the trainer from
that spec with the recorded seed, fits it on the training rows, loads the stored artifact
(hash-checked, trusted types from the workspace's spec) and predicts the holdout rows with
both. Predictions must be identical, or within a declared tolerance for estimators that are
not deterministic. The artifact bytes are compared too, but skops files are not
byte-deterministic (zip members are named after object ids and carry timestamps), so the
fitted state of the two models is compared instead and the report says so.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from pydantic import ValidationError

from retrainer.data.snapshot import frame_from_parquet, frame_sha256
from retrainer.errors import (
    ArtifactIntegrityError,
    NotFoundError,
    PolicyError,
    SpecError,
)
from retrainer.governance.lineage import code_state, fitted_lineage
from retrainer.governance.sameness import (
    PredictionComparison,
    compare_predictions,
    state_differences,
)
from retrainer.registry.registry import VersionInfo
from retrainer.spec import PipelineSpec, spec_hash
from retrainer.train.environment import capture_environment
from retrainer.train.trainers import build_trainer

if TYPE_CHECKING:
    from retrainer.workspace import Workspace

__all__ = [
    "InputCheck",
    "Reproduction",
    "environment_changes",
    "reproduce",
    "retrain_and_compare",
]

NOT_BYTE_DETERMINISTIC = (
    "skops files are not byte-deterministic (zip members are named after object ids and "
    "carry timestamps): the fitted state was compared instead"
)


@dataclass(frozen=True)
class InputCheck:
    """One recorded input, read back and hashed again."""

    what: str
    expected: str | None
    actual: str | None
    problem: str | None = None
    missing: bool = False

    @property
    def ok(self) -> bool:
        return self.problem is None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {**self.__dict__, "ok": self.ok}


@dataclass
class Reproduction:
    """What retraining a version from its recorded inputs gave."""

    model: str
    version: int
    spec_source: str
    inputs: list[InputCheck]
    predictions: PredictionComparison | None = None
    artifact: dict[str, Any] = field(default_factory=dict)
    params: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)

    @property
    def inputs_ok(self) -> bool:
        return all(check.ok for check in self.inputs)

    @property
    def verdict(self) -> str:
        """``identical``, ``within tolerance``, ``differ``, ``inputs changed`` (an input
        no longer matches its hash) or ``inputs missing`` (one is gone, e.g. purged)."""
        if any(not c.ok and not c.missing for c in self.inputs):
            return "inputs changed"
        if not self.inputs_ok:
            return "inputs missing"
        return "not compared" if self.predictions is None else self.predictions.verdict

    @property
    def ok(self) -> bool:
        """True when the retrained model predicts the holdout as the stored one does."""
        return self.verdict in ("identical", "within tolerance")

    @property
    def exit_code(self) -> int:
        """0 when reproduced; 5 (integrity) when an input changed, 3 (not found) when one
        is missing; 6 (policy) when the predictions differ."""
        return {
            "inputs changed": ArtifactIntegrityError.exit_code,
            "inputs missing": NotFoundError.exit_code,
        }.get(self.verdict, 0 if self.ok else PolicyError.exit_code)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "model": self.model,
            "version": self.version,
            "verdict": self.verdict,
            "ok": self.ok,
            "spec_source": self.spec_source,
            "inputs": [c.to_dict() for c in self.inputs],
            "predictions": None if self.predictions is None else self.predictions.to_dict(),
            "artifact": self.artifact,
            "params_differ": self.params,
            "environment_changes": self.drift,
        }


Progress = Callable[[str], None]


def reproduce(
    ws: Workspace,
    model: str,
    version: int,
    *,
    tolerance: float = 0.0,
    progress: Progress | None = None,
) -> Reproduction:
    """Retrain ``model`` ``version`` from its recorded spec, snapshots and seed, and
    compare the result with the stored artifact on the recorded holdout rows.

    Blocking (it trains a model). Changes nothing in the store.

    Raises:
        NotFoundError: the version, its artifact, a snapshot record or a lineage field
            needed to retrain it does not exist (an old version without a stored spec
            whose spec has changed since cannot be retrained as it was).
        SpecError: ``tolerance`` is negative, or the recorded spec no longer validates.
        TrainingError: the recorded estimator fails to train.
    """
    if tolerance < 0:
        raise SpecError(f"--tolerance: expected a number >= 0, got {tolerance}")
    say = progress or (lambda _: None)
    info = ws.registry.get(model, version)
    lin = info.lineage
    if info.artifact_sha256 is None:
        raise NotFoundError(f"{model}:{version} has no artifact: there is nothing to compare with")
    lacking = [k for k in ("train_snapshot", "holdout_snapshot", "train_sha256") if k not in lin]
    if lacking:
        raise NotFoundError(
            f"{model}:{version} lineage lacks {', '.join(lacking)}: it cannot be retrained"
        )
    say("verifying the recorded inputs")
    spec, spec_source, spec_check = _recorded_spec(ws, info)
    inputs = [spec_check]
    frames: dict[str, pd.DataFrame] = {}
    for kind in ("train", "holdout"):
        check, frame = _snapshot(ws, info, kind)
        inputs.append(check)
        if frame is not None:
            frames[kind] = frame
    stored_check, stored_bytes = _stored_artifact(ws, info)
    inputs.append(stored_check)
    report = Reproduction(model, version, spec_source, inputs)
    if not report.inputs_ok or stored_bytes is None:
        return report

    retrain_and_compare(
        report,
        spec=spec,
        lineage=lin,
        params=info.params,
        artifact_sha256=str(info.artifact_sha256),
        train=frames["train"],
        holdout=frames["holdout"],
        stored_bytes=stored_bytes,
        trusted_types=ws.spec.train.trusted_types,
        tolerance=tolerance,
        progress=say,
    )
    report.drift = environment_changes(lin, ws.root)
    return report


def retrain_and_compare(
    report: Reproduction,
    *,
    spec: PipelineSpec,
    lineage: dict[str, Any],
    params: dict[str, Any],
    artifact_sha256: str,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    stored_bytes: bytes,
    trusted_types: Sequence[str],
    tolerance: float,
    progress: Progress,
) -> None:
    """Retrain from verified inputs and fill ``report``'s predictions, artifact and
    params (not its environment changes). Blocking; the inputs must already be checked.

    Raises:
        TrainingError: the recorded estimator fails to train.
        UntrustedArtifactError: the stored model holds types outside ``trusted_types``.
    """
    from retrainer.registry.serialization import dump_model, load_model  # skops: slow import

    seed = int(lineage.get("seed", spec.train.seed))
    progress(f"retraining {report.model} v{report.version} on {len(train):,} rows (seed {seed})")
    trainer = build_trainer(spec.model, spec.train)
    fitted = trainer.fit(train, seed=seed)
    stored = load_model(stored_bytes, extra_trusted=trusted_types)
    progress(f"predicting {len(holdout):,} holdout rows with both models")
    features = list(spec.model.features.all)
    report.predictions = compare_predictions(stored, fitted, holdout, features, tolerance=tolerance)
    progress("comparing the artifacts")
    refit_sha = hashlib.sha256(dump_model(fitted)).hexdigest()
    differences = state_differences(stored, fitted)
    report.artifact = {
        "recorded_sha256": artifact_sha256,
        "retrained_sha256": refit_sha,
        "bytes_identical": refit_sha == artifact_sha256,
        "fitted_state": "identical" if not differences else "differs",
        "state_differences": differences,
        "note": None if refit_sha == artifact_sha256 else NOT_BYTE_DETERMINISTIC,
    }
    report.params = _param_differences(lineage, fitted, trainer.describe(), params)


def _recorded_spec(ws: Workspace, info: VersionInfo) -> tuple[PipelineSpec, str, InputCheck]:
    lin, name = info.lineage, f"{info.model}:{info.version}"
    recorded_hash = lin.get("spec_sha256")
    sha = lin.get("spec_artifact_sha256")
    if not sha:
        if recorded_hash and spec_hash(ws.spec) == recorded_hash:
            check = InputCheck("spec (the workspace's, same hash)", recorded_hash, recorded_hash)
            return ws.spec, "workspace spec (its sha256 matches the recorded spec_sha256)", check
        raise NotFoundError(
            f"{name} lineage lacks spec_artifact_sha256 (it predates stored specs) and the "
            f"workspace spec has changed since (sha256 {spec_hash(ws.spec)[:12]}, recorded "
            f"{str(recorded_hash)[:12]}): it cannot be retrained as it was"
        )
    try:
        data = ws.artifacts.get(sha, what=f"spec of {name}")
    except ArtifactIntegrityError as exc:
        return ws.spec, "recorded", InputCheck("spec", sha, _hash_on_disk(ws, sha), str(exc))
    except NotFoundError as exc:
        return ws.spec, "recorded", InputCheck("spec", sha, None, str(exc), missing=True)
    try:
        spec = PipelineSpec.model_validate(json.loads(data))
    except (ValidationError, ValueError) as exc:
        raise SpecError(f"the recorded spec of {name} no longer validates: {exc}") from exc
    return spec, "recorded", InputCheck("spec", sha, sha)


def _snapshot(
    ws: Workspace, info: VersionInfo, kind: str
) -> tuple[InputCheck, pd.DataFrame | None]:
    lin = info.lineage
    snap = ws.ledger.get_snapshot(int(lin[f"{kind}_snapshot"]))
    what = f"{kind} snapshot {snap.id} ({snap.row_count:,} rows)"
    expected = lin.get(f"{kind}_sha256")
    recorded_file = lin.get(f"{kind}_artifact_sha256") or snap.artifact_sha256
    if recorded_file != snap.artifact_sha256:
        problem = f"the store's record now points at file {snap.artifact_sha256[:12]}…, the "
        problem += f"version recorded {recorded_file[:12]}…"
        return InputCheck(what, expected, None, problem), None
    try:
        frame = frame_from_parquet(ws.artifacts.get(snap.artifact_sha256, what=what))
    except ArtifactIntegrityError:
        actual_file = _hash_on_disk(ws, snap.artifact_sha256)
        problem = (
            f"its stored file changed: the file recorded as sha256 {snap.artifact_sha256} "
            f"now hashes to {actual_file}; it was not used"
        )
        return InputCheck(what, expected, None, problem), None
    except NotFoundError as exc:
        return InputCheck(what, expected, None, str(exc), missing=True), None
    actual = frame_sha256(frame)
    if expected is not None and actual != expected:
        problem = f"its rows hash to {actual}, recorded {expected}; they were not used"
        return InputCheck(what, expected, actual, problem), None
    return InputCheck(what, expected, actual), frame


def _stored_artifact(ws: Workspace, info: VersionInfo) -> tuple[InputCheck, bytes | None]:
    sha = str(info.artifact_sha256)
    what = f"model artifact of {info.model}:{info.version}"
    try:
        return InputCheck("model artifact", sha, sha), ws.artifacts.get(sha, what=what)
    except ArtifactIntegrityError as exc:
        return InputCheck("model artifact", sha, _hash_on_disk(ws, sha), str(exc)), None
    except NotFoundError as exc:
        return InputCheck("model artifact", sha, None, str(exc), missing=True), None


def _hash_on_disk(ws: Workspace, sha: str) -> str | None:
    try:
        return hashlib.sha256(ws.artifacts.fs.cat_file(ws.artifacts.path_of(sha))).hexdigest()
    except OSError:
        return None


def _param_differences(
    lin: dict[str, Any], fitted: Any, described: dict[str, Any], recorded: dict[str, Any]
) -> list[str]:
    """Parameters of the retrained model that differ from the recorded ones."""
    out = []
    if described != recorded:
        out.append(f"trainer: recorded {recorded}, now {described}")
    want = lin.get("estimator_params")
    if isinstance(want, dict):
        got = fitted_lineage(fitted)["estimator_params"]
        for key in sorted(set(want) | set(got)):
            if want.get(key) != got.get(key):
                out.append(f"{key}: recorded {want.get(key)!r}, now {got.get(key)!r}")
    return out


def environment_changes(lin: dict[str, Any], root: Path | None) -> list[str]:
    """How this Python, these packages and (with ``root``, the workspace) this code differ
    from the recorded ones; without ``root`` the code is not compared."""
    was, now = lin.get("environment") or {}, capture_environment(root or Path.cwd())
    out = []
    if was.get("python") and was["python"] != now["python"]:
        out.append(f"python {was['python']} -> {now['python']}")
    for name, version in sorted((was.get("packages") or {}).items()):
        if now["packages"].get(name) != version:
            out.append(f"{name} {version} -> {now['packages'].get(name, 'not installed')}")
    if was.get("env_lock_sha256") and was["env_lock_sha256"] != now["env_lock_sha256"]:
        out.append("installed packages differ (env_lock_sha256)")
    if root is None:
        return out
    code, code_now = lin.get("code") or {}, code_state(root)
    if code.get("commit") and code.get("commit") != code_now.get("commit"):
        out.append(f"code commit {code['commit'][:12]} -> {str(code_now.get('commit'))[:12]}")
    if code_now.get("dirty"):
        out.append("the workspace's repository has uncommitted changes")
    return out
