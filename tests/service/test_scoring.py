"""The scorer's array path gives exactly the pipeline's numbers, or is not used."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from retrainer.service.schema import FeatureSchema
from retrainer.service.scoring import Scorer, ThreadLimit


def frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.exponential(size=n),
            "c": rng.choice(["x", "y", "z"], size=n),
        }
    )


def fitted(transformers: list[Any], estimator: Any, data: pd.DataFrame) -> Pipeline:
    pipeline = Pipeline([("features", ColumnTransformer(transformers)), ("estimator", estimator)])
    return pipeline.fit(data, (data["a"] + (data["c"] == "y") > 0.3).astype(int))


ONEHOT = OneHotEncoder(handle_unknown="ignore", sparse_output=False)


@pytest.mark.parametrize(
    ("transformers", "estimator", "categorical"),
    [
        ([("numeric", "passthrough", ["a", "b"])], HistGradientBoostingClassifier(), False),
        (
            [("numeric", "passthrough", ["a", "b"]), ("categorical", ONEHOT, ["c"])],
            LogisticRegression(),
            True,
        ),
    ],
)
def test_the_array_path_matches_the_pipeline_exactly(
    transformers: list[Any], estimator: Any, categorical: bool
) -> None:
    train = frame(400, 1)
    pipeline = fitted(transformers, estimator, train)
    schema = FeatureSchema(("a", "b"), ("c",) if categorical else (), {"c": frozenset("xyz")})
    scorer = Scorer(pipeline, "classification", tuple(pipeline.classes_))
    rows = frame(300, 2)
    rows.loc[::7, "c"] = "never-seen"  # unknown categories: all indicators zero
    parsed = schema.parse({"records": rows.to_dict("records")})
    assert scorer.enable_direct(schema, schema.parse({"records": rows[:5].to_dict("records")}))
    assert scorer.direct
    fast = scorer.score(parsed)
    expected = pipeline.predict_proba(parsed.frame)
    got = np.array([[r["probabilities"]["0"], r["probabilities"]["1"]] for r in fast])
    assert np.array_equal(got, expected)
    assert [r["score"] for r in fast] == expected[:, 1].tolist()


@pytest.mark.parametrize(
    "transformers",
    [
        [("numeric", StandardScaler(), ["a", "b"])],  # not a passthrough
        [("numeric", "passthrough", ["b", "a"])],  # not the schema's order
    ],
)
def test_other_pipelines_keep_the_pipeline_path(transformers: list[Any]) -> None:
    train = frame(200, 3)
    pipeline = fitted(transformers, LinearRegression(), train)
    schema = FeatureSchema(("a", "b"), ())
    scorer = Scorer(pipeline, "regression")
    parsed = schema.parse({"records": frame(20, 4).to_dict("records")})
    assert not scorer.enable_direct(schema, parsed)
    assert [r["score"] for r in scorer.score(parsed)] == pipeline.predict(parsed.frame).tolist()


def test_a_thread_limit_caps_openmp_in_the_scoring_thread_only() -> None:
    import threading

    from threadpoolctl import threadpool_info

    def openmp() -> set[int]:
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "openmp"}

    before = openmp()
    seen: dict[str, set[int]] = {}

    def score() -> None:
        with ThreadLimit(1)():
            seen["inside"] = openmp()
        seen["after"] = openmp()  # left set in this (worker) thread

    worker = threading.Thread(target=score)
    worker.start()
    worker.join()
    assert seen["inside"] <= {1} and seen["after"] <= {1}
    assert openmp() == before  # other threads keep theirs
    with ThreadLimit(None)():
        assert openmp() == before
