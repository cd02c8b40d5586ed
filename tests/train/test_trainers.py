"""Trainers: a scikit-learn estimator by dotted path, or the user's own function."""

from __future__ import annotations

import importlib
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from retrainer.errors import SpecError, TrainingError
from retrainer.spec import Features, ModelSection, TrainSection
from retrainer.train import EntrypointTrainer, EstimatorTrainer, build_trainer

MODEL = ModelSection(
    name="toy",
    task="classification",
    target="y",
    features=Features(numeric=["x1", "x2"], categorical=["color"]),
)


def frame(seed: int = 0, n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    color = rng.choice(["red", "green", "blue"], size=n)
    y = (x1 + (color == "red") + rng.normal(scale=0.7, size=n) > 0.5).astype(int)
    return pd.DataFrame({"ts": np.arange(n), "x1": x1, "x2": x2, "color": color, "y": y})


def estimator(path: str, **params: Any) -> EstimatorTrainer:
    trainer = build_trainer(MODEL, TrainSection(estimator=path, params=params))
    assert isinstance(trainer, EstimatorTrainer)
    return trainer


def entrypoint(path: str) -> EntrypointTrainer:
    trainer = build_trainer(MODEL, TrainSection(entrypoint=path))
    assert isinstance(trainer, EntrypointTrainer)
    return trainer


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], str]]:
    """Write a module of the user's into tmp_path, importable by a fresh name."""
    monkeypatch.syspath_prepend(str(tmp_path))
    names: list[str] = []

    def write(source: str) -> str:
        name = f"user_training_{uuid.uuid4().hex[:10]}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        importlib.invalidate_caches()
        names.append(name)
        return name

    yield write
    for name in names:
        sys.modules.pop(name, None)


# -- estimator ------------------------------------------------------------------------


def test_an_estimator_is_fitted_with_its_params_and_predicts() -> None:
    trainer = estimator("sklearn.linear_model.LogisticRegression", C=0.25, max_iter=321)
    data = frame()
    model = trainer.fit(data, seed=0)
    fitted = model.named_steps["estimator"]
    assert isinstance(fitted, LogisticRegression)
    assert (fitted.C, fitted.max_iter) == (0.25, 321)
    assert fitted.random_state == 0  # LogisticRegression takes random_state: seeded too
    proba = model.predict_proba(data[["x1", "x2", "color"]])
    assert proba.shape == (300, 2)
    assert trainer.describe() == {
        "estimator": "sklearn.linear_model.LogisticRegression",
        "params": {"C": 0.25, "max_iter": 321},
    }


def test_the_seed_is_random_state_and_fixes_the_model() -> None:
    trainer = estimator("sklearn.ensemble.RandomForestClassifier", n_estimators=5, max_depth=3)
    data, new = frame(0), frame(1)
    a, b, c = (trainer.fit(data, seed=s) for s in (7, 7, 8))
    assert isinstance(a.named_steps["estimator"], RandomForestClassifier)
    assert a.named_steps["estimator"].random_state == 7
    np.testing.assert_array_equal(a.predict_proba(new), b.predict_proba(new))
    assert not np.array_equal(a.predict_proba(new), c.predict_proba(new))


def test_a_random_state_in_params_wins_over_the_seed() -> None:
    trainer = estimator("sklearn.ensemble.RandomForestClassifier", n_estimators=3, random_state=1)
    assert trainer.fit(frame(), seed=99).named_steps["estimator"].random_state == 1


def test_categories_are_one_hot_encoded_and_unknown_ones_ignored() -> None:
    model = estimator("sklearn.linear_model.LogisticRegression").fit(frame(), seed=0)
    encoder = model.named_steps["features"].named_transformers_["categorical"]
    assert list(encoder.categories_[0]) == ["blue", "green", "red"]
    unseen = frame(2, 5).assign(color="purple")
    assert model.predict(unseen).shape == (5,)


def test_a_regressor_without_random_state_is_not_given_one() -> None:
    model = ModelSection(
        name="toy", task="regression", target="x2", features=Features(numeric=["x1"])
    )
    trainer = build_trainer(model, TrainSection(estimator="sklearn.linear_model.LinearRegression"))
    fitted = trainer.fit(frame(), seed=5)
    assert not hasattr(fitted.named_steps["estimator"], "random_state")


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("nosuchpackage_xyz.models.Model", ["train.estimator", "'nosuchpackage_xyz.models'"]),
        ("sklearn.linear_model.NoSuchRegression", ["train.estimator", "'NoSuchRegression'"]),
        ("sklearn.metrics.accuracy_score", ["train.estimator", "not an estimator class"]),
    ],
)
def test_a_bad_estimator_path_is_a_spec_error_naming_it(path: str, words: list[str]) -> None:
    with pytest.raises(SpecError) as info:
        estimator(path)
    for word in words:
        assert word in str(info.value)
    assert info.value.code == "SPEC_INVALID"


def test_an_unknown_param_is_a_spec_error_listing_what_is_accepted() -> None:
    with pytest.raises(SpecError) as info:
        estimator("sklearn.linear_model.LogisticRegression", C=1.0, learning_rate=0.1)
    message = str(info.value)
    assert message.startswith("train.params: sklearn.linear_model.LogisticRegression")
    assert "takes no parameter learning_rate" in message
    assert "max_iter" in message  # what it does take


def test_a_class_taking_keyword_arguments_accepts_any_param(
    user_module: Callable[[str], str],
) -> None:
    name = user_module(
        """
        class Flexible:
            def __init__(self, C=1.0, **options):
                self.C, self.options = C, options

            def fit(self, X, y):
                self.n_rows_ = len(X)
                return self

            def predict(self, X):
                return [0] * len(X)
        """
    )
    fitted = estimator(f"{name}.Flexible", C=0.5, anything=3).fit(frame(), seed=0)
    model = fitted.named_steps["estimator"]
    assert (model.C, model.options, model.n_rows_) == (0.5, {"anything": 3}, 300)


def test_a_failing_fit_is_a_training_error_with_the_cause() -> None:
    trainer = estimator("sklearn.linear_model.LogisticRegression", C=-1.0)  # invalid at fit
    with pytest.raises(TrainingError) as info:
        trainer.fit(frame(), seed=0)
    assert str(info.value).startswith("sklearn.linear_model.LogisticRegression.fit failed:")
    assert "'C'" in str(info.value)
    assert info.value.__cause__ is not None


def test_missing_feature_columns_are_named() -> None:
    trainer = estimator("sklearn.linear_model.LogisticRegression")
    with pytest.raises(TrainingError, match="lacks feature column\\(s\\): x2, color"):
        trainer.fit(frame().drop(columns=["x2", "color"]), seed=0)


# -- entrypoint -----------------------------------------------------------------------

RECORDING_FIT = """
from sklearn.ensemble import RandomForestClassifier

def fit(frame, *, features, target, seed):
    model = RandomForestClassifier(n_estimators=4, random_state=seed)
    model.fit(frame[["x1", "x2"]], frame[target])
    model.called_with_ = {
        "columns": list(frame.columns), "features": features, "target": target, "seed": seed,
    }
    return model
"""


def test_the_entrypoint_is_called_with_the_documented_contract(
    user_module: Callable[[str], str],
) -> None:
    name = user_module(RECORDING_FIT)
    trainer = entrypoint(f"{name}:fit")
    model = trainer.fit(frame(), seed=11)
    assert model.called_with_ == {
        "columns": ["ts", "x1", "x2", "color", "y"],  # every column of the data
        "features": ["x1", "x2", "color"],  # numeric, then categorical
        "target": "y",
        "seed": 11,
    }
    assert trainer.describe() == {"entrypoint": f"{name}:fit"}


def test_the_entrypoint_gets_the_seed_so_the_same_seed_trains_the_same_model(
    user_module: Callable[[str], str],
) -> None:
    trainer = entrypoint(f"{user_module(RECORDING_FIT)}:fit")
    new = frame(3)[["x1", "x2"]]
    a, b, c = (trainer.fit(frame(), seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.predict_proba(new), b.predict_proba(new))
    assert not np.array_equal(a.predict_proba(new), c.predict_proba(new))


def test_a_dotted_module_path_is_imported(
    user_module: Callable[[str], str], tmp_path: Path
) -> None:
    package = f"userpkg_{uuid.uuid4().hex[:10]}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / package / "training.py").write_text(textwrap.dedent(RECORDING_FIT))
    importlib.invalidate_caches()
    try:
        model = entrypoint(f"{package}.training:fit").fit(frame(), seed=0)
        assert model.called_with_["seed"] == 0
    finally:
        for mod in (package, f"{package}.training"):
            sys.modules.pop(mod, None)


@pytest.mark.parametrize(
    ("source", "attr", "words"),
    [
        ("", "fit", ["has no 'fit'"]),
        ("fit = 42\n", "fit", ["is not callable"]),
        ("def fit(:\n", "fit", ["importing module", "SyntaxError"]),
        ("raise RuntimeError('no config file')\n", "fit", ["RuntimeError: no config file"]),
    ],
)
def test_a_bad_entrypoint_is_a_spec_error_naming_the_field(
    user_module: Callable[[str], str], source: str, attr: str, words: list[str]
) -> None:
    name = user_module(source)
    with pytest.raises(SpecError) as info:
        entrypoint(f"{name}:{attr}")
    message = str(info.value)
    assert message.startswith("train.entrypoint: ")
    assert name in message
    for word in words:
        assert word in message


def test_a_missing_entrypoint_module_is_a_spec_error_naming_it() -> None:
    with pytest.raises(SpecError) as info:
        entrypoint("no_such_user_module_xyz.training:fit")
    assert str(info.value).startswith(
        "train.entrypoint: cannot import module 'no_such_user_module_xyz.training'"
    )


@pytest.mark.parametrize(("returns", "type_name"), [("None", "NoneType"), ("{'w': 1}", "dict")])
def test_an_entrypoint_that_returns_no_model_is_a_training_error(
    user_module: Callable[[str], str], returns: str, type_name: str
) -> None:
    name = user_module(f"def fit(frame, *, features, target, seed):\n    return {returns}\n")
    with pytest.raises(TrainingError) as info:
        entrypoint(f"{name}:fit").fit(frame(), seed=0)
    assert str(info.value) == (
        f"{name}:fit returned {type_name}, expected a fitted model with a predict() method"
    )


def test_an_entrypoint_that_raises_is_a_training_error_with_the_cause(
    user_module: Callable[[str], str],
) -> None:
    name = user_module(
        "def fit(frame, *, features, target, seed):\n    raise ValueError('bad column y2')\n"
    )
    with pytest.raises(TrainingError) as info:
        entrypoint(f"{name}:fit").fit(frame(), seed=0)
    assert str(info.value) == f"{name}:fit failed: bad column y2"
    assert isinstance(info.value.__cause__, ValueError)


def test_an_entrypoint_with_the_wrong_signature_is_a_training_error(
    user_module: Callable[[str], str],
) -> None:
    name = user_module("def fit(frame):\n    return frame\n")
    with pytest.raises(TrainingError, match="unexpected keyword argument"):
        entrypoint(f"{name}:fit").fit(frame(), seed=0)
