"""The same cycle on the local executor and on Dask: the same rows, the same profile,
the same decision."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from conftest import add_batch, synthetic_batch
from retrainer.orchestrate import run_cycle
from retrainer.workspace import Workspace

pytestmark = pytest.mark.dask


def run(root: Path) -> dict[str, Any]:
    with Workspace.open(root) as ws:
        result = run_cycle(ws, actor="t")
        assert result.status == "succeeded", result.outcome
        info = ws.registry.get("toy", result.version)
        snaps = {
            k: ws.ledger.get_snapshot(info.lineage[f"{k}_snapshot"]) for k in ("train", "holdout")
        }
        frames = {k: ws.ledger.load_frame(s) for k, s in snaps.items()}
        return {
            "decision": info.decision,
            "profile": ws.artifacts.get(info.lineage["reference_profile_sha256"]),
            "rows": {k: sorted(map(tuple, f.astype(str).to_numpy())) for k, f in frames.items()},
            "in_parts": ws.ledger.parts(snaps["train"]) is not None,
        }


def test_local_and_dask_choose_the_same_rows_and_reach_the_same_decision(
    make_workspace: Callable[..., Path], dask_scheduler: str
) -> None:
    # batches whose times interleave: arrival order is not time order
    batches = [
        synthetic_batch(1, 300, start_day=5),
        synthetic_batch(2, 250, start_day=0),
        pd.concat([synthetic_batch(3, 200, start_day=3), synthetic_batch(4, 50, start_day=9)]),
    ]
    results = {}
    for executor in ("local", dask_scheduler):
        root = make_workspace(executor=executor, name="dask" if executor != "local" else "local")
        for i, frame in enumerate(batches):
            add_batch(root, f"b{i}", frame)
        results[executor] = run(root)
    local, dask = results["local"], results[dask_scheduler]
    assert (local["in_parts"], dask["in_parts"]) == (False, True)
    assert dask["rows"] == local["rows"]
    assert dask["profile"] == local["profile"]
    for key in ("holdout_rows", "passed", "metric"):
        assert dask["decision"][key] == local["decision"][key]
    assert dask["decision"]["candidate_metric"] == pytest.approx(
        local["decision"]["candidate_metric"], rel=1e-9
    )
    gates = {g["name"]: g for g in local["decision"]["gates"]}
    for gate in dask["decision"]["gates"]:
        assert gate["status"] == gates[gate["name"]]["status"]
