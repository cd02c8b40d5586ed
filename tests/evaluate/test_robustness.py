"""The robustness gate: perturbations, the drop and its bound, models that refuse NaN."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from retrainer.evaluate import evaluate_candidate
from retrainer.evaluate.robustness import perturb
from retrainer.spec import EvaluateSection, Features, ModelSection

FEATURES = Features(numeric=["x1", "x2"], categorical=["color"])
MODEL = ModelSection(name="toy", task="classification", target="y", features=FEATURES)


def data(seed: int, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    color = rng.choice(["red", "green", "blue"], size=n)
    y = (x1 + 0.5 * (color == "red") + rng.normal(scale=0.7, size=n) > 0).astype(int)
    return pd.DataFrame({"x1": x1, "x2": x2, "color": color, "y": y})


def encoded(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(red=(frame["color"] == "red").astype(float))


class Pipeline:
    """A tiny model over x1, x2 and color == 'red' (NaN-tolerant if the estimator is)."""

    def __init__(self, estimator: Any, train: pd.DataFrame) -> None:
        self.est = estimator.fit(encoded(train)[["x1", "x2", "red"]], train["y"])

    def predict_proba(self, X: pd.DataFrame) -> Any:
        return self.est.predict_proba(encoded(X)[["x1", "x2", "red"]])

    def predict(self, X: pd.DataFrame) -> Any:
        return self.est.predict(encoded(X)[["x1", "x2", "red"]])


def tolerant() -> Any:
    """Imputes missing values before a logistic regression."""
    return make_pipeline(SimpleImputer(), LogisticRegression())


def judge(model: Any, **robustness: Any) -> Any:
    rec = evaluate_candidate(
        model,
        None,
        data(2, 500),
        model=MODEL,
        evaluate=EvaluateSection(bootstrap_resamples=200, robustness=robustness),
        champion_version=None,
        rng=np.random.default_rng(0),
    )
    return next(g for g in rec.gates if g.name == "robustness")


def test_perturbations_change_what_they_say_and_nothing_else() -> None:
    frame = data(0, 2000)
    rng = np.random.default_rng(1)
    noisy = perturb(frame, "noise", 0.1, FEATURES, rng)
    assert (noisy["x1"] - frame["x1"]).std() == pytest.approx(0.1 * frame["x1"].std(), rel=0.1)
    assert noisy["color"].equals(frame["color"]) and noisy["y"].equals(frame["y"])
    holes = perturb(frame, "missing", 0.05, FEATURES, rng)
    for col in ("x1", "x2", "color"):
        assert holes[col].isna().mean() == pytest.approx(0.05, abs=0.015)
    swapped = perturb(frame, "swap", 0.05, FEATURES, rng)
    changed = swapped["color"] != frame["color"]
    assert changed.mean() == pytest.approx(0.05, abs=0.015)  # every hit changes the value
    assert set(swapped["color"]) == set(frame["color"])
    assert swapped[["x1", "x2"]].equals(frame[["x1", "x2"]])


def test_a_robust_model_passes_with_each_drop_recorded() -> None:
    g = judge(Pipeline(tolerant(), data(1, 1500)))
    assert g.status == "pass", g.reason
    assert [r["perturbation"] for r in g.details] == ["noise", "missing", "swap"]
    assert all(r["drop"] <= 0.05 for r in g.details)
    assert g.value == max(r["drop"] for r in g.details) and g.threshold == 0.05


def test_a_drop_beyond_the_bound_fails() -> None:
    g = judge(
        Pipeline(tolerant(), data(1, 1500)),
        noise_sd=3.0,
        missing_share=0,
        swap_share=0,
        max_drop=0.01,
    )
    assert g.status == "fail" and "noise (3.0): roc_auc drops by" in g.reason
    assert g.details[0]["drop"] > 0.01


def test_a_model_that_refuses_missing_values_fails_with_its_error() -> None:
    g = judge(Pipeline(LogisticRegression(), data(1, 1500)))
    missing = next(r for r in g.details if r["perturbation"] == "missing")
    assert missing["status"] == "fail" and "NaN" in missing["error"]
    assert g.status == "fail" and "missing (0.05): the model raised ValueError" in g.reason
    assert judge(Pipeline(LogisticRegression(), data(1, 1500)), missing_share=0).status == "pass"


def test_shares_of_zero_turn_the_gate_into_skipped() -> None:
    g = judge(
        Pipeline(LogisticRegression(), data(1, 500)), noise_sd=0, missing_share=0, swap_share=0
    )
    assert g.status == "skipped"
