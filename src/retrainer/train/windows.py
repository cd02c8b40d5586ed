"""Training windows and holdout splits: which accepted rows train, which judge."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from retrainer.errors import TrainingError
from retrainer.spec import HoldoutSpec, PipelineSpec, WindowSpec
from retrainer.train.leakage import drop_holdout_rows

__all__ = ["holdout_positions", "select_window", "split_holdout", "training_sets"]


def training_sets(data: pd.DataFrame, spec: PipelineSpec) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """(train, holdout, training rows dropped as holdout duplicates) from accepted rows in
    arrival order: the spec's window, its holdout split, then the overlap policy."""
    tcol = spec.data.time_column
    window = select_window(data, spec.data.window, time_column=tcol)
    train, holdout = split_holdout(
        window, spec.data.holdout, time_column=tcol, seed=spec.train.seed
    )
    train, overlap = drop_holdout_rows(train, holdout, spec.train.leakage.holdout_overlap)
    return train, holdout, overlap


def select_window(
    frame: pd.DataFrame, window: WindowSpec, *, time_column: str | None
) -> pd.DataFrame:
    """The newest rows per ``window``: within ``last`` of the newest time, then ``rows``.

    ``frame`` must be in arrival order; with a time column it is sorted by time (stable).
    """
    out = frame
    if time_column is not None:
        out = out.sort_values(time_column, kind="stable")
        if window.last is not None:
            times = pd.to_datetime(out[time_column])
            out = out[times > times.max() - window.last]
    if window.rows is not None:
        out = out.tail(window.rows)
    return out.reset_index(drop=True)


def split_holdout(
    frame: pd.DataFrame, holdout: HoldoutSpec, *, time_column: str | None, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split into (train, holdout). ``by: time`` holds out the newest rows (frame sorted)."""
    ordered = frame
    if holdout.by == "time" and time_column:
        ordered = frame.sort_values(time_column, kind="stable")
    train, hold = holdout_positions(len(frame), holdout, seed=seed)
    return (
        ordered.iloc[train].reset_index(drop=True),
        ordered.iloc[hold].reset_index(drop=True),
    )


def holdout_positions(rows: int, holdout: HoldoutSpec, *, seed: int) -> tuple[Any, Any]:
    """(train, holdout) positions, in order, of ``rows`` rows in window order (by time,
    with a time column): ``by: time`` holds out the last ones, ``by: random`` a seeded
    choice. Shared by the local path and the one over data in parts.

    Raises:
        TrainingError: too few rows to hold out ``holdout.fraction`` and still train.
    """
    n_hold = round(rows * holdout.fraction)
    if n_hold < 1 or rows - n_hold < 1:
        raise TrainingError(
            f"{rows} rows are too few to hold out {holdout.fraction:.0%} "
            "and still train; wait for more data or lower data.holdout.fraction"
        )
    positions = np.arange(rows)
    if holdout.by == "time":
        return positions[:-n_hold], positions[-n_hold:]
    mask = np.zeros(rows, dtype=bool)
    mask[np.random.default_rng(seed).choice(rows, size=n_hold, replace=False)] = True
    return positions[~mask], positions[mask]
