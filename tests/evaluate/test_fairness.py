"""The fairness gate: fairlearn's own numbers, thresholds, groups named in the reason."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from evalkit import Reads, classifier, regressor, scored_frame, settings
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    equalized_odds_difference,
    selection_rate,
)
from sklearn.metrics import roc_auc_score

from retrainer.evaluate import evaluate_candidate


def judge(holdout: pd.DataFrame, *, champion: bool = True, **fairness: Any) -> Any:
    rec = evaluate_candidate(
        Reads("b"),
        Reads("a") if champion else None,
        holdout,
        model=classifier("a", "b"),  # 'sex' is not a model input
        evaluate=settings(fairness={"sensitive": ["sex"], **fairness}),
        champion_version=1 if champion else None,
        rng=np.random.default_rng(0),
    )
    return rec, next(g for g in rec.gates if g.name == "fairness")


def biased(seed: int = 0, n: int = 1000) -> pd.DataFrame:
    """The candidate predicts positive more often for 'M': selection rates differ."""
    data = scored_frame(seed, n)
    men = data["sex"] == "M"
    data.loc[men, "b"] = np.clip(data.loc[men, "b"] + 0.3, 0, 1)
    return data


def test_numbers_equal_fairlearn_on_the_same_data() -> None:
    data = biased()
    _, g = judge(
        data, demographic_parity_max=1.0, equalized_odds_max=1.0, metric_difference_max=1.0
    )
    y, pred, sex = data["y"], (data["b"] >= 0.5).astype(int), data["sex"]
    mine = g.numbers["features"]["sex"]["candidate"]
    assert mine["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(y, pred, sensitive_features=sex), abs=1e-12
    )
    assert mine["equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(y, pred, sensitive_features=sex), abs=1e-12
    )
    frame = MetricFrame(
        metrics={"auc": roc_auc_score, "sel": selection_rate},
        y_true=y,
        y_pred=data["b"],
        sensitive_features=sex,
    )
    assert mine["metric_difference"] == pytest.approx(frame.difference()["auc"], abs=1e-12)
    rows = {r["group"]: r for r in g.details}
    for group in ("F", "M"):
        assert rows[group]["candidate"] == pytest.approx(
            frame.by_group.loc[group, "auc"], abs=1e-12
        )
        members = (sex == group).to_numpy()
        assert rows[group]["selection_rate"] == pytest.approx(pred[members].mean(), abs=1e-12)
        assert rows[group]["rows"] == members.sum()
    assert g.status == "pass"


def test_breaking_demographic_parity_blocks_and_names_the_groups() -> None:
    rec, g = judge(biased(), demographic_parity_max=0.1, equalized_odds_max=None)
    assert g.status == "fail" and not rec.passed
    assert "demographic parity difference on sex is" in g.reason
    assert "for 'M' vs" in g.reason and "for 'F'" in g.reason
    assert "> 0.1" in g.reason


def test_breaking_equalized_odds_blocks_and_names_the_groups() -> None:
    _, g = judge(biased(), demographic_parity_max=None, equalized_odds_max=0.05)
    assert g.status == "fail"
    assert "equalized odds difference on sex" in g.reason
    assert "'M'" in g.reason and "'F'" in g.reason


def test_a_fair_candidate_passes_and_the_champion_is_shown_for_context() -> None:
    rec, g = judge(scored_frame(0, 1000))
    assert g.status == "pass" and rec.passed
    entry = g.numbers["features"]["sex"]
    assert entry["champion"] == entry["candidate"]  # the two read the same scores
    assert all("champion" in r for r in g.details)


def test_small_groups_are_listed_not_judged() -> None:
    data = scored_frame(0, 600)
    data.loc[data.index[:10], "sex"] = "X"
    _, g = judge(data)
    small = [r for r in g.details if not r["judged"]]
    assert small == [{"feature": "sex", "group": "X", "rows": 10, "judged": False}]
    assert g.numbers["features"]["sex"]["judged_groups"] == 2


def test_a_group_with_one_label_class_makes_equalized_odds_not_evaluable() -> None:
    data = scored_frame(0, 800)
    data.loc[(data["sex"] == "F") & (data["y"] == 0), "sex"] = "M"  # every F is positive
    _, g = judge(data, demographic_parity_max=None)
    assert g.status == "not_evaluable"
    assert "equalized odds is undefined for group(s) 'F'" in g.reason
    _, g = judge(data)  # parity also breaks: a fail, and the undefined part is still said
    assert g.status == "fail" and "demographic parity" in g.reason and "undefined" in g.reason


def test_a_missing_sensitive_column_is_not_evaluable() -> None:
    _, g = judge(scored_frame(0, 200), sensitive=["age_band"])
    assert g.status == "not_evaluable" and "age_band" in g.reason


def test_regressors_use_the_metric_gap_between_groups() -> None:
    rng = np.random.default_rng(0)
    n = 600
    data = pd.DataFrame({"y": rng.normal(size=n), "sex": rng.choice(["F", "M"], size=n)})
    noise = np.where(data["sex"] == "M", 1.0, 0.1)
    data["b"] = data["y"] + rng.normal(size=n) * noise
    rec = evaluate_candidate(
        Reads("b", regression=True),
        None,
        data,
        model=regressor("b"),
        evaluate=settings(
            metric="mae", fairness={"sensitive": ["sex"], "metric_difference_max": 0.2}
        ),
        champion_version=None,
        rng=rng,
    )
    g = next(g for g in rec.gates if g.name == "fairness")
    assert g.status == "fail" and "metric difference on sex" in g.reason
    assert "mae" in g.reason and "'M'" in g.reason


def test_a_regression_spec_must_set_the_metric_gap() -> None:
    from retrainer.errors import SpecError
    from retrainer.spec import parse_spec

    text = """
model: {name: m, task: regression, target: y, features: {numeric: [x]}}
data: {source: d, holdout: {by: random}}
train: {estimator: sklearn.linear_model.LinearRegression}
evaluate: {metric: mae, fairness: {sensitive: [sex]}}
"""
    with pytest.raises(SpecError, match="metric_difference_max"):
        parse_spec(text)
