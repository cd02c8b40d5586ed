"""Reproducing a version from its recorded inputs (issue 6, GOV-03).

Versions come from real cycles on synthetic workspaces. A deterministic estimator
reproduces identically; a changed snapshot file, or a snapshot record pointing at other
rows, is reported and nothing is retrained; an estimator that ignores its seed differs,
and a declared tolerance accepts it; a version made before specs were stored falls back
to the workspace's spec only while its hash still matches.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import update

from conftest import add_batch, synthetic_batch
from retrainer.errors import NotFoundError, SpecError
from retrainer.governance.reproduce import NOT_BYTE_DETERMINISTIC, reproduce
from retrainer.orchestrate.cycle import run_cycle
from retrainer.registry.tables import ModelVersion, Snapshot
from retrainer.workspace import Workspace

NOISY_FIT = '''
import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder


def fit(frame, *, features, target, seed):
    """Trains on a random half of the rows, ignoring the seed: not reproducible."""
    rows = frame.sample(frac=0.5, random_state=np.random.default_rng().integers(1 << 30))
    encode = ColumnTransformer(
        [("numeric", "passthrough", ["x1", "x2"]),
         ("categorical", OneHotEncoder(handle_unknown="ignore"), ["color"])]
    )
    model = Pipeline([("features", encode), ("estimator", LogisticRegression())])
    return model.fit(rows[features], rows[target])
'''


def trained(root: Path) -> Path:
    add_batch(root, "b0", synthetic_batch(0, 300, start_day=0))
    add_batch(root, "b1", synthetic_batch(1, 300, start_day=1))
    with Workspace.open(root) as ws:
        result = run_cycle(ws, actor="trainer")
    assert result.version == 1, result.outcome
    return root


def test_a_version_reproduces_identically(make_workspace: Callable[..., Path]) -> None:
    root = trained(make_workspace())
    said: list[str] = []
    with Workspace.open(root) as ws:
        report = reproduce(ws, "toy", 1, progress=said.append)
        lin = ws.registry.get("toy", 1).lineage
    assert report.verdict == "identical" and report.ok and report.exit_code == 0
    assert [c.what.split(" ")[0] for c in report.inputs] == ["spec", "train", "holdout", "model"]
    assert all(c.ok and c.actual == c.expected for c in report.inputs)
    assert report.inputs[1].expected == lin["train_sha256"]
    assert report.spec_source == "recorded"
    assert report.predictions is not None
    assert report.predictions.rows == lin["holdout_rows"] == 150
    assert report.predictions.compared == "probabilities"
    assert report.predictions.max_abs_diff == 0.0 and report.predictions.rows_differ == 0
    assert report.artifact["fitted_state"] == "identical"
    assert report.artifact["state_differences"] == []
    if not report.artifact["bytes_identical"]:  # skops zips carry object ids and timestamps
        assert report.artifact["note"] == NOT_BYTE_DETERMINISTIC
    assert report.params == []
    assert report.drift == []  # same interpreter, packages and (no) repository
    assert any("retraining toy v1 on 450 rows (seed 3)" in s for s in said)
    data = report.to_dict()
    assert data["verdict"] == "identical" and data["predictions"]["verdict"] == "identical"


def test_a_changed_snapshot_is_reported_not_used(make_workspace: Callable[..., Path]) -> None:
    root = trained(make_workspace())
    with Workspace.open(root) as ws:
        lin = ws.registry.get("toy", 1).lineage
        snap = ws.ledger.get_snapshot(lin["train_snapshot"])
        path = Path(ws.artifacts.path_of(snap.artifact_sha256))
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))

        report = reproduce(ws, "toy", 1)
    assert report.verdict == "inputs changed"
    assert not report.ok and report.exit_code == 5
    assert report.predictions is None and report.artifact == {}
    train = report.inputs[1]
    assert not train.ok and train.what.startswith(f"train snapshot {snap.id}")
    assert train.problem is not None
    assert "stored file changed" in train.problem and snap.artifact_sha256 in train.problem
    assert "it was not used" in train.problem
    assert [c.ok for c in report.inputs] == [True, False, True, True]


def point_holdout_at(ws: Workspace, snapshot: int, sha256: str) -> None:
    ws.db.transaction(
        lambda s: s.execute(
            update(Snapshot).where(Snapshot.id == snapshot).values(artifact_sha256=sha256)
        )
    )


def test_a_snapshot_record_pointing_at_other_rows_or_a_missing_input_is_reported(
    make_workspace: Callable[..., Path],
) -> None:
    root = trained(make_workspace())
    with Workspace.open(root) as ws:
        lin = ws.registry.get("toy", 1).lineage
        point_holdout_at(ws, lin["holdout_snapshot"], lin["train_artifact_sha256"])
        report = reproduce(ws, "toy", 1)
        holdout = report.inputs[2]
        assert report.verdict == "inputs changed" and report.exit_code == 5 and not holdout.ok
        assert holdout.problem is not None
        assert f"version recorded {lin['holdout_artifact_sha256'][:12]}" in holdout.problem

        point_holdout_at(ws, lin["holdout_snapshot"], lin["holdout_artifact_sha256"])
        Path(ws.artifacts.path_of(lin["spec_artifact_sha256"])).unlink()
        gone = reproduce(ws, "toy", 1)
    assert gone.verdict == "inputs missing" and gone.exit_code == 3
    spec = gone.inputs[0]
    assert spec.missing and spec.problem is not None and "not found" in spec.problem
    assert [c.ok for c in gone.inputs] == [False, True, True, True]


def test_a_nondeterministic_estimator_differs_unless_a_tolerance_is_declared(
    make_workspace: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "noisy_fit.py").write_text(textwrap.dedent(NOISY_FIT))
    monkeypatch.syspath_prepend(str(code))
    root = make_workspace()
    spec = (root / "retrainer.yaml").read_text()
    spec = spec.replace(
        "  estimator: sklearn.linear_model.LogisticRegression\n  params: {max_iter: 200}\n",
        "  entrypoint: noisy_fit:fit\n",
    )
    (root / "retrainer.yaml").write_text(spec)
    trained(root)
    with Workspace.open(root) as ws:
        entry = ws.registry.get("toy", 1).lineage["code"]["entrypoint"]
        assert entry["module"] == "noisy_fit"
        assert Path(entry["file"]) == code / "noisy_fit.py" and len(entry["sha256"]) == 64
        strict = reproduce(ws, "toy", 1)
        assert strict.predictions is not None
        assert strict.verdict == "differ" and strict.exit_code == 6
        assert strict.predictions.rows_differ > 0 and 0 < strict.predictions.max_abs_diff < 1
        assert strict.artifact["fitted_state"] == "differs"
        assert strict.artifact["state_differences"]
        loose = reproduce(ws, "toy", 1, tolerance=1.0)
        assert loose.verdict == "within tolerance" and loose.exit_code == 0
        with pytest.raises(SpecError, match="--tolerance: expected a number >= 0"):
            reproduce(ws, "toy", 1, tolerance=-0.1)


def test_an_old_version_uses_the_workspace_spec_only_while_its_hash_matches(
    make_workspace: Callable[..., Path],
) -> None:
    root = trained(make_workspace())
    with Workspace.open(root) as ws:
        lin = dict(ws.registry.get("toy", 1).lineage)
        del lin["spec_artifact_sha256"]  # as recorded before specs were stored
        ws.db.transaction(
            lambda s: s.execute(
                update(ModelVersion)
                .where(ModelVersion.model == "toy", ModelVersion.version == 1)
                .values(lineage=lin)
            )
        )
        report = reproduce(ws, "toy", 1)
    assert report.verdict == "identical"
    assert report.spec_source.startswith("workspace spec (its sha256 matches")

    spec = root / "retrainer.yaml"
    spec.write_text(
        spec.read_text().replace("bootstrap_resamples: 200", "bootstrap_resamples: 300")
    )
    with Workspace.open(root) as ws, pytest.raises(NotFoundError) as caught:
        reproduce(ws, "toy", 1)
    assert "lacks spec_artifact_sha256" in str(caught.value)
    assert "cannot be retrained as it was" in str(caught.value)
