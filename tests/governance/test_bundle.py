"""Reproduction bundles (GOV-03, SEC-04): export a version, reproduce from the bundle.

A real cycle trains v1 on a synthetic workspace; its bundle (a folder and a zip) holds
the recorded spec, snapshots, model, lineage, environment, README and manifest, and
reproduces identically without the workspace. A byte changed in a bundled file is
refused naming the file; an existing non-empty target is never overwritten; crafted zips
whose members escape (``../``, absolute, symlink) are refused before anything is read.
"""

from __future__ import annotations

import hashlib
import json
import re
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from conftest import add_batch, synthetic_batch
from retrainer.errors import ArtifactIntegrityError, PathEscapeError, SpecError
from retrainer.governance.bundle import canonical_spec, export_bundle
from retrainer.governance.bundle_read import read_bundle, reproduce_bundle
from retrainer.orchestrate.cycle import run_cycle
from retrainer.workspace import Workspace

FILES = {
    "retrainer.yaml",
    "train.parquet",
    "holdout.parquet",
    "model.skops",
    "lineage.json",
    "environment.txt",
    "README.md",
}


def trained(root: Path) -> Path:
    add_batch(root, "b0", synthetic_batch(0, 300, start_day=0))
    add_batch(root, "b1", synthetic_batch(1, 300, start_day=1))
    with Workspace.open(root) as ws:
        result = run_cycle(ws, actor="trainer")
    assert result.version == 1, result.outcome
    return root


def test_a_bundle_holds_the_recorded_inputs_and_reproduces_identically(
    make_workspace: Callable[..., Path], tmp_path: Path
) -> None:
    root = trained(make_workspace())
    folder, packed = tmp_path / "out" / "toy-v1", tmp_path / "out" / "toy-v1.zip"
    with Workspace.open(root) as ws:
        manifest = export_bundle(ws, "toy", 1, folder)
        assert export_bundle(ws, "toy", 1, packed)["files"].keys() == manifest["files"].keys()
        info = ws.registry.get("toy", 1)
        model_bytes = ws.artifacts.get(str(info.artifact_sha256))
    lin = info.lineage

    assert manifest["format"] == "retrainer-bundle/1"
    assert (manifest["model"], manifest["version"]) == ("toy", 1)
    assert set(manifest["files"]) == FILES
    assert {p.name for p in folder.iterdir()} == FILES | {"MANIFEST.json"}
    for name, entry in manifest["files"].items():
        data = (folder / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert json.loads((folder / "MANIFEST.json").read_text()) == manifest
    spec = yaml.safe_load((folder / "retrainer.yaml").read_text())
    assert hashlib.sha256(canonical_spec(spec)).hexdigest() == lin["spec_artifact_sha256"]
    assert spec["train"]["seed"] == 3 and spec["model"]["name"] == "toy"
    assert (folder / "model.skops").read_bytes() == model_bytes
    parquet = (folder / "train.parquet").read_bytes()
    assert hashlib.sha256(parquet).hexdigest() == lin["train_artifact_sha256"]
    record = json.loads((folder / "lineage.json").read_text())
    assert record["lineage"] == lin and record["status"] == "READY"
    assert record["params"] == info.params and record["metrics"] == info.metrics
    assert record["decision"] == info.decision and record["approvals"] == []
    assert record["run"]["id"] == info.run_id
    env = (folder / "environment.txt").read_text()
    for package, version in lin["environment"]["packages"].items():
        assert f"{package}=={version}" in env.splitlines()
    assert lin["environment"]["env_lock_sha256"] in env
    assert "retrainer reproduce --from-bundle" in (folder / "README.md").read_text()
    with zipfile.ZipFile(packed) as zf:
        names = zf.namelist()
        assert zf.read("train.parquet") == parquet
    assert sorted(names) == sorted(FILES | {"MANIFEST.json"})
    assert all(not n.startswith("/") and ".." not in n.split("/") for n in names)

    for bundle in (folder, packed):  # no workspace is opened: the bundle is enough
        report = reproduce_bundle(bundle)
        assert report.verdict == "identical" and report.exit_code == 0, report.to_dict()
        assert (report.model, report.version) == ("toy", 1)
        assert report.spec_source == f"bundle {bundle}"
        assert all(check.ok for check in report.inputs)
        assert report.predictions is not None and report.predictions.rows == 150
        assert report.predictions.max_abs_diff == 0.0
        assert report.artifact["fitted_state"] == "identical" and report.params == []

    with Workspace.open(root) as ws, pytest.raises(SpecError) as caught:
        export_bundle(ws, "toy", 1, folder)
    assert str(folder) in str(caught.value) and "not empty" in str(caught.value)
    assert caught.value.exit_code == 2
    assert json.loads((folder / "MANIFEST.json").read_text()) == manifest  # untouched


def test_a_tampered_file_is_refused_naming_it(
    make_workspace: Callable[..., Path], tmp_path: Path
) -> None:
    root = trained(make_workspace())
    folder, packed = tmp_path / "bundle", tmp_path / "bundle.zip"
    with Workspace.open(root) as ws:
        export_bundle(ws, "toy", 1, folder)
        export_bundle(ws, "toy", 1, packed)

    target = folder / "holdout.parquet"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError) as caught:
        reproduce_bundle(folder)
    assert caught.value.exit_code == 5
    assert f"{folder}: holdout.parquet does not match MANIFEST.json" in str(caught.value)

    with zipfile.ZipFile(packed) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    spec = members["retrainer.yaml"].replace(b"seed: 3", b"seed: 4")
    assert spec != members["retrainer.yaml"]
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(tampered, "w") as zf:
        for name, body in members.items():
            zf.writestr(name, spec if name == "retrainer.yaml" else body)
    with pytest.raises(ArtifactIntegrityError, match=re.escape("retrainer.yaml does not match")):
        read_bundle(tampered)


def crafted_zip(path: Path, member: str, *, symlink: bool = False) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("MANIFEST.json", "{}")
        info = zipfile.ZipInfo(member)
        if symlink:
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd" if symlink else "pwned")
    return path


def test_members_that_would_escape_are_refused(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    outside = tmp_path / "abs-evil"
    cases = {
        "dotdot": "../evil",
        "nested": "a/../../evil",
        "absolute": str(outside),
        "backslash": "..\\evil",
    }
    for label, member in cases.items():
        bundle = crafted_zip(work / f"{label}.zip", member)
        with pytest.raises(PathEscapeError) as caught:
            reproduce_bundle(bundle)
        assert repr(member) in str(caught.value) and str(bundle) in str(caught.value)
        assert caught.value.exit_code == 2
    link = crafted_zip(work / "link.zip", "train.parquet", symlink=True)
    with pytest.raises(PathEscapeError, match=re.escape("'train.parquet' is a symlink")):
        read_bundle(link)

    folder = work / "folder"
    folder.mkdir()
    (folder / "MANIFEST.json").write_text("{}")
    (folder / "train.parquet").symlink_to("/etc/passwd")
    with pytest.raises(PathEscapeError, match=re.escape("'train.parquet' is a symlink")):
        read_bundle(folder)

    assert not outside.exists() and not (tmp_path / "evil").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]
    assert sorted(p.name for p in work.iterdir()) == sorted(
        [*(f"{label}.zip" for label in cases), "link.zip", "folder"]
    )
