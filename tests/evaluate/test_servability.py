"""The servability gate: a real fresh process loads the stored artifact and predicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from retrainer.evaluate.servability import StoredArtifact, judge_child, servability_gate
from retrainer.registry.artifacts import ArtifactStore
from retrainer.registry.serialization import dump_model
from retrainer.spec import ServabilitySpec


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[StoredArtifact, object, pd.DataFrame]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x1": rng.normal(size=300), "x2": rng.normal(size=300)})
    model = LogisticRegression().fit(X, (X["x1"] > 0).astype(int))
    root = tmp_path_factory.mktemp("artifacts")
    store = ArtifactStore.from_uri(f"file://{root}", base_dir=Path(root))
    sha = store.put(dump_model(model))
    return StoredArtifact(store.uri, sha), model, X


def test_the_artifact_loads_in_a_fresh_process_and_predicts_in_budget(stored: tuple) -> None:
    artifact, model, X = stored
    spec = ServabilitySpec(latency_ms=1e9, sample_rows=50)  # no timing assumption
    g = servability_gate(spec, artifact, model, X)
    assert g.status == "pass", g.reason
    n = g.numbers
    assert n["sample_rows"] == 50 and n["calls"] == 5
    assert g.value == n["median_ms"] and g.threshold == 1e9
    assert n["load_seconds"] > 0 and n["max_ms"] >= n["median_ms"]
    assert "loads in a fresh process" in g.reason and "within the budget" in g.reason


CHILD = {"load_seconds": 1.5, "ms": [3.0, 1.0, 2.0, 9.0, 2.5], "predictions": [0, 1, 1]}


def test_the_median_call_is_judged_against_the_budget() -> None:
    g = judge_child(ServabilitySpec(latency_ms=2.5), CHILD, [0, 1, 1], {"sample_rows": 3})
    assert (g.status, g.value, g.threshold) == ("pass", 2.5, 2.5)
    assert g.numbers == {
        "sample_rows": 3,
        "load_seconds": 1.5,
        "median_ms": 2.5,
        "max_ms": 9.0,
        "calls": 5,
    }
    g = judge_child(ServabilitySpec(latency_ms=2.4), CHILD, [0, 1, 1], {"sample_rows": 3})
    assert (
        g.status == "fail"
        and "predicts 3 rows in 2.5 ms (median of 5), over the budget of 2.4 ms" in g.reason
    )


def test_predictions_that_differ_from_the_evaluated_model_fail() -> None:
    g = judge_child(ServabilitySpec(), CHILD, [0, 1, 0], {})
    assert g.status == "fail" and "predicts differently" in g.reason
    labels = {**CHILD, "predictions": ["no", "yes"]}
    assert judge_child(ServabilitySpec(), labels, ["no", "yes"], {}).status == "pass"


def test_a_missing_or_tampered_artifact_fails_with_the_child_error(stored: tuple) -> None:
    artifact, model, X = stored
    gone = StoredArtifact(artifact.uri, "0" * 64)
    g = servability_gate(ServabilitySpec(), gone, model, X)
    assert g.status == "fail" and "could not be loaded" in g.reason and "NotFoundError" in g.reason


def test_skipped_without_an_artifact_or_with_an_in_memory_store() -> None:
    X = pd.DataFrame({"x1": [0.0]})
    assert servability_gate(ServabilitySpec(), None, None, X).status == "skipped"
    memory = StoredArtifact("memory://artifacts", "0" * 64)
    assert servability_gate(ServabilitySpec(), memory, None, X).status == "skipped"
