"""A small history for backtests: two features, a label that follows ``x1`` and flips
sign at a known row (a concept change), daily rows, and a spec that watches it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

CHANGE_ROW = 2_000

SPEC = """\
model:
  name: flip
  task: classification
  target: y
  features:
    numeric: [x1, x2]
data:
  source: data/batches
  time_column: day
  window: {last: 400d}
  holdout: {fraction: 0.25, by: time}
contract:
  min_rows: 50
triggers:
  - performance: {below: 0.7, min_rows: 50}
retrain_policy:
  cooldown: 150d
train:
  estimator: sklearn.linear_model.LogisticRegression
  seed: 3
evaluate:
  metric: roc_auc
  non_inferiority_margin: 0.02
  bootstrap_resamples: 200
"""


def history(rows: int = 4_000, *, seed: int = 0, change: int = CHANGE_ROW) -> pd.DataFrame:
    """``rows`` days from 2020-01-01; ``y`` follows ``x1`` until ``change``, then ``-x1``."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=rows), rng.normal(size=rows)
    sign = np.where(np.arange(rows) < change, 1.0, -1.0)
    y = (sign * x1 + 0.5 * rng.normal(size=rows) > 0).astype(int)
    day = pd.date_range("2020-01-01", periods=rows, freq="D")
    return pd.DataFrame({"day": day, "x1": x1, "x2": x2, "y": y})


def workspace(root: Path, frame: pd.DataFrame | None = None, spec: str = SPEC) -> tuple[Path, Path]:
    """(spec path, data file) under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    spec_path = root / "retrainer.yaml"
    spec_path.write_text(spec)
    data = root / "history.parquet"
    (history() if frame is None else frame).to_parquet(data)
    return spec_path, data
