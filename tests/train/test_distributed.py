"""Distributed training: LightGBM and XGBoost train on a Dask cluster, others fall back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("distributed")
lightgbm = pytest.importorskip("lightgbm")
xgboost = pytest.importorskip("xgboost")

import dask.dataframe as dd  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402
from sklearn.metrics import r2_score, roc_auc_score  # noqa: E402

from retrainer.errors import TrainingError, UntrustedArtifactError  # noqa: E402
from retrainer.registry.serialization import dump_model, load_model  # noqa: E402
from retrainer.spec import Features, ModelSection, TrainSection  # noqa: E402
from retrainer.train import EstimatorTrainer, build_trainer  # noqa: E402
from retrainer.train.distributed import TRUSTED_TYPES, fit_distributed  # noqa: E402

# What a user lists under train.trusted_types to load the stored pipeline.
LGBM_CLASSIFIER_TRUSTED = [
    "collections.OrderedDict",
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMClassifier",
]
LGBM_REGRESSOR_TRUSTED = [
    "collections.OrderedDict",
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMRegressor",
]
XGB_CLASSIFIER_TRUSTED = ["xgboost.core.Booster", "xgboost.sklearn.XGBClassifier"]

SEED = 7

pytestmark = [
    # LightGBM's Dask trainer says this on every fit.
    pytest.mark.filterwarnings("ignore:Parameter n_jobs will be ignored:UserWarning"),
    # Another cluster (a parallel test worker) holds the scheduler's HTTP port.
    pytest.mark.filterwarnings("ignore:Port .* is already in use:UserWarning"),
]
FEATURES = ["x1", "x2", "color"]


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()


def classification(seed: int, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    color = rng.choice(["red", "green", "blue"], size=n)
    signal = x1 - 0.5 * x2 + 1.5 * (color == "red")
    y = (signal + rng.normal(scale=0.7, size=n) > 0.5).astype(int)
    frame = pd.DataFrame({"x1": x1, "x2": x2, "color": color, "y": y})
    frame.loc[rng.random(n) < 0.05, "color"] = None  # missing is a category of its own
    return frame


def regression(seed: int, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    y = 2.0 * x1 + np.sin(2 * x2) + rng.normal(scale=0.3, size=n)
    return pd.DataFrame({"x1": x1, "x2": x2, "y": y})


def trainer(
    estimator: str,
    *,
    task: str = "classification",
    categorical: tuple[str, ...] = ("color",),
    **params: Any,
) -> EstimatorTrainer:
    model = ModelSection(
        name="toy",
        task=task,
        target="y",
        features=Features(numeric=["x1", "x2"], categorical=list(categorical)),
    )
    built = build_trainer(model, TrainSection(estimator=estimator, params=params))
    assert isinstance(built, EstimatorTrainer)
    return built


def on_dask(frame: pd.DataFrame) -> dd.DataFrame:
    return dd.from_pandas(frame, npartitions=4, sort=False)


def fit_on(client: Client, spec: EstimatorTrainer, frame: pd.DataFrame) -> Any:
    """The pipeline trained on Dask (it must not fall back)."""
    fitted = fit_distributed(spec, on_dask(frame), client, seed=SEED)
    assert fitted is not None
    return fitted


TRAIN, HOLDOUT = classification(0, 3000), classification(1, 1000)


@pytest.fixture(scope="module")
def lgbm_fitted(client: Client) -> tuple[Any, Any]:
    spec = trainer("lightgbm.LGBMClassifier", n_estimators=40, num_leaves=15, verbose=-1)
    return fit_on(client, spec, TRAIN), spec.fit(TRAIN, seed=SEED)


@pytest.fixture(scope="module")
def xgb_fitted(client: Client) -> tuple[Any, Any]:
    spec = trainer("xgboost.XGBClassifier", n_estimators=40, max_depth=4)
    return fit_on(client, spec, TRAIN), spec.fit(TRAIN, seed=SEED)


def auc(model: Any) -> float:
    return float(roc_auc_score(HOLDOUT["y"], model.predict_proba(HOLDOUT[FEATURES])[:, 1]))


def assert_same_layout(distributed: Any, local: Any) -> None:
    """The Dask-trained pipeline encodes features exactly as the locally trained one."""
    assert [name for name, _ in distributed.steps] == ["features", "estimator"]
    ours, theirs = distributed.named_steps["features"], local.named_steps["features"]
    assert list(ours.get_feature_names_out()) == list(theirs.get_feature_names_out())
    assert "categorical__color_nan" in ours.get_feature_names_out()
    np.testing.assert_array_equal(
        ours.transform(HOLDOUT[FEATURES]), theirs.transform(HOLDOUT[FEATURES])
    )
    # Like a local fit, the estimator sees arrays: no feature names to check at predict.
    assert not hasattr(distributed.named_steps["estimator"], "feature_names_in_")


def assert_codes_layout(distributed: Any) -> None:
    """LightGBM on Dask: each categorical feature is one column of codes (levels in
    sorted order, unknown and missing as NaN), declared categorical to the booster."""
    assert [name for name, _ in distributed.steps] == ["features", "estimator"]
    features = distributed.named_steps["features"]
    assert list(features.get_feature_names_out()) == [
        "numeric__x1",
        "numeric__x2",
        "categorical__color",
    ]
    rows = HOLDOUT[FEATURES].head(50).copy()
    rows.loc[rows.index[0], "color"] = "purple"  # a level the training data never had
    encoded = features.transform(rows)
    np.testing.assert_array_equal(encoded[:, :2], rows[["x1", "x2"]].to_numpy())
    expected = rows["color"].map({"blue": 0.0, "green": 1.0, "red": 2.0}).to_numpy(dtype=float)
    np.testing.assert_array_equal(encoded[:, 2], expected)  # NaN where purple or missing
    infos = distributed.named_steps["estimator"].booster_.dump_model()["feature_infos"]
    assert infos["Column_2"]["values"], infos  # a categorical split feature
    assert not infos["Column_0"]["values"]
    assert not hasattr(distributed.named_steps["estimator"], "feature_names_in_")


# -- LightGBM -------------------------------------------------------------------------


def test_lightgbm_classifier_on_dask_scores_like_local_training(
    lgbm_fitted: tuple[Any, Any],
) -> None:
    distributed, local = lgbm_fitted
    assert isinstance(distributed.named_steps["estimator"], lightgbm.LGBMClassifier)
    assert distributed.named_steps["estimator"].random_state == SEED
    assert_codes_layout(distributed)
    assert auc(distributed) > 0.8
    assert abs(auc(distributed) - auc(local)) <= 0.03
    assert set(distributed.predict(HOLDOUT[FEATURES])) <= {0, 1}


def test_unknown_categories_are_ignored_at_prediction(lgbm_fitted: tuple[Any, Any]) -> None:
    distributed, _ = lgbm_fitted
    rows = HOLDOUT[FEATURES].head(3).assign(color="purple")
    assert distributed.predict_proba(rows).shape == (3, 2)


def test_lightgbm_regressor_on_dask_fits_like_local_training(client: Client) -> None:
    spec = trainer(
        "lightgbm.LGBMRegressor", task="regression", categorical=(), n_estimators=40, verbose=-1
    )
    train, holdout = regression(2, 3000), regression(3, 1000)
    distributed = fit_on(client, spec, train)
    local = spec.fit(train, seed=SEED)
    assert isinstance(distributed.named_steps["estimator"], lightgbm.LGBMRegressor)
    assert list(TRUSTED_TYPES["lightgbm.LGBMRegressor"]) == LGBM_REGRESSOR_TRUSTED
    r2 = r2_score(holdout["y"], distributed.predict(holdout[["x1", "x2"]]))
    r2_local = r2_score(holdout["y"], local.predict(holdout[["x1", "x2"]]))
    assert r2 > 0.8
    assert abs(r2 - r2_local) <= 0.03
    loaded = load_model(dump_model(distributed), extra_trusted=LGBM_REGRESSOR_TRUSTED)
    np.testing.assert_array_equal(
        loaded.predict(holdout[["x1", "x2"]]), distributed.predict(holdout[["x1", "x2"]])
    )


# -- XGBoost --------------------------------------------------------------------------


def test_xgboost_classifier_on_dask_scores_like_local_training(
    xgb_fitted: tuple[Any, Any],
) -> None:
    distributed, local = xgb_fitted
    estimator = distributed.named_steps["estimator"]
    assert isinstance(estimator, xgboost.XGBClassifier)
    assert (estimator.n_classes_, list(estimator.classes_)) == (2, [0, 1])
    assert_same_layout(distributed, local)
    assert auc(distributed) > 0.8
    assert abs(auc(distributed) - auc(local)) <= 0.03


def test_xgboost_multiclass_keeps_its_classes(client: Client) -> None:
    train = TRAIN.assign(y=np.digitize(TRAIN["x1"], [-0.5, 0.5]))
    spec = trainer("xgboost.XGBClassifier", categorical=(), n_estimators=20, max_depth=3)
    distributed = fit_on(client, spec, train)
    estimator = distributed.named_steps["estimator"]
    assert (estimator.n_classes_, list(estimator.classes_)) == (3, [0, 1, 2])
    proba = distributed.predict_proba(train[["x1", "x2"]])
    assert proba.shape == (len(train), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert (distributed.predict(train[["x1", "x2"]]) == train["y"]).mean() > 0.9


# -- serialization --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fitted", "estimator", "trusted"),
    [
        ("lgbm_fitted", "lightgbm.LGBMClassifier", LGBM_CLASSIFIER_TRUSTED),
        ("xgb_fitted", "xgboost.XGBClassifier", XGB_CLASSIFIER_TRUSTED),
    ],
)
def test_the_pipeline_loads_with_exactly_the_documented_trusted_types(
    fitted: str, estimator: str, trusted: list[str], request: pytest.FixtureRequest
) -> None:
    distributed, _ = request.getfixturevalue(fitted)
    assert list(TRUSTED_TYPES[estimator]) == trusted
    data = dump_model(distributed)
    loaded = load_model(data, extra_trusted=trusted)
    np.testing.assert_array_equal(
        loaded.predict_proba(HOLDOUT[FEATURES]), distributed.predict_proba(HOLDOUT[FEATURES])
    )
    for left_out in trusted:  # every entry is needed
        with pytest.raises(UntrustedArtifactError, match=left_out.replace(".", r"\.")):
            load_model(data, extra_trusted=[t for t in trusted if t != left_out])


# -- fallbacks and failures -----------------------------------------------------------


def test_other_estimators_are_not_trained_on_dask(client: Client) -> None:
    spec = trainer("sklearn.linear_model.LogisticRegression")
    assert fit_distributed(spec, on_dask(TRAIN), client, seed=SEED) is None


def test_bad_params_raise_a_training_error_naming_the_estimator(client: Client) -> None:
    spec = trainer("lightgbm.LGBMClassifier", num_leaves=-5, n_estimators=5, verbose=-1)
    with pytest.raises(TrainingError, match=r"^lightgbm\.LGBMClassifier\.fit failed: "):
        fit_distributed(spec, on_dask(TRAIN), client, seed=SEED)


def test_a_missing_feature_column_is_named(client: Client) -> None:
    spec = trainer("xgboost.XGBClassifier", n_estimators=5)
    with pytest.raises(TrainingError, match=r"lacks column.*color"):
        fit_distributed(spec, on_dask(TRAIN.drop(columns="color")), client, seed=SEED)


def test_lightgbm_refuses_partitions_that_lack_a_class(client: Client) -> None:
    # Each worker would see one class only, and LightGBM would silently learn nothing.
    spec = trainer("lightgbm.LGBMClassifier", categorical=(), n_estimators=5, verbose=-1)
    ordered = TRAIN.sort_values("y", ignore_index=True)
    halves = dd.from_pandas(ordered, npartitions=2, sort=False)
    with pytest.raises(TrainingError, match=r"needs every class in each worker's rows"):
        fit_distributed(spec, halves, client, seed=SEED)
    # XGBoost encodes labels once for the whole data: the same partitions train fine.
    xgb = trainer("xgboost.XGBClassifier", categorical=(), n_estimators=5)
    assert list(fit_on(client, xgb, ordered).named_steps["estimator"].classes_) == [0, 1]
