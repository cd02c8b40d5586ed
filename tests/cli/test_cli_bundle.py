"""``retrainer bundle`` and ``retrainer reproduce --from-bundle`` through the real CLI.

One real cycle trains v1; the bundle is exported as a zip and as a folder, reproduced
from each (from a folder that is no workspace), refused over a non-empty target (exit 2),
refused with a changed byte (exit 5, naming the file), and a crafted zip with a
``../evil`` member is refused (exit 2) without writing anything.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path

from cliproc import cli_all, ok_json

from conftest import add_batch, synthetic_batch
from retrainer.orchestrate.cycle import run_cycle
from retrainer.workspace import Workspace


def folded(text: str) -> str:
    return " ".join(text.split())


def test_bundle_then_reproduce_from_it(make_workspace: Callable[..., Path], tmp_path: Path) -> None:
    root = make_workspace()
    add_batch(root, "b0", synthetic_batch(0, 300, start_day=0))
    add_batch(root, "b1", synthetic_batch(1, 300, start_day=1))
    with Workspace.open(root) as ws:
        assert run_cycle(ws, actor="trainer").version == 1
        info = ws.registry.get("toy", 1)
    away = tmp_path / "elsewhere"  # no retrainer.yaml here: the bundle is enough
    away.mkdir()
    packed, folder = away / "toy-v1.zip", away / "toy-v1"
    w = ("-w", root)
    text, data = cli_all(
        ("bundle", "toy", "1", "-o", packed, *w),
        ("bundle", "toy", "1", "-o", folder, "--json", *w),
        cwd=away,
    )
    assert text.returncode == 0, text.stderr
    out = folded(text.stdout)
    assert f"wrote the bundle of toy v1 to {packed} (8 files" in out
    assert f"reproduce it with: retrainer reproduce --from-bundle {packed}" in out
    manifest = ok_json(data)
    assert manifest["path"] == str(folder) and manifest["model"] == "toy"
    model = manifest["files"]["model.skops"]
    assert model["sha256"] == info.artifact_sha256
    assert f"model.skops {model['size']:,} bytes sha256 {info.artifact_sha256}" in out

    (folder / "train.parquet").write_bytes((folder / "train.parquet").read_bytes()[:-1] + b"!")
    crafted = away / "crafted.zip"
    with zipfile.ZipFile(crafted, "w") as zf:
        zf.writestr("MANIFEST.json", "{}")
        zf.writestr("../evil", "pwned")
    repro, repro_json, again, tampered, evil, both = cli_all(
        ("reproduce", "--from-bundle", packed),
        ("reproduce", "--from-bundle", packed, "--json"),
        ("bundle", "toy", "1", "-o", folder, *w),
        ("reproduce", "--from-bundle", folder),
        ("reproduce", "--from-bundle", crafted),
        ("reproduce", "toy", "1", "--from-bundle", packed),
        cwd=away,
    )
    assert repro.returncode == 0, repro.stderr
    shown = folded(repro.stdout)
    assert "toy v1 reproduction: identical" in shown
    assert f"spec: bundle {packed}" in shown
    assert "predictions: identical (150 holdout rows, probabilities)" in shown
    report = ok_json(repro_json)
    assert report["verdict"] == "identical" and report["exit_code"] == 0
    assert all(check["ok"] for check in report["inputs"])

    assert again.returncode == 2
    assert f"{folder}: exists and is not empty; not overwriting it" in folded(again.stderr)
    assert tampered.returncode == 5
    assert f"{folder}: train.parquet does not match MANIFEST.json" in folded(tampered.stderr)
    assert tampered.stdout == ""
    assert evil.returncode == 2
    assert "member '../evil' would escape the bundle" in folded(evil.stderr)
    assert not (tmp_path / "evil").exists()
    assert both.returncode == 2 and "not both" in both.stderr
    assert json.loads((folder / "MANIFEST.json").read_text())["files"] == manifest["files"]
