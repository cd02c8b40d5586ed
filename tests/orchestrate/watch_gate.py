"""A training entrypoint for the watch tests (not a test module).

``fit`` trains a small scikit-learn pipeline. When ``WATCH_TEST_GATE`` names a folder,
it first creates ``training`` there and waits until ``go`` appears, so a test can
signal a watch process while it is inside a cycle's train step.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

GATE_TIMEOUT_S = 120


def fit(frame: pd.DataFrame, *, features: list[str], target: str, seed: int) -> Any:
    gate = os.environ.get("WATCH_TEST_GATE")
    if gate:
        Path(gate, "training").touch()
        deadline = time.monotonic() + GATE_TIMEOUT_S
        while not Path(gate, "go").exists():
            if time.monotonic() > deadline:
                raise RuntimeError("the test never opened the gate")
            time.sleep(0.02)
    model = Pipeline(
        [
            ("numeric", ColumnTransformer([("keep", "passthrough", ["x1", "x2"])])),
            ("lr", LogisticRegression(max_iter=200, random_state=seed)),
        ]
    )
    return model.fit(frame[features], frame[target])
