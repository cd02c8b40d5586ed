"""Training lineage: what a version was made from, recorded so it can be checked and redone.

:func:`training_lineage` builds the lineage a version is created with (before its fit):
the train and holdout snapshots with their content hashes, the accepted batches whose
time range meets the rows kept (all of them for a window by rows), the spec (its
canonical JSON stored as an artifact, so a reproduction uses exactly that spec, not
today's file), the seed, the code (git commit and dirty flag of
the workspace's repository, or ``{"repository": false}``) and the environment (Python,
key packages, a hash of every installed package). :func:`fitted_lineage` adds what is
known only after the fit: every parameter of the fitted estimator or pipeline
(``get_params()``, made JSON-safe).

:data:`REQUIRED` lists the fields a version must have to become ``READY``;
:func:`missing_lineage` names those it lacks. The registry applies it when the cycle
marks a version ready (``Registry.mark_ready(require=missing_lineage)``).
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import math
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd

from retrainer.spec import PipelineSpec, spec_content, spec_hash
from retrainer.train.environment import capture_environment

if TYPE_CHECKING:
    from retrainer.workspace import Workspace

__all__ = [
    "REQUIRED",
    "code_state",
    "fitted_lineage",
    "json_safe",
    "missing_lineage",
    "spec_document",
    "store_spec",
    "training_lineage",
]

REQUIRED: Final[tuple[str, ...]] = (
    "train_snapshot",
    "train_sha256",
    "holdout_snapshot",
    "holdout_sha256",
    "spec_sha256",
    "spec_artifact_sha256",
    "code",
    "estimator_params",
    "seed",
    "environment.python",
    "environment.packages",
    "environment.env_lock_sha256",
)
"""Lineage fields (dotted paths) every ``READY`` version records. ``code`` is either
``{"repository": false}`` or holds ``commit`` and ``dirty`` as well."""

_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
_CHANGED_SHOWN = 20


def missing_lineage(
    lineage: Mapping[str, Any], metrics: Mapping[str, Any] | None = None
) -> list[str]:
    """The required fields ``lineage`` lacks (absent, None, '' or empty), in
    :data:`REQUIRED` order; ``metrics`` too when it is given and empty.

    Example:
        >>> missing_lineage({"seed": 0, "code": {"repository": True, "dirty": False}})[:3]
        ['train_snapshot', 'train_sha256', 'holdout_snapshot']
        >>> "code.commit" in missing_lineage({"code": {"repository": True, "dirty": False}})
        True
    """
    missing = [name for name in REQUIRED if _absent(_get(lineage, name))]
    code = lineage.get("code")
    if isinstance(code, Mapping) and code.get("repository") is not False:
        for key in ("commit", "dirty"):
            if _absent(code.get(key)):
                missing.append(f"code.{key}")
    elif "code" not in missing and not isinstance(code, Mapping):
        missing.append("code")
    if metrics is not None and not metrics:
        missing.append("metrics")
    return missing


def _get(data: Mapping[str, Any], dotted: str) -> Any:
    value: Any = data
    for part in dotted.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _absent(value: Any) -> bool:
    return value is None or (isinstance(value, str | dict | list | tuple) and len(value) == 0)


def code_state(folder: Path) -> dict[str, Any]:
    """The git repository holding ``folder``: its top folder, commit and whether tracked
    files differ from it (``dirty``; files under ``.retrainer/`` are not counted, untracked
    files neither). ``{"repository": False}`` outside a repository or without git."""
    top = _git(folder, "rev-parse", "--show-toplevel")
    commit = _git(folder, "rev-parse", "HEAD") if top else None
    if top is None or commit is None:
        return {"repository": False}
    status = _git(folder, "status", "--porcelain=v1", "-z", "--untracked-files=no") or ""
    state_dir = (folder.resolve() / ".retrainer").as_posix()
    changed: list[str] = []
    entries = iter(status.split("\0"))
    for entry in entries:
        if entry[:1] in ("R", "C"):
            next(entries, None)  # a rename or copy is followed by its source path
        path = entry[3:]
        if path and not (Path(top) / path).as_posix().startswith(state_dir + "/"):
            changed.append(path)
    return {
        "repository": True,
        "path": top,
        "commit": commit,
        "dirty": bool(changed),
        "changed": changed[:_CHANGED_SHOWN],
    }


def _git(cwd: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    text = out.stdout.strip("\n") if args[0] == "status" else out.stdout.strip()
    return text if out.returncode == 0 and (text or args[0] == "status") else None


def spec_document(spec: PipelineSpec) -> bytes:
    """The spec's canonical JSON as stored with a version, credentials written literally
    in URLs masked (``postgresql://user:secret@host`` -> ``postgresql://***@host``);
    ``${env:NAME}`` references are kept (they hold no secret); ``executor`` is left out,
    as from the hash (the lineage records it apart). Without literal credentials its
    sha256 is :func:`~retrainer.spec.spec_hash`."""
    data = _mask(spec_content(spec))
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return _USERINFO.sub(lambda m: m.group() if "${env:" in m.group() else "***@", value)
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    return value


def training_lineage(
    ws: Workspace,
    datasets: Mapping[str, Any],
    trigger: Mapping[str, Any],
    leakage: Mapping[str, Any],
) -> dict[str, Any]:
    """The lineage a version is created with, from the ``datasets`` step's output, the
    ``decide`` step's decision and the leakage report. Writes nothing: the spec document
    it names is stored by :func:`store_spec` (after the version exists, so that a failed
    write fails the version)."""
    spec = ws.spec
    train, holdout = datasets["train"], datasets["holdout"]
    max_batch = int(datasets["max_batch_id"])
    span = _span(train, holdout)
    batch_ids = [
        b.id
        for b in ws.ledger.batches(spec.model.name, status=("accepted", "released"))
        if b.snapshot_id is not None
        and b.id <= max_batch
        and _overlaps(ws.ledger.get_snapshot(b.snapshot_id).to_dict(), span)
    ]
    return {
        "train_snapshot": train["id"],
        "train_sha256": train["content_hash"],
        "train_artifact_sha256": train.get("artifact_sha256"),
        "holdout_snapshot": holdout["id"],
        "holdout_sha256": holdout["content_hash"],
        "holdout_artifact_sha256": holdout.get("artifact_sha256"),
        "holdout_rows": holdout["row_count"],
        "train_rows": train["row_count"],
        "time_range": [train["time_min"], train["time_max"]],
        "max_batch_id": max_batch,
        "batch_ids": batch_ids,
        "source": spec.data.source,
        "trigger": dict(trigger),
        "spec_sha256": spec_hash(spec),
        "spec_artifact_sha256": hashlib.sha256(spec_document(spec)).hexdigest(),
        "task": spec.model.task,
        "target": spec.model.target,
        "features": {
            "numeric": list(spec.model.features.numeric),
            "categorical": list(spec.model.features.categorical),
        },
        "seed": spec.train.seed,
        "executor": spec.executor,
        "code": {**code_state(ws.root), **_entrypoint(spec)},
        "environment": capture_environment(ws.root),
        "leakage": dict(leakage),
        "data_flags": datasets.get("data_flags", {}),
    }


def store_spec(ws: Workspace) -> str:
    """Store the workspace spec's document (idempotent: content-addressed); its sha256.

    Raises:
        DiskFullError: no space left; nothing was published.
    """
    return ws.artifacts.put(spec_document(ws.spec))


def _point(value: Any) -> tuple[str, float] | None:
    """A snapshot's time bound as (kind, number): a numeric time column's value, or a
    time's nanoseconds since the epoch (UTC). None when it is neither."""
    if value is None:
        return None
    with contextlib.suppress(TypeError, ValueError):
        return "number", float(value)
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        return None
    if pd.isna(stamp):
        return None
    stamp = stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp
    return "time", float(stamp.value)


Span = tuple[str, float, float]


def _span(*snaps: Mapping[str, Any]) -> Span | None:
    """The time range the training and holdout rows cover (None without a time column)."""
    lows = [_point(s.get("time_min")) for s in snaps]
    highs = [_point(s.get("time_max")) for s in snaps]
    points = [p for p in lows + highs if p is not None]
    if len(points) != 2 * len(snaps) or len({kind for kind, _ in points}) != 1:
        return None
    return points[0][0], min(v for _, v in points), max(v for _, v in points)


def _overlaps(snap: Mapping[str, Any], span: Span | None) -> bool:
    """Whether a batch's rows can be among those the window kept: its time range meets
    ``span`` (always True when either is unknown, e.g. a window by rows)."""
    low, high = _point(snap.get("time_min")), _point(snap.get("time_max"))
    if span is None or low is None or high is None or low[0] != span[0]:
        return True
    return low[1] <= span[2] and span[1] <= high[1]


def _entrypoint(spec: PipelineSpec) -> dict[str, Any]:
    """For an entrypoint trainer: its source file and that file's sha256."""
    if spec.train.entrypoint is None:
        return {}
    module = spec.train.entrypoint.split(":", 1)[0]
    try:
        from retrainer.train.trainers import import_object

        fn = import_object(spec.train.entrypoint, key="train.entrypoint")
        source = inspect.getsourcefile(fn)
        sha = hashlib.sha256(Path(source).read_bytes()).hexdigest() if source else None
    except Exception:  # noqa: BLE001 - lineage records what it can; training reports the error
        source, sha = None, None
    return {"entrypoint": {"module": module, "file": source, "sha256": sha}}


def fitted_lineage(fitted: Any) -> dict[str, Any]:
    """What only the fitted model tells: its class and every parameter (``get_params()``
    of the estimator or pipeline, estimators inside named by class), JSON-safe."""
    get_params = getattr(fitted, "get_params", None)
    name = _dotted(type(fitted))
    params = json_safe(get_params(deep=True)) if callable(get_params) else {}
    return {
        "estimator_class": name,
        "estimator_params": params or {"get_params": "not available", "class": name},
    }


def json_safe(value: Any) -> Any:
    """``value`` as JSON the store keeps on every dialect: estimators and classes by dotted
    name, numpy scalars as numbers, non-finite floats as strings, anything else by repr.

    Example:
        >>> from sklearn.linear_model import LogisticRegression
        >>> json_safe({"est": LogisticRegression(), "C": np.float64(1.0), "tol": float("nan")})
        {'est': 'sklearn.linear_model._logistic.LogisticRegression', 'C': 1.0, 'tol': 'nan'}
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, np.generic):
        return json_safe(value.item())
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, type) or callable(getattr(value, "get_params", None)):
        return _dotted(value if isinstance(value, type) else type(value))
    if isinstance(value, np.dtype):
        return str(value)
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{getattr(value, '__module__', '?')}.{value.__qualname__}"
    return repr(value)


def _dotted(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
