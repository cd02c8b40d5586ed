"""Realised performance: the champion's metric on the labelled rows of a new batch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import log_loss, mean_squared_error, roc_auc_score

from retrainer.monitor import realised_metric

FEATURES = ["x1", "x2"]


def batch(seed: int, n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    y = (x1 + rng.normal(scale=0.8, size=n) > 0).astype(float)
    return pd.DataFrame({"x1": x1, "x2": x2, "y": y})


@pytest.fixture(scope="module")
def model() -> LogisticRegression:
    train = batch(0, 500)
    return LogisticRegression().fit(train[FEATURES], train["y"])


def realised(
    model: object, frame: pd.DataFrame, metric: str = "roc_auc", **kw: int
) -> float | None:
    return realised_metric(model, frame, metric=metric, features=FEATURES, target="y", **kw)


def test_it_scores_only_the_rows_whose_label_has_arrived(model: LogisticRegression) -> None:
    frame = batch(1)
    frame.loc[frame.index[::3], "y"] = np.nan  # a third of the labels are still missing
    labelled = frame.dropna(subset=["y"])
    proba = model.predict_proba(labelled[FEATURES])[:, 1]
    assert realised(model, frame) == pytest.approx(roc_auc_score(labelled["y"], proba), abs=1e-12)
    assert realised(model, frame, "log_loss") == pytest.approx(
        log_loss(labelled["y"], proba), abs=1e-12
    )


def test_a_regression_metric_uses_the_predictions() -> None:
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"x1": rng.normal(size=100), "x2": rng.normal(size=100)})
    frame["y"] = 3 * frame["x1"] + rng.normal(size=100)
    reg = LinearRegression().fit(frame[FEATURES].iloc[:50], frame["y"].iloc[:50])
    expected = np.sqrt(mean_squared_error(frame["y"], reg.predict(frame[FEATURES])))
    assert realised(reg, frame, "rmse") == pytest.approx(expected, abs=1e-12)


def test_min_rows_counts_labelled_rows_and_is_inclusive(model: LogisticRegression) -> None:
    frame = batch(3, 60)
    frame.loc[frame.index[:10], "y"] = np.nan  # 50 labelled rows remain
    assert realised(model, frame, min_rows=50) is not None
    assert realised(model, frame, min_rows=51) is None


def test_no_target_column_or_no_labels_gives_none(model: LogisticRegression) -> None:
    assert realised(model, batch(4).drop(columns="y")) is None
    unlabelled = batch(4).assign(y=np.nan)
    assert realised(model, unlabelled) is None


@pytest.mark.filterwarnings("ignore:Only one class is present:UserWarning")
@pytest.mark.parametrize("metric", ["roc_auc", "log_loss"])
def test_an_undefined_metric_gives_none_not_an_error(
    model: LogisticRegression, metric: str
) -> None:
    one_class = batch(5).assign(y=1.0)  # roc_auc is NaN here, log_loss raises in sklearn
    assert realised(model, one_class, metric) is None
