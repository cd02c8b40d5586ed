"""Models with outputs fixed by the test: each reads its prediction from one column.

``Reads("a")`` predicts ``X["a"]`` as its probability of class 1 (``predict_proba``) and
``X["a"] >= 0.5`` as its label; ``Reads("a", regression=True)`` predicts ``X["a"]`` as
its value. So a test writes the champion's and the candidate's outputs as two feature
columns and knows every number the gates will see.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from retrainer.spec import EvaluateSection, Features, ModelSection


class Reads:
    """A fitted-looking model whose output is one input column."""

    def __init__(self, column: str, *, regression: bool = False) -> None:
        self.column, self.regression = column, regression

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray[Any, Any]:
        p = X[self.column].to_numpy(dtype=float)
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray[Any, Any]:
        values = X[self.column].to_numpy(dtype=float)
        return values if self.regression else (values >= 0.5).astype(int)


def classifier(*numeric: str, categorical: tuple[str, ...] = ()) -> ModelSection:
    return ModelSection(
        name="toy",
        task="classification",
        target="y",
        features=Features(numeric=list(numeric), categorical=list(categorical)),
    )


def regressor(*numeric: str) -> ModelSection:
    return ModelSection(
        name="toy", task="regression", target="y", features=Features(numeric=list(numeric))
    )


def settings(**kwargs: Any) -> EvaluateSection:
    """An EvaluateSection with 200 resamples unless given."""
    return EvaluateSection(**{"bootstrap_resamples": 200, **kwargs})


def scored_frame(seed: int, n: int, *, skill: float = 1.5) -> pd.DataFrame:
    """Labels ``y`` and two equally good probability columns ``a`` and ``b``
    (the same score: identical models), plus ``region`` and ``sex`` columns."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    z = skill * (2 * y - 1) + rng.normal(size=n)
    p = 1 / (1 + np.exp(-z))
    return pd.DataFrame(
        {
            "a": p,
            "b": p.copy(),
            "region": rng.choice(["north", "south", "east", "west"], size=n),
            "sex": rng.choice(["F", "M"], size=n),
            "y": y,
        }
    )
