"""Every model of the workspace with a champion is served, with the feature schema its
version recorded at training; one without a schema is reported, never guessed."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from servekit import MODEL, ROW, build_workspace, copy_workspace, running

from retrainer.registry import promote
from retrainer.registry.serialization import dump_model
from retrainer.service import ServiceConfig, create_app
from retrainer.workspace import Workspace

FAST = ServiceConfig(poll_seconds=0.05, log_flush_seconds=0.05, retry_seconds=3600)


@pytest.fixture(scope="module")
def base_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_workspace(tmp_path_factory.mktemp("models-base") / "ws")


def add_model(root: Path, name: str, lineage: dict[str, object]) -> None:
    """A regressor on one numeric feature ``size``, promoted to champion."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import Pipeline

    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"size": rng.normal(size=200)})
    pipeline = Pipeline(
        [
            ("features", ColumnTransformer([("numeric", "passthrough", ["size"])])),
            ("estimator", LinearRegression()),
        ]
    )
    pipeline.fit(frame, 3.0 * frame["size"] + 1.0)
    with Workspace.open(root) as ws:
        reg = ws.registry
        sha = ws.artifacts.put(dump_model(pipeline))
        v = reg.create_version(name, run_id=None, actor="t", params={}, lineage=lineage)
        reg.attach_artifact(name, v, sha, actor="t")
        reg.mark_ready(name, v, metrics={}, decision={"passed": True}, actor="t")
        promote(reg, name, v, actor="t", reason="test", expected=None)


def test_every_model_with_a_champion_is_served_with_its_own_schema(
    base_ws: Path, tmp_path: Path
) -> None:
    root = copy_workspace(base_ws, tmp_path / "ws")
    schema = {"task": "regression", "features": {"numeric": ["size"], "categorical": []}}
    add_model(root, "price", schema)
    with running(create_app(root, config=FAST)) as url:
        listed = httpx.get(f"{url}/v1/models").json()["models"]
        good = httpx.post(f"{url}/v1/models/price/predict", json={"records": [{"size": 2.0}]})
        bad = httpx.post(f"{url}/v1/models/price/predict", json={"records": [{"x1": 2.0}]})
        toy = httpx.post(f"{url}/v1/models/{MODEL}/predict", json={"records": [ROW]})
    assert sorted(listed) == ["price", MODEL]
    assert listed["price"]["serving"]["features"]["numeric"] == ["size"]
    assert good.status_code == 200, good.text
    assert good.json()["predictions"][0]["score"] == pytest.approx(7.0)
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "size"
    assert toy.status_code == 200


def test_a_model_whose_version_records_no_schema_is_reported_not_guessed(
    base_ws: Path, tmp_path: Path
) -> None:
    root = copy_workspace(base_ws, tmp_path / "ws")
    add_model(root, "legacy", {})
    with running(create_app(root, config=FAST)) as url:
        health = httpx.get(f"{url}/health").json()
        ready = httpx.get(f"{url}/ready")
        answer = httpx.post(f"{url}/v1/models/legacy/predict", json={"records": [{"size": 1}]})
        toy = httpx.post(f"{url}/v1/models/{MODEL}/predict", json={"records": [ROW]})
    assert health["status"] == "degraded"
    assert any("legacy: pending version 1 failed: PolicyError" in p for p in health["problems"])
    assert "records no feature schema" in health["models"]["legacy"]["failed"]["1"]
    assert answer.status_code == 503
    assert ready.status_code == 200  # the spec's model serves: a broken side model does
    # not take the server out of rotation
    assert toy.status_code == 200
