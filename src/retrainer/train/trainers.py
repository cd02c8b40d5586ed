"""Trainers: turn a training frame into a fitted model with ``predict`` (and ``predict_proba``).

Two ways, chosen by the spec's ``train`` section:

* ``estimator: sklearn.ensemble.HistGradientBoostingClassifier`` with ``params``: the
  class is wrapped in a Pipeline that one-hot encodes categorical features (unknown
  categories ignored at prediction time) and passes numeric ones through.
* ``entrypoint: mypkg.training:fit``: the user's function, called as
  ``fit(frame, features=[...], target="...", seed=7)``, returns a fitted model.

Both are seeded from the spec, so the same rows and spec train the same model.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any, Protocol

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from retrainer.errors import SpecError, TrainingError
from retrainer.spec import ModelSection, TrainSection

__all__ = ["EntrypointTrainer", "EstimatorTrainer", "Trainer", "build_trainer", "import_object"]


class Trainer(Protocol):
    """Fits a model. Blocking; raises TrainingError when the user's code fails."""

    def fit(self, frame: pd.DataFrame, *, seed: int) -> Any:
        """Return a fitted model trained on ``frame`` (features and target columns)."""
        ...

    def describe(self) -> dict[str, Any]:
        """What is trained, for lineage: class or entrypoint and parameters."""
        ...


def import_object(path: str, *, key: str) -> Any:
    """Import ``pkg.mod.Name`` or ``pkg.mod:name``. Raises SpecError naming ``key``."""
    module_name, _, attr = path.replace(":", ".").rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SpecError(f"{key}: cannot import module {module_name!r} ({exc})") from exc
    except Exception as exc:  # the module itself fails while importing (syntax, top-level code)
        raise SpecError(
            f"{key}: importing module {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise SpecError(f"{key}: module {module_name!r} has no {attr!r}") from exc


class EstimatorTrainer:
    """A scikit-learn estimator class with parameters, behind categorical encoding."""

    def __init__(self, model: ModelSection, train: TrainSection) -> None:
        assert train.estimator is not None
        self.model = model
        self.train = train
        self.cls = import_object(train.estimator, key="train.estimator")
        if not (inspect.isclass(self.cls) and hasattr(self.cls, "fit")):
            raise SpecError(f"train.estimator: {train.estimator!r} is not an estimator class")
        parameters = inspect.signature(self.cls).parameters
        accepted = set(parameters)
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
        unknown = sorted(set(train.params) - accepted)
        if unknown and not takes_any:
            raise SpecError(
                f"train.params: {train.estimator} takes no parameter {', '.join(unknown)} "
                f"(it takes: {', '.join(sorted(accepted))})"
            )
        self._takes_seed = "random_state" in accepted and "random_state" not in train.params

    def fit(self, frame: pd.DataFrame, *, seed: int) -> Any:
        """Fit the pipeline on ``frame``'s features and target."""
        params = dict(self.train.params) | ({"random_state": seed} if self._takes_seed else {})
        feats = self.model.features
        steps: list[tuple[str, Any, list[str]]] = []
        if feats.numeric:
            steps.append(("numeric", "passthrough", list(feats.numeric)))
        if feats.categorical:
            encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
            steps.append(("categorical", encoder, list(feats.categorical)))
        pipeline = Pipeline(
            [("features", ColumnTransformer(steps)), ("estimator", self.cls(**params))]
        )
        X = _features(frame, feats.all)
        try:
            return pipeline.fit(X, frame[self.model.target])
        except Exception as exc:
            raise TrainingError(f"{self.train.estimator}.fit failed: {exc}") from exc

    def describe(self) -> dict[str, Any]:
        """Class path and parameters."""
        return {"estimator": self.train.estimator, "params": dict(self.train.params)}


class EntrypointTrainer:
    """The user's ``fit(frame, *, features, target, seed)`` function."""

    def __init__(self, model: ModelSection, train: TrainSection) -> None:
        assert train.entrypoint is not None
        self.model = model
        self.train = train
        fn = import_object(train.entrypoint, key="train.entrypoint")
        if not callable(fn):
            raise SpecError(f"train.entrypoint: {train.entrypoint!r} is not callable")
        self.fn: Callable[..., Any] = fn

    def fit(self, frame: pd.DataFrame, *, seed: int) -> Any:
        """Call the entrypoint and check it returned something that predicts."""
        try:
            fitted = self.fn(
                frame, features=list(self.model.features.all), target=self.model.target, seed=seed
            )
        except Exception as exc:
            raise TrainingError(f"{self.train.entrypoint} failed: {exc}") from exc
        if not hasattr(fitted, "predict"):
            raise TrainingError(
                f"{self.train.entrypoint} returned {type(fitted).__name__}, "
                "expected a fitted model with a predict() method"
            )
        return fitted

    def describe(self) -> dict[str, Any]:
        """The entrypoint's path."""
        return {"entrypoint": self.train.entrypoint}


def build_trainer(model: ModelSection, train: TrainSection) -> Trainer:
    """The trainer the spec asks for. Raises SpecError for imports that fail."""
    if train.estimator is not None:
        return EstimatorTrainer(model, train)
    return EntrypointTrainer(model, train)


def _features(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise TrainingError(f"training data lacks feature column(s): {', '.join(missing)}")
    return frame[columns]
