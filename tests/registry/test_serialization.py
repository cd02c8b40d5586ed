"""Safe model serialization: skops round trips, trust decided by retrainer, no pickle."""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder
from sklearn.svm import SVR
from sklearn.tree import DecisionTreeClassifier
from sklearn.tree._tree import Tree

from retrainer.errors import ArtifactIntegrityError, SpecError, UntrustedArtifactError
from retrainer.registry.serialization import DEFAULT_TRUSTED_TYPES, dump_model, load_model

NUMERIC = ["temperature", "humidity"]
CATEGORICAL = ["region"]


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "temperature": rng.normal(15, 8, n),
            "humidity": rng.uniform(0, 1, n),
            "region": rng.choice(["north", "south", "east"], n),
        }
    )


def _target(frame: pd.DataFrame) -> pd.Series[int]:
    signal = frame["humidity"] * 2 - frame["temperature"] / 20 + (frame["region"] == "north")
    return (signal > 0.5).astype(int)


def _pipeline(estimator: BaseEstimator) -> Pipeline:
    encode = ColumnTransformer(
        [("categorical", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL)],
        remainder="passthrough",
    )
    return Pipeline([("encode", encode), ("model", estimator)])


def _type_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    return _frame(400, seed=0)


@pytest.fixture(scope="module")
def unseen() -> pd.DataFrame:
    frame = _frame(50, seed=1)
    frame.loc[:4, "region"] = "atlantis"  # unknown category at predict time
    return frame


ESTIMATORS: dict[str, Callable[[], BaseEstimator]] = {
    "hist_gradient_boosting": lambda: HistGradientBoostingClassifier(max_iter=30, random_state=0),
    "logistic_regression": lambda: LogisticRegression(max_iter=500),
    "ridge": lambda: Ridge(alpha=0.5),
    "random_forest": lambda: RandomForestRegressor(n_estimators=10, random_state=0),
}


@pytest.mark.parametrize("name", ESTIMATORS)
def test_pipeline_round_trip_predicts_identically(
    name: str, train: pd.DataFrame, unseen: pd.DataFrame
) -> None:
    model = _pipeline(ESTIMATORS[name]()).fit(train, _target(train))

    loaded = load_model(dump_model(model))

    np.testing.assert_array_equal(loaded.predict(unseen), model.predict(unseen))
    if hasattr(model, "predict_proba"):
        np.testing.assert_array_equal(loaded.predict_proba(unseen), model.predict_proba(unseen))


def test_native_categorical_hist_gradient_boosting_round_trip(train: pd.DataFrame) -> None:
    frame = train.assign(region=train["region"].astype("category"))
    model = HistGradientBoostingClassifier(max_iter=20, categorical_features="from_dtype")
    model.fit(frame, _target(train))

    loaded = load_model(dump_model(model))

    np.testing.assert_array_equal(loaded.predict_proba(frame), model.predict_proba(frame))


def test_gradient_boosting_round_trip(train: pd.DataFrame) -> None:
    model = GradientBoostingRegressor(n_estimators=10).fit(train[NUMERIC], _target(train))

    loaded = load_model(dump_model(model))

    np.testing.assert_array_equal(loaded.predict(train[NUMERIC]), model.predict(train[NUMERIC]))


# --- trust ---------------------------------------------------------------------------------


class HandRolledModel:
    """A user-defined model class: not trusted unless the spec says so."""

    def __init__(self) -> None:
        self.coef = np.array([0.5, -1.0])

    def predict(self, features: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        return np.asarray(features @ self.coef)


def test_user_class_is_refused_with_its_name_and_the_fix() -> None:
    with pytest.raises(UntrustedArtifactError) as caught:
        load_model(dump_model(HandRolledModel()))

    assert _type_name(HandRolledModel) in str(caught.value)
    assert "train.trusted_types" in str(caught.value)


@pytest.mark.parametrize(
    "trusted", [_type_name(HandRolledModel), f"{HandRolledModel.__module__}.*"]
)
def test_user_class_loads_when_trusted_by_name_or_pattern(trusted: str) -> None:
    loaded = load_model(dump_model(HandRolledModel()), extra_trusted=[trusted])

    assert isinstance(loaded, HandRolledModel)
    np.testing.assert_array_equal(loaded.predict(np.eye(2)), [0.5, -1.0])


def test_dangerous_callables_are_never_trusted() -> None:
    model = FunctionTransformer(func=os.system)

    with pytest.raises(UntrustedArtifactError, match=r"posix\.system.*never trusted"):
        load_model(dump_model(model), extra_trusted=["posix.*", "posix.system"])


@pytest.mark.parametrize("entry", ["*", "", "os system", "lightgbm.**", ".lightgbm", "a.*.b"])
def test_malformed_trusted_entries_are_spec_errors(entry: str) -> None:
    with pytest.raises(SpecError, match=r"train\.trusted_types"):
        load_model(dump_model(Ridge()), extra_trusted=[entry])


def test_default_trust_list_holds_nothing_dangerous() -> None:
    modules = {name.split(".", 1)[0] for name in DEFAULT_TRUSTED_TYPES}
    assert modules <= {"builtins", "numpy", "scipy", "sklearn", "functools"}
    assert not {n for n in DEFAULT_TRUSTED_TYPES if n.startswith("builtins.")} & {
        "builtins.eval",
        "builtins.exec",
        "builtins.open",
        "builtins.getattr",
    }


# --- pickle canary ------------------------------------------------------------------------


class PickleCanary:
    """Creates ``path`` as a directory if anything ever unpickles it."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (self.path,))


@pytest.mark.parametrize("encode", ["pickle", "joblib", "zipped_pickle"])
def test_pickle_payloads_are_never_unpickled(tmp_path: Path, encode: str) -> None:
    canary = tmp_path / "canary"
    payload = pickle.dumps(PickleCanary(canary))
    if encode == "joblib":
        buffer = io.BytesIO()
        joblib.dump(PickleCanary(canary), buffer)
        payload = buffer.getvalue()
    elif encode == "zipped_pickle":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("schema.json", payload)
            archive.writestr("data.pkl", payload)
        payload = buffer.getvalue()

    with pytest.raises(ArtifactIntegrityError):  # UntrustedArtifactError is a subclass
        load_model(payload, extra_trusted=[_type_name(PickleCanary)])

    assert not canary.exists()


def test_skops_file_holding_the_canary_type_never_runs_reduce(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    payload = dump_model(PickleCanary(canary))

    with pytest.raises(UntrustedArtifactError, match=_type_name(PickleCanary)):
        load_model(payload)
    assert not canary.exists()

    loaded = load_model(payload, extra_trusted=[_type_name(PickleCanary)])
    assert isinstance(loaded, PickleCanary)
    assert not canary.exists()


# --- malformed files ----------------------------------------------------------------------


def test_truncated_skops_file_is_an_integrity_error() -> None:
    payload = dump_model(Ridge().fit([[0.0], [1.0]], [0.0, 1.0]))

    with pytest.raises(ArtifactIntegrityError, match="not a valid skops file"):
        load_model(payload[: len(payload) // 2])


def test_garbage_is_refused() -> None:
    with pytest.raises(UntrustedArtifactError, match="not a skops file"):
        load_model(b"")
    with pytest.raises(UntrustedArtifactError, match="not a skops file"):
        load_model(b"\x00garbage")


def _fitted_tree() -> DecisionTreeClassifier:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 3))
    return DecisionTreeClassifier(max_depth=4).fit(features, features[:, 0] > 0)


def _corrupt_child(model: DecisionTreeClassifier) -> None:
    model.tree_.children_left[0] = 10**6


def _corrupt_cycle(model: DecisionTreeClassifier) -> None:
    model.tree_.children_right[0] = 0


def _corrupt_feature(model: DecisionTreeClassifier) -> None:
    model.tree_.feature[0] = 3


@pytest.mark.parametrize("corrupt", [_corrupt_child, _corrupt_cycle, _corrupt_feature])
def test_crafted_decision_tree_is_refused(
    corrupt: Callable[[DecisionTreeClassifier], None],
) -> None:
    model = _fitted_tree()
    corrupt(model)  # never predict with it: that reads out-of-bounds memory

    with pytest.raises(ArtifactIntegrityError, match=r"malformed sklearn\.tree\._tree\.Tree"):
        load_model(dump_model(model))


def test_forest_tree_is_bounded_by_the_forest_input_width(train: pd.DataFrame) -> None:
    model = RandomForestRegressor(n_estimators=2, random_state=0)
    model.fit(train[NUMERIC], _target(train))  # the forest validates X to 2 columns
    first = model.estimators_[0]
    wide = Tree(3, np.ones(1, dtype=np.intp), 1)  # a crafted tree claiming 3 features
    wide.__setstate__(first.tree_.__getstate__())
    wide.feature[int(np.flatnonzero(wide.children_left != -1)[0])] = 2
    first.tree_, first.n_features_in_ = wide, 3

    with pytest.raises(ArtifactIntegrityError, match="feature index is out of range"):
        load_model(dump_model(model))


@pytest.mark.parametrize(("field", "value"), [("left", 10**6), ("feature_idx", 99)])
def test_crafted_hist_gradient_boosting_tree_is_refused(
    train: pd.DataFrame, field: str, value: int
) -> None:
    model = HistGradientBoostingClassifier(max_iter=3).fit(train[NUMERIC], _target(train))
    nodes = model._predictors[0][0].nodes
    nodes[field][np.flatnonzero(nodes["is_leaf"] == 0)[0]] = value

    with pytest.raises(ArtifactIntegrityError, match=r"malformed .*TreePredictor"):
        load_model(dump_model(model))


def test_crafted_sparse_matrix_is_refused(train: pd.DataFrame) -> None:
    features = scipy.sparse.csr_matrix(train[NUMERIC].to_numpy())
    model = SVR().fit(features, train["humidity"])
    model.support_vectors_.indices[0] = 10**6

    with pytest.raises(ArtifactIntegrityError, match="malformed csr_matrix"):
        load_model(dump_model(model))


def test_crafted_categorical_split_is_refused(train: pd.DataFrame) -> None:
    frame = train.assign(region=train["region"].astype("category"))
    model = HistGradientBoostingClassifier(max_iter=5, categorical_features="from_dtype")
    model.fit(frame, _target(train))
    crafted = False
    for predictor in (p for iteration in model._predictors for p in iteration):
        nodes = predictor.nodes
        categorical = np.flatnonzero((nodes["is_leaf"] == 0) & (nodes["is_categorical"] == 1))
        if categorical.size:
            nodes["bitset_idx"][categorical[0]] = 10**6
            crafted = True
    assert crafted, "expected the model to split on the categorical column"

    with pytest.raises(ArtifactIntegrityError, match="split points past raw_left_cat_bitsets"):
        load_model(dump_model(model))
