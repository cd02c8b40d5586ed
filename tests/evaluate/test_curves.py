"""Plot points in the record: ROC/PR curves (<= 200 points), residuals (<= 1,000 rows)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from evalkit import Reads, classifier, regressor, scored_frame, settings
from sklearn.metrics import auc, roc_curve

from retrainer.evaluate import evaluate_candidate
from retrainer.evaluate.curves import classifier_curves, residual_sample


def test_curves_are_thinned_to_200_points_keeping_both_ends() -> None:
    data = scored_frame(0, 5000)
    curves = classifier_curves(data["y"].to_numpy(), {"candidate": data["b"].to_numpy()}, 1)
    roc = curves["roc"]["candidate"]
    assert len(roc["x"]) <= 200 and len(roc["x"]) == len(roc["y"])
    fpr, tpr, _ = roc_curve(data["y"], data["b"])
    assert (roc["x"][0], roc["y"][0], roc["x"][-1], roc["y"][-1]) == (0.0, 0.0, 1.0, 1.0)
    assert (
        auc(roc["x"], roc["y"]) == np.round(auc(fpr, tpr), 2)
        or abs(auc(roc["x"], roc["y"]) - auc(fpr, tpr)) < 0.005
    )  # the thinned curve keeps the area
    pr = curves["pr"]["candidate"]
    assert pr["x"][0] == 0.0 and pr["x"][-1] == 1.0  # recall from 0 to 1
    assert curves["positive"] == 1


def test_no_curves_for_one_class_or_many_classes() -> None:
    assert classifier_curves(np.ones(10), {"candidate": np.linspace(0, 1, 10)}, 1) == {}
    three = np.array([0, 1, 2] * 5)
    assert classifier_curves(three, {"candidate": np.ones((15, 3)) / 3}, 1) == {}


def test_residuals_are_a_shared_sample_of_at_most_1000_rows() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=3000)
    sample = residual_sample(y, {"candidate": y + 1.0, "champion": y - 2.0}, rng)
    assert (sample["rows"], sample["sampled"]) == (3000, 1000)
    assert set(sample["candidate"]["residual"]) == {-1.0}
    assert set(sample["champion"]["residual"]) == {2.0}
    small = residual_sample(y[:10], {"candidate": y[:10]}, rng)
    assert small["sampled"] == 10


def test_the_record_carries_curves_or_residuals_and_stays_small() -> None:
    data = scored_frame(0, 5000)
    rec = evaluate_candidate(
        Reads("b"),
        Reads("a"),
        data,
        model=classifier("a", "b"),
        evaluate=settings(slices={"columns": ["region", "a"]}, fairness={"sensitive": ["sex"]}),
        champion_version=1,
        rng=np.random.default_rng(0),
    )
    curves = rec.extra["curves"]
    assert set(curves["roc"]) == set(curves["pr"]) == {"candidate", "champion"}
    assert len(json.dumps(rec.to_dict())) < 200_000

    reg = pd.DataFrame({"a": data["a"], "b": data["b"], "y": data["a"] + 0.1})
    rec = evaluate_candidate(
        Reads("b", regression=True),
        Reads("a", regression=True),
        reg,
        model=regressor("a", "b"),
        evaluate=settings(metric="rmse"),
        champion_version=1,
        rng=np.random.default_rng(0),
    )
    assert "curves" not in rec.extra
    assert len(rec.extra["residuals"]["candidate"]["predicted"]) == 1000  # of 5,000 rows
    assert len(json.dumps(rec.to_dict())) < 200_000
