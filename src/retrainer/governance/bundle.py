"""Reproduction bundles: one version's recorded inputs as a portable folder or ``.zip``.

:func:`export_bundle` copies what :func:`~retrainer.governance.reproduce.reproduce` reads
from the store (the recorded spec, the train and holdout snapshot files, the model
artifact), each verified against the hash the version recorded, together with the
version's lineage, approvals and recorded environment, a README and a ``MANIFEST.json``
holding every file's sha256 and size. :mod:`.bundle_read` reads a bundle back (manifest
first) and reproduces the version from it, without a workspace.

Files (flat: no member has a folder, ``..`` or an absolute path)::

    retrainer.yaml    the recorded spec (literal credentials masked, ${env:NAME} kept)
    train.parquet     the training rows, as stored
    holdout.parquet   the holdout rows, as stored
    model.skops       the model artifact
    lineage.json      version record, full lineage, params, metrics, decision, approvals,
                      data, run and deployments (as ``retrainer lineage --json``)
    environment.txt   the recorded Python and package versions
    README.md         how to reproduce from the bundle
    MANIFEST.json     {"format", "model", "version", "files": {name: {sha256, size}}}
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from retrainer.data.snapshot import frame_from_parquet, frame_sha256
from retrainer.errors import ArtifactIntegrityError, NotFoundError, SpecError
from retrainer.fsmode import make_private_dirs, open_private
from retrainer.governance.chain import version_chain
from retrainer.governance.lineage import spec_document
from retrainer.registry.registry import VersionInfo
from retrainer.spec import spec_hash

if TYPE_CHECKING:
    from retrainer.workspace import Workspace

__all__ = [
    "BUNDLE_FORMAT",
    "MANIFEST",
    "canonical_spec",
    "collect_bundle",
    "export_bundle",
    "manifest_of",
    "write_bundle",
]

BUNDLE_FORMAT = "retrainer-bundle/1"
SPEC, TRAIN, HOLDOUT, MODEL = "retrainer.yaml", "train.parquet", "holdout.parquet", "model.skops"
LINEAGE, ENVIRONMENT, README, MANIFEST = (
    "lineage.json",
    "environment.txt",
    "README.md",
    "MANIFEST.json",
)
REQUIRED = (SPEC, TRAIN, HOLDOUT, MODEL, LINEAGE)
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed: the same files give the same zip


def export_bundle(ws: Workspace, model: str, version: int, target: Path) -> dict[str, Any]:
    """Write the bundle of ``model`` ``version`` to ``target`` (a ``.zip`` by suffix, else
    a folder) and return its manifest. Reads the store, changes nothing in it; the target
    appears whole or not at all.

    Raises:
        SpecError: ``target`` exists and is not empty (nothing is overwritten).
        NotFoundError: the version, its artifact or a recorded input is missing.
        ArtifactIntegrityError: a recorded input no longer matches its recorded hash.
    """
    refuse_non_empty(target)
    files = collect_bundle(ws, model, version)
    return write_bundle(files, target, model=model, version=version)


def collect_bundle(ws: Workspace, model: str, version: int) -> dict[str, bytes]:
    """The bundle's files (all but the manifest), each input verified. Raises as
    :func:`export_bundle`."""
    info = ws.registry.get(model, version)
    name = f"{model}:{version}"
    if info.artifact_sha256 is None:
        raise NotFoundError(f"{name} has no artifact: there is nothing to bundle")
    lin = info.lineage
    lacking = [k for k in ("train_snapshot", "holdout_snapshot", "train_sha256") if k not in lin]
    if lacking:
        raise NotFoundError(f"{name} lineage lacks {', '.join(lacking)}: it cannot be bundled")
    document = _spec_bytes(ws, info)
    files = {SPEC: _spec_yaml(document, name)}
    for kind, file in (("train", TRAIN), ("holdout", HOLDOUT)):
        files[file] = _snapshot_bytes(ws, info, kind)
    files[MODEL] = ws.artifacts.get(info.artifact_sha256, what=f"model artifact of {name}")
    chain = version_chain(ws, model, version)
    record = info.to_dict() | {
        "format": BUNDLE_FORMAT,
        "approvals": chain["approvals"],
        "data": chain["data"],
        "run": chain["run"],
        "deployments": chain["deployments"],
        "lineage_missing": chain["lineage_missing"],
    }
    files[LINEAGE] = (json.dumps(record, indent=2, sort_keys=True, default=str) + "\n").encode()
    files[ENVIRONMENT] = _environment_text(info).encode()
    files[README] = _readme(info).encode()
    return files


def manifest_of(files: dict[str, bytes], *, model: str, version: int) -> dict[str, Any]:
    """The manifest of ``files``: every file's sha256 and size (the manifest not listed)."""
    return {
        "format": BUNDLE_FORMAT,
        "model": model,
        "version": version,
        "files": {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            for name, data in sorted(files.items())
        },
    }


def canonical_spec(data: Any) -> bytes:
    """A spec mapping as the canonical JSON whose sha256 a version records."""
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def refuse_non_empty(target: Path) -> None:
    """Raise SpecError when ``target`` exists and is not empty (or is a symlink)."""
    if target.is_symlink():
        raise SpecError(f"{target}: is a symlink; expected a new path for the bundle")
    if target.is_dir() and any(target.iterdir()):
        raise SpecError(f"{target}: exists and is not empty; not overwriting it")
    if target.is_file() and target.stat().st_size:
        raise SpecError(f"{target}: exists and is not empty; not overwriting it")
    if target.exists() and target.is_dir() == (target.suffix == ".zip"):
        want = "a .zip file" if target.suffix == ".zip" else "a folder"
        raise SpecError(f"{target}: exists and is not {want}; not overwriting it")


def write_bundle(
    files: dict[str, bytes], target: Path, *, model: str, version: int
) -> dict[str, Any]:
    """Write ``files`` and their manifest to ``target`` (private modes, atomically: a temp
    sibling renamed into place). Returns the manifest. Raises SpecError as
    :func:`export_bundle`."""
    refuse_non_empty(target)
    manifest = manifest_of(files, model=model, version=version)
    everything = {**files, MANIFEST: (json.dumps(manifest, indent=2) + "\n").encode()}
    make_private_dirs(target.parent)
    if target.suffix == ".zip":
        _write_zip(everything, target)
    else:
        _write_folder(everything, target)
    return manifest


def _write_zip(files: dict[str, bytes], target: Path) -> None:
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    temp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out, zipfile.ZipFile(out, "w") as zf:
            for name, data in sorted(files.items()):
                info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = (stat.S_IFREG | 0o600) << 16
                zf.writestr(info, data)
        temp.replace(target)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


def _write_folder(files: dict[str, bytes], target: Path) -> None:
    temp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial"))
    try:
        for name, data in files.items():
            fd = open_private(temp / name)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
        try:
            temp.rename(target)  # replaces an empty folder; never a non-empty one
        except OSError as exc:
            raise SpecError(f"{target}: could not be written ({exc.strerror})") from exc
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def _spec_bytes(ws: Workspace, info: VersionInfo) -> bytes:
    lin, name = info.lineage, f"{info.model}:{info.version}"
    sha = lin.get("spec_artifact_sha256")
    if sha:
        return ws.artifacts.get(sha, what=f"spec of {name}")
    recorded = lin.get("spec_sha256")
    if recorded and spec_hash(ws.spec) == recorded:
        return spec_document(ws.spec)
    raise NotFoundError(
        f"{name} lineage lacks spec_artifact_sha256 (it predates stored specs) and the "
        f"workspace spec has changed since: its recorded spec cannot be bundled"
    )


def _spec_yaml(document: bytes, name: str) -> bytes:
    data = json.loads(document)
    text = yaml.safe_dump(data, sort_keys=True, allow_unicode=True)
    if canonical_spec(yaml.safe_load(text)) != canonical_spec(data):  # a YAML round trip bug
        raise ArtifactIntegrityError(f"the spec of {name} does not survive a YAML round trip")
    sha = hashlib.sha256(document).hexdigest()
    head = (
        f"# The spec recorded with {name} (canonical JSON sha256 {sha}).\n"
        "# Credentials written literally were masked when it was recorded; ${env:NAME}\n"
        "# references are kept as references.\n"
    )
    return (head + text).encode()


def _snapshot_bytes(ws: Workspace, info: VersionInfo, kind: str) -> bytes:
    lin, name = info.lineage, f"{info.model}:{info.version}"
    snap = ws.ledger.get_snapshot(int(lin[f"{kind}_snapshot"]))
    recorded = lin.get(f"{kind}_artifact_sha256") or snap.artifact_sha256
    what = f"{kind} snapshot {snap.id} of {name}"
    data = ws.artifacts.get(recorded, what=what)
    rows = frame_sha256(frame_from_parquet(data))
    expected = lin.get(f"{kind}_sha256")
    if expected is not None and rows != expected:
        raise ArtifactIntegrityError(f"{what}: its rows hash to {rows}, recorded {expected}")
    return data


def _environment_text(info: VersionInfo) -> str:
    env = info.lineage.get("environment") or {}
    code = info.lineage.get("code") or {}
    lines = [
        f"# The environment {info.model}:{info.version} was trained in, as its lineage records",
        "# it. Only these key packages were recorded by version; env_lock_sha256 is the",
        "# sha256 of every installed name==version (the list itself was not recorded).",
        f"# python {env.get('python', 'not recorded')}",
        f"# platform {env.get('platform', 'not recorded')}",
        f"# env_lock_sha256 {env.get('env_lock_sha256', 'not recorded')}",
        f"# code {json.dumps(code, sort_keys=True)}",
    ]
    lines += [f"{k}=={v}" for k, v in sorted((env.get("packages") or {}).items())]
    return "\n".join(lines) + "\n"


def _readme(info: VersionInfo) -> str:
    name = f"{info.model} v{info.version}"
    return f"""# Reproduction bundle: {name}

Status when exported: {info.status}. Model artifact sha256 `{info.artifact_sha256}`.

| file | what |
|---|---|
| `retrainer.yaml` | the spec recorded with the version (literal credentials masked) |
| `train.parquet`, `holdout.parquet` | the exact training and holdout rows |
| `model.skops` | the stored model |
| `lineage.json` | lineage, params, metrics, decision record, approvals, deployments |
| `environment.txt` | the recorded Python and package versions (a pip constraints file) |
| `MANIFEST.json` | every file's sha256 and size |

## Reproduce

    pip install retrainer -c environment.txt   # the recorded package versions
    retrainer reproduce --from-bundle PATH     # PATH: this folder or its .zip

The manifest is verified first: a file that does not match it is refused. The spec is
rebuilt from `retrainer.yaml`, fitted on `train.parquet` with the recorded seed, and
its predictions on `holdout.parquet` are compared with those of `model.skops`. If the
model holds types beyond retrainer's trusted list, name them with `--trust TYPE`.
"""
