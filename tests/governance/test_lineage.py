"""Lineage completeness (GOV-03): what every READY version records, and the READY gate.

A real cycle records every required field; a version missing any of them is refused
READY with every missing field named, becomes FAILED and is audited; a version made
before lineage was complete still loads, predicts and can be promoted.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from conftest import SYNTHETIC_SPEC, add_batch, synthetic_batch
from retrainer.errors import PolicyError
from retrainer.governance.chain import version_chain
from retrainer.governance.lineage import (
    REQUIRED,
    code_state,
    json_safe,
    missing_lineage,
    spec_document,
)
from retrainer.orchestrate.cycle import run_cycle
from retrainer.registry import CHAMPION, Registry, list_events, promote
from retrainer.registry.db import Database
from retrainer.registry.serialization import dump_model, load_model
from retrainer.spec import PipelineSpec, parse_spec, spec_hash
from retrainer.workspace import Workspace

FULL = {
    "train_snapshot": 3,
    "train_sha256": "a" * 64,
    "holdout_snapshot": 4,
    "holdout_sha256": "b" * 64,
    "spec_sha256": "c" * 64,
    "spec_artifact_sha256": "c" * 64,
    "code": {"repository": False},
    "estimator_params": {"C": 1.0},
    "seed": 0,
    "environment": {"python": "3.11.7", "packages": {"numpy": "2"}, "env_lock_sha256": "d" * 64},
}
# What a version trained before lineage was complete recorded (no spec document, no code,
# no fitted parameters).
OLD_LINEAGE = {
    k: v for k, v in FULL.items() if k not in ("spec_artifact_sha256", "code", "estimator_params")
}


def trained(make_workspace: Callable[..., Path]) -> Path:
    root = make_workspace()
    add_batch(root, "b0", synthetic_batch(0, 300, start_day=0))
    add_batch(root, "b1", synthetic_batch(1, 300, start_day=1))
    with Workspace.open(root) as ws:
        result = run_cycle(ws, actor="trainer")
    assert result.version == 1 and result.promoted, result.outcome
    return root


def test_a_real_cycle_records_every_required_field(make_workspace: Callable[..., Path]) -> None:
    root = trained(make_workspace)
    with Workspace.open(root) as ws:
        info = ws.registry.get("toy", 1)
        lin = info.lineage
        assert info.status == "READY"
        assert missing_lineage(lin, info.metrics) == []
        assert lin["code"] == {"repository": False}  # tmp folders are not in a repository
        assert lin["seed"] == 3
        assert lin["batch_ids"] == [1, 2]
        # every parameter of the fitted pipeline, the seed passed to the estimator included
        assert lin["estimator_class"] == "sklearn.pipeline.Pipeline"
        assert lin["estimator_params"]["estimator__max_iter"] == 200
        assert lin["estimator_params"]["estimator__random_state"] == 3
        assert lin["estimator_params"]["features__categorical__handle_unknown"] == "ignore"
        # the spec as it was, stored; without credentials its hash is the spec's hash
        stored = json.loads(ws.artifacts.get(lin["spec_artifact_sha256"]))
        assert spec_hash(PipelineSpec.model_validate(stored)) == lin["spec_sha256"]
        assert lin["spec_artifact_sha256"] == lin["spec_sha256"] == spec_hash(ws.spec)
        for kind in ("train", "holdout"):
            snap = ws.ledger.get_snapshot(lin[f"{kind}_snapshot"])
            assert (snap.content_hash, snap.artifact_sha256) == (
                lin[f"{kind}_sha256"],
                lin[f"{kind}_artifact_sha256"],
            )
        env = lin["environment"]
        assert env["python"].count(".") == 2 and len(env["env_lock_sha256"]) == 64
        assert {"scikit-learn", "numpy", "skops"} <= set(env["packages"])


def test_only_batches_whose_rows_the_window_kept_are_recorded(
    make_workspace: Callable[..., Path],
) -> None:
    root = make_workspace()
    spec = root / "retrainer.yaml"
    spec.write_text(spec.read_text().replace("window: {rows: 2000}", "window: {rows: 600}"))
    for day in range(3):
        add_batch(root, f"b{day}", synthetic_batch(day, 300, start_day=day))
    with Workspace.open(root) as ws:
        result = run_cycle(ws, actor="trainer")
        lin = ws.registry.get("toy", 1).lineage
    assert result.version == 1, result.outcome
    assert lin["train_rows"] + lin["holdout_rows"] == 600
    assert lin["batch_ids"] == [2, 3]  # b0's day lies before the newest 600 rows
    assert lin["max_batch_id"] == 3


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_code_state_commit_and_dirty_flag(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    ws = repo / "ws"
    (ws / ".retrainer").mkdir(parents=True)
    (ws / "train.py").write_text("x = 1\n")
    (ws / ".retrainer" / "state.txt").write_text("a\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "first")
    head = _git(repo, "rev-parse", "HEAD")

    clean = code_state(ws)
    assert clean == {
        "repository": True,
        "path": str(repo.resolve()),
        "commit": head,
        "dirty": False,
        "changed": [],
    }
    (ws / ".retrainer" / "state.txt").write_text("b\n")  # the workspace's own state
    (ws / "new_untracked.csv").write_text("1\n")
    assert code_state(ws)["dirty"] is False
    (ws / "train.py").write_text("x = 2\n")
    dirty = code_state(ws)
    assert dirty["dirty"] is True and dirty["changed"] == ["ws/train.py"]
    outside = tmp_path / "outside"
    outside.mkdir()
    assert code_state(outside) == {"repository": False}


def test_missing_lineage_names_every_field() -> None:
    assert missing_lineage(FULL, {"roc_auc": 0.8}) == []
    assert missing_lineage({}) == list(REQUIRED)
    assert missing_lineage(OLD_LINEAGE) == ["spec_artifact_sha256", "code", "estimator_params"]
    in_repo = {**FULL, "code": {"repository": True, "commit": "", "dirty": None}}
    assert missing_lineage(in_repo) == ["code.commit", "code.dirty"]
    no_env = {**FULL, "environment": {"python": "3.11.7"}}
    assert missing_lineage(no_env, {}) == [
        "environment.packages",
        "environment.env_lock_sha256",
        "metrics",
    ]
    assert missing_lineage({**FULL, "seed": 0}) == []  # a zero seed is a seed


def _pending(reg: Registry, lineage: dict[str, object]) -> int:
    v = reg.create_version("rain", run_id=None, actor="trainer", params={}, lineage=lineage)
    reg.attach_artifact("rain", v, f"{v:064x}", actor="trainer", lineage={"estimator_class": "x"})
    return v


def test_a_version_missing_lineage_is_refused_ready_and_fails(db: Database) -> None:
    reg = Registry(db)
    partial = {k: v for k, v in FULL.items() if k not in ("holdout_sha256", "environment")}
    v = _pending(reg, partial)
    with pytest.raises(PolicyError) as caught:
        reg.mark_ready(
            "rain",
            v,
            metrics={},
            decision={"passed": True},
            actor="cycle",
            require=missing_lineage,
        )
    message = str(caught.value)
    for field in (
        "holdout_sha256",
        "environment.python",
        "environment.packages",
        "environment.env_lock_sha256",
        "metrics",
    ):
        assert field in message
    assert "cannot become READY" in message
    info = reg.get("rain", v)
    assert info.status == "FAILED"
    assert info.lineage["estimator_class"] == "x"  # attach_artifact added it
    event = db.transaction(lambda s: list_events(s, limit=1))[0]
    assert (event.action, event.subject) == ("version.failed", f"rain:{v}")
    assert event.payload["missing"] == [
        "holdout_sha256",
        "environment.python",
        "environment.packages",
        "environment.env_lock_sha256",
        "metrics",
    ]
    assert "lineage incomplete" in event.payload["reason"]
    with pytest.raises(PolicyError):  # and a FAILED version never serves
        promote(reg, "rain", v, actor="ops", reason="try", expected=None)

    complete = _pending(reg, FULL)
    ready = reg.mark_ready(
        "rain",
        complete,
        metrics={"roc_auc": 0.8},
        decision={"passed": True},
        actor="cycle",
        lineage={"reference_profile_sha256": "e" * 64},
        require=missing_lineage,
    )
    assert ready.status == "READY"
    assert ready.lineage["reference_profile_sha256"] == "e" * 64
    assert ready.lineage["spec_sha256"] == FULL["spec_sha256"]


def test_an_old_version_without_the_new_fields_still_loads_and_serves(
    make_workspace: Callable[..., Path],
) -> None:
    """Made as before lineage was complete: READY without the gate; it loads, predicts and
    can be promoted and rolled back to (only the READY transition is gated)."""
    root = trained(make_workspace)
    with Workspace.open(root) as ws:
        reg = ws.registry
        model = load_model(ws.artifacts.get(str(reg.get("toy", 1).artifact_sha256)))
        sha = ws.artifacts.put(dump_model(model))
        old = reg.create_version("toy", run_id=None, actor="t", params={}, lineage=OLD_LINEAGE)
        reg.attach_artifact("toy", old, sha, actor="t")
        reg.mark_ready("toy", old, metrics={"roc_auc": 0.8}, decision={"passed": True}, actor="t")
        info = reg.get("toy", old)
        assert info.status == "READY"
        assert missing_lineage(info.lineage) == ["spec_artifact_sha256", "code", "estimator_params"]
        loaded = load_model(ws.artifacts.get(str(info.artifact_sha256)))
        frame = synthetic_batch(5, 20, start_day=3)
        assert loaded.predict_proba(frame[["x1", "x2", "color"]]).shape == (20, 2)
        promote(reg, "toy", old, actor="ops", reason="old version", expected=1)
        assert reg.get_alias("toy", CHAMPION) == old
        chain = version_chain(ws, "toy", old)  # what `retrainer lineage` prints
    assert chain["lineage_missing"] == ["spec_artifact_sha256", "code", "estimator_params"]
    assert chain["data"]["derived"] is True and chain["data"]["batches"] == []
    assert chain["run"] is None
    assert chain["version_record"]["code"] is None
    assert [m["to_version"] for m in chain["deployments"]["alias_moves"]] == [old]


def test_spec_document_masks_credentials() -> None:
    url = "postgresql+psycopg://alice:s3cret@db.example.org:5432/ml"
    spec = parse_spec(SYNTHETIC_SPEC.format(approval="auto", store=url))
    doc = spec_document(spec).decode()
    assert "s3cret" not in doc and "alice" not in doc
    assert "postgresql+psycopg://***@db.example.org:5432/ml" in doc
    referenced = "postgresql+psycopg://alice:${env:PG_PASSWORD}@db.example.org/ml"
    by_reference = parse_spec(SYNTHETIC_SPEC.format(approval="auto", store=referenced))
    assert referenced in spec_document(by_reference).decode()  # a reference is no secret
    assert hashlib.sha256(spec_document(by_reference)).hexdigest() == spec_hash(by_reference)
    plain = parse_spec(SYNTHETIC_SPEC.format(approval="auto", store="sqlite:///x.db"))
    assert hashlib.sha256(spec_document(plain)).hexdigest() == spec_hash(plain)


def test_json_safe_makes_estimator_parameters_storable() -> None:
    from sklearn.preprocessing import OneHotEncoder

    value = {
        "enc": OneHotEncoder(),
        "cls": OneHotEncoder,
        "dtype": np.float64,
        "np": np.int64(3),
        "nan": float("nan"),
        "inf": np.float64("inf"),
        "arr": np.array([1.5, 2.0]),
        "tuple": ("a", 1),
        "fn": len,
    }
    safe = json_safe(value)
    assert safe == {
        "enc": "sklearn.preprocessing._encoders.OneHotEncoder",
        "cls": "sklearn.preprocessing._encoders.OneHotEncoder",
        "dtype": "numpy.float64",
        "np": 3,
        "nan": "nan",
        "inf": "inf",
        "arr": [1.5, 2.0],
        "tuple": ["a", 1],
        "fn": "builtins.len",
    }
    json.dumps(safe, allow_nan=False)
