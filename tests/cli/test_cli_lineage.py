"""``retrainer lineage`` and ``retrainer reproduce`` through the real CLI.

One real cycle trains v1 (promoted); an approval row and a rollout row are added to the
store as their own modules write them, so every section of the chain has content. The
commands then run as processes, independent ones at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cliproc import cli_all, ok_json

from conftest import add_batch, synthetic_batch
from retrainer.deploy.store import RolloutStore
from retrainer.orchestrate.cycle import run_cycle
from retrainer.registry.tables import Approval
from retrainer.workspace import Workspace


def folded(text: str) -> str:
    return " ".join(text.split())


def prepared(make_workspace: Callable[..., Path]) -> Path:
    root = make_workspace()
    add_batch(root, "b0", synthetic_batch(0, 300, start_day=0))
    add_batch(root, "b1", synthetic_batch(1, 300, start_day=1))
    with Workspace.open(root) as ws:
        result = run_cycle(ws, actor="trainer")
        assert result.version == 1 and result.promoted, result.outcome
        info = ws.registry.get("toy", 1)

        def approve(s: object) -> None:
            s.add(  # type: ignore[attr-defined]
                Approval(
                    model="toy",
                    version=1,
                    actor="alice",
                    role="approver",
                    decision="approve",
                    comment="holdout and slices look right",
                    artifact_sha256=str(info.artifact_sha256),
                    decision_sha256="d" * 64,
                    override=False,
                    created_at=datetime(2024, 3, 1, 12, 0, tzinfo=UTC),
                    expires_at=None,
                )
            )

        ws.db.transaction(approve)
        RolloutStore(ws.db).create(
            "toy",
            candidate=1,
            baseline=None,
            strategy="shadow",
            plan={"steps": [0]},
            actor="ops",
            reason="shadow check",
        )
    return root


def test_lineage_and_reproduce(make_workspace: Callable[..., Path]) -> None:
    root = prepared(make_workspace)
    cwd = root.parent
    w = ("-w", root)
    text, data, missing, repro_text, repro = cli_all(
        ("lineage", "toy", "1", *w),
        ("lineage", "toy", "1", "--json", *w),
        ("lineage", "toy", "7", *w),
        ("reproduce", "toy", "1", *w),
        ("reproduce", "toy", "1", "--json", *w),
        cwd=cwd,
    )
    chain = ok_json(data)
    with Workspace.open(root) as ws:
        info = ws.registry.get("toy", 1)
    lin = info.lineage

    assert chain["model"] == "toy" and chain["version"] == 1 and chain["status"] == "READY"
    assert chain["lineage_missing"] == []
    batches = chain["data"]["batches"]
    assert [(b["id"], b["key"], b["rows"]) for b in batches] == [
        (1, "b0.parquet", 300),
        (2, "b1.parquet", 300),
    ]
    assert batches[0]["time_min"].startswith("2024-01-01") and len(batches[0]["content_hash"]) == 64
    assert chain["data"]["derived"] is False
    train = chain["data"]["train"]
    assert (train["snapshot"], train["rows"], train["content_hash"]) == (
        lin["train_snapshot"],
        450,
        lin["train_sha256"],
    )
    assert train["matches_record"] and chain["data"]["holdout"]["rows"] == 150
    run = chain["run"]
    assert run["id"] == info.run_id and run["actor"] == "trainer"
    assert run["trigger"]["kind"] == "bootstrap"
    v = chain["version_record"]
    assert v["artifact_sha256"] == info.artifact_sha256 and v["seed"] == 3
    assert v["spec_sha256"] == lin["spec_sha256"] and v["code"] == {"repository": False}
    assert v["estimator_params"]["estimator__max_iter"] == 200
    assert v["environment"]["env_lock_sha256"] == lin["environment"]["env_lock_sha256"]
    [approval] = chain["approvals"]
    assert (approval["actor"], approval["decision"]) == ("alice", "approve")
    moves = chain["deployments"]["alias_moves"]
    assert [(m["alias"], m["to_version"]) for m in moves] == [("champion", 1)]
    [rollout] = chain["deployments"]["rollouts"]
    assert (rollout["strategy"], rollout["candidate"], rollout["state"]) == ("shadow", 1, "active")

    assert text.returncode == 0, text.stderr
    out = folded(text.stdout)
    assert "toy v1 READY aliases: champion" in out
    assert "lineage complete" in out
    for part in (
        "Data source data/batches",
        "batches the training rows came from, all accepted",
        "b0.parquet 300 2024-01-01",
        f"train snapshot {lin['train_snapshot']}: 450 rows, 2024-01-01 00:00",
        f"content sha256 {lin['train_sha256']}, as recorded",
        f"run {info.run_id} succeeded",
        "trigger: bootstrap: no champion yet",
        f"artifact sha256 {info.artifact_sha256}",
        "trainer: sklearn.linear_model.LogisticRegression {'max_iter': 200}",
        "max_iter=200",
        "random_state=3",
        f"seed 3; spec sha256 {lin['spec_sha256']}",
        "code: not in a git repository",
        f"environment lock sha256 {lin['environment']['env_lock_sha256']}",
        "alice approver approve",
        "holdout and slices look right",
        "champion - v1 trainer auto-promoted",
        "shadow v1 - active",
    ):
        assert part in out, part

    assert missing.returncode == 3 and "model 'toy' has no version 7" in missing.stderr

    assert repro_text.returncode == 0, repro_text.stderr
    shown = folded(repro_text.stdout)
    assert "toy v1 reproduction: identical" in shown
    assert (
        f"ok train snapshot {lin['train_snapshot']} (450 rows): rows sha256 {lin['train_sha256']}"
        in shown
    )
    assert "predictions: identical (150 holdout rows, probabilities)" in shown
    assert "fitted state identical" in shown
    assert "parameters: as recorded" in shown
    report = ok_json(repro)
    assert report["verdict"] == "identical" and report["exit_code"] == 0
    assert report["predictions"]["max_abs_diff"] == 0.0
    assert all(check["ok"] for check in report["inputs"])


def test_reproduce_exits_5_when_a_snapshot_changed(make_workspace: Callable[..., Path]) -> None:
    root = make_workspace()
    add_batch(root, "b0", synthetic_batch(0, 300, start_day=0))
    add_batch(root, "b1", synthetic_batch(1, 300, start_day=1))
    with Workspace.open(root) as ws:
        run_cycle(ws, actor="trainer")
        lin = ws.registry.get("toy", 1).lineage
        path = Path(ws.artifacts.path_of(lin["holdout_artifact_sha256"]))
    path.write_bytes(path.read_bytes() + b"tampered")
    text, data = cli_all(
        ("reproduce", "toy", "1", "-w", root),
        ("reproduce", "toy", "1", "--json", "-w", root),
        cwd=root.parent,
    )
    assert text.returncode == 5 and data.returncode == 5
    out = folded(text.stdout)
    assert "toy v1 reproduction: inputs changed" in out
    assert f"CHANGED holdout snapshot {lin['holdout_snapshot']}" in out
    assert "its stored file changed" in out
    assert "not retrained: a recorded input changed" in out
    report = json.loads(data.stdout)
    assert report["verdict"] == "inputs changed" and report["predictions"] is None
