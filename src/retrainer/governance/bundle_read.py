"""Read a reproduction bundle back, safely, and reproduce its version from it.

:func:`read_bundle` never extracts anything: members are read into memory. Every member
name of a zip is checked first (no absolute path, no ``..``, no backslash, no symlink),
and a folder bundle holding a symlink is refused; then every file the manifest lists is
read and its size and sha256 compared with the manifest before anything uses it.
:func:`reproduce_bundle` then checks the files against the hashes the version recorded
(``lineage.json``) and retrains as :func:`~retrainer.governance.reproduce.reproduce` does.

A bundle's manifest proves its files are the ones it lists, not who wrote it: reproducing
builds the estimator its spec names. Trust for the model's types comes from the caller
(``trusted``), never from the bundle.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
import yaml
from pydantic import ValidationError

from retrainer.data.snapshot import frame_from_parquet, frame_sha256
from retrainer.errors import ArtifactIntegrityError, NotFoundError, PathEscapeError, SpecError
from retrainer.governance.bundle import (
    BUNDLE_FORMAT,
    HOLDOUT,
    LINEAGE,
    MANIFEST,
    MODEL,
    REQUIRED,
    SPEC,
    TRAIN,
    canonical_spec,
)
from retrainer.governance.reproduce import (
    InputCheck,
    Progress,
    Reproduction,
    environment_changes,
    retrain_and_compare,
)
from retrainer.spec import PipelineSpec

__all__ = ["Bundle", "check_member", "read_bundle", "reproduce_bundle"]

_SHA256 = re.compile(r"[0-9a-f]{64}")
_DRIVE = re.compile(r"[A-Za-z]:")


@dataclass(frozen=True)
class Bundle:
    """A bundle read and verified against its manifest."""

    path: Path
    manifest: dict[str, Any]
    files: dict[str, bytes]


def check_member(bundle: Path, name: str) -> None:
    """Raise PathEscapeError unless ``name`` is a relative path that stays in the bundle."""
    parts = PurePosixPath(name).parts
    if not name or name.startswith("/") or "\\" in name or _DRIVE.match(name) or ".." in parts:
        raise PathEscapeError(
            f"{bundle}: member {name!r} would escape the bundle (expected a relative path "
            "without '..'); the bundle was refused and nothing was read"
        )


def read_bundle(path: Path) -> Bundle:
    """Read and verify the bundle at ``path`` (a folder, or a zip file).

    Raises:
        NotFoundError: ``path`` does not exist, or holds no ``MANIFEST.json``.
        PathEscapeError: a member is absolute, has ``..`` or is a symlink.
        SpecError: ``path`` is neither a folder nor a zip, or the manifest is malformed.
        ArtifactIntegrityError: a listed file is missing or does not match the manifest
            (the message names it).
    """
    if path.is_dir():
        _refuse_symlinks(path)
        raw = _read_folder_file(path, MANIFEST)
        manifest = _manifest(path, raw)
        files = {n: _read_folder_file(path, n) for n in manifest["files"]}
    elif path.is_file() and zipfile.is_zipfile(path):
        manifest, files = _read_zip(path)
    elif not path.exists():
        raise NotFoundError(f"{path}: no such bundle (expected a folder or .zip file)")
    else:
        raise SpecError(f"{path}: expected a bundle folder or .zip file, got another file")
    for name, entry in manifest["files"].items():
        data = files[name]
        sha = hashlib.sha256(data).hexdigest()
        if len(data) != entry["size"] or sha != entry["sha256"]:
            raise _mismatch(path, name, f"sha256 {sha}, {len(data)} bytes", entry)
    return Bundle(path, manifest, files)


def _refuse_symlinks(path: Path) -> None:
    for folder, dirs, names in os.walk(path):
        for name in [*dirs, *names]:
            if (Path(folder) / name).is_symlink():
                member = (Path(folder) / name).relative_to(path).as_posix()
                raise PathEscapeError(
                    f"{path}: member {member!r} is a symlink (expected regular files); the "
                    "bundle was refused"
                )


def _read_folder_file(path: Path, name: str) -> bytes:
    check_member(path, name)
    try:
        fd = os.open(path / name, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError as exc:
        raise _missing(path, name) from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PathEscapeError(f"{path}: member {name!r} is a symlink; refused") from exc
        raise SpecError(f"{path}: cannot read {name} ({exc.strerror})") from exc
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise SpecError(f"{path}: {name} is not a regular file")
        return f.read()


def _read_zip(path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            seen: dict[str, zipfile.ZipInfo] = {}
            for info in infos:  # every member, listed or not, before reading any
                check_member(path, info.filename)
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise PathEscapeError(
                        f"{path}: member {info.filename!r} is a symlink; the bundle was refused"
                    )
                if info.filename in seen:
                    raise PathEscapeError(f"{path}: member {info.filename!r} appears twice")
                seen[info.filename] = info
            if MANIFEST not in seen:
                raise NotFoundError(f"{path}: no {MANIFEST} (expected a retrainer bundle)")
            manifest = _manifest(path, zf.read(seen[MANIFEST]))
            files = {}
            for name, entry in manifest["files"].items():
                if name not in seen:
                    raise _missing(path, name)
                if seen[name].file_size != entry["size"]:  # checked before reading it
                    raise _mismatch(path, name, f"{seen[name].file_size} bytes", entry)
                files[name] = _zip_member(zf, seen[name], path)
            return manifest, files
    except zipfile.BadZipFile as exc:
        raise ArtifactIntegrityError(f"{path}: not a readable zip ({exc})") from exc


def _zip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> bytes:
    try:
        return zf.read(info)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:  # a bad CRC: damaged data
        raise ArtifactIntegrityError(
            f"{path}: {info.filename} cannot be read ({exc}): it was tampered with or "
            "damaged; nothing was retrained"
        ) from exc


def _missing(path: Path, name: str) -> NotFoundError | ArtifactIntegrityError:
    if name == MANIFEST:
        return NotFoundError(f"{path}: no {MANIFEST} (expected a retrainer bundle)")
    return ArtifactIntegrityError(f"{path}: {name} is listed in {MANIFEST} but missing")


def _mismatch(path: Path, name: str, got: str, entry: dict[str, Any]) -> ArtifactIntegrityError:
    return ArtifactIntegrityError(
        f"{path}: {name} does not match {MANIFEST} ({got}; recorded sha256 "
        f"{entry['sha256']}, {entry['size']} bytes): it was tampered with or damaged; "
        "nothing was retrained"
    )


def _manifest(path: Path, raw: bytes) -> dict[str, Any]:
    where = f"{path}: {MANIFEST}"
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise SpecError(f"{where}: expected a JSON document ({exc})") from exc
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(data, dict) or data.get("format") != BUNDLE_FORMAT:
        raise SpecError(f"{where}: expected format {BUNDLE_FORMAT!r}")
    if not isinstance(files, dict):
        raise SpecError(f"{where}: expected 'files' mapping each name to sha256 and size")
    for name, entry in files.items():
        check_member(path, name)
        ok = isinstance(entry, dict) and isinstance(entry.get("size"), int)
        if not ok or not _SHA256.fullmatch(str(entry.get("sha256"))):
            raise SpecError(f"{where}: {name}: expected {{sha256: 64 hex, size: int}}")
    lacking = [n for n in REQUIRED if n not in files]
    if lacking:
        raise SpecError(f"{where}: lists no {', '.join(lacking)}; expected {', '.join(REQUIRED)}")
    return data


def reproduce_bundle(
    path: Path,
    *,
    tolerance: float = 0.0,
    trusted: Sequence[str] = (),
    progress: Progress | None = None,
) -> Reproduction:
    """Reproduce the version a bundle holds: verify the manifest, check each input against
    the hash the version recorded, retrain and compare. Writes nothing.

    Raises:
        As :func:`read_bundle`; SpecError for a negative ``tolerance`` or a spec that no
        longer validates; TrainingError; UntrustedArtifactError for model types outside
        ``trusted`` and retrainer's own list.
    """
    if tolerance < 0:
        raise SpecError(f"--tolerance: expected a number >= 0, got {tolerance}")
    say = progress or (lambda _: None)
    say("verifying the bundle's manifest")
    bundle = read_bundle(path)
    record = json.loads(bundle.files[LINEAGE])
    lin: dict[str, Any] = record.get("lineage") or {}
    spec_data = yaml.safe_load(bundle.files[SPEC])
    spec_sha = hashlib.sha256(canonical_spec(spec_data)).hexdigest()
    recorded = lin.get("spec_artifact_sha256") or lin.get("spec_sha256")
    inputs = [_check("spec", recorded, spec_sha)]
    frames: dict[str, pd.DataFrame] = {}
    for kind, file in (("train", TRAIN), ("holdout", HOLDOUT)):
        check, frame = _snapshot(bundle, lin, kind, file)
        inputs.append(check)
        frames[kind] = frame
    model_sha = hashlib.sha256(bundle.files[MODEL]).hexdigest()
    inputs.append(_check("model artifact", record.get("artifact_sha256"), model_sha))
    report = Reproduction(
        str(record.get("model")), int(record.get("version", 0)), f"bundle {path}", inputs
    )
    if not report.inputs_ok:
        return report
    try:
        spec = PipelineSpec.model_validate(spec_data)
    except ValidationError as exc:
        raise SpecError(f"{path}: {SPEC} no longer validates: {exc}") from exc
    retrain_and_compare(
        report,
        spec=spec,
        lineage=lin,
        params=record.get("params") or {},
        artifact_sha256=model_sha,
        train=frames["train"],
        holdout=frames["holdout"],
        stored_bytes=bundle.files[MODEL],
        trusted_types=trusted,
        tolerance=tolerance,
        progress=say,
    )
    report.drift = environment_changes(lin, None)
    return report


def _check(what: str, expected: str | None, actual: str) -> InputCheck:
    if expected is None or expected == actual:
        return InputCheck(what, expected, actual)
    problem = f"hashes to {actual}, the version recorded {expected}"
    return InputCheck(what, expected, actual, problem)


def _snapshot(
    bundle: Bundle, lin: dict[str, Any], kind: str, file: str
) -> tuple[InputCheck, pd.DataFrame]:
    data = bundle.files[file]
    what = f"{kind} snapshot {lin.get(f'{kind}_snapshot')} ({file})"
    expected = lin.get(f"{kind}_sha256")
    recorded_file = lin.get(f"{kind}_artifact_sha256")
    file_sha = hashlib.sha256(data).hexdigest()
    if recorded_file and file_sha != recorded_file:
        problem = f"{file} hashes to {file_sha}, the version recorded {recorded_file}"
        return InputCheck(what, expected, None, problem), pd.DataFrame()
    frame = frame_from_parquet(data)
    actual = frame_sha256(frame)
    if expected is not None and actual != expected:
        problem = f"its rows hash to {actual}, recorded {expected}; they were not used"
        return InputCheck(what, expected, actual, problem), frame
    return InputCheck(what, expected, actual), frame
