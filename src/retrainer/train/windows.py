"""Training windows and holdout splits: which accepted rows train, which judge."""

from __future__ import annotations

import numpy as np
import pandas as pd

from retrainer.errors import TrainingError
from retrainer.spec import HoldoutSpec, PipelineSpec, WindowSpec
from retrainer.train.leakage import drop_holdout_rows

__all__ = ["select_window", "split_holdout", "training_sets"]


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
    n_hold = round(len(frame) * holdout.fraction)
    if n_hold < 1 or len(frame) - n_hold < 1:
        raise TrainingError(
            f"{len(frame)} rows are too few to hold out {holdout.fraction:.0%} "
            "and still train; wait for more data or lower data.holdout.fraction"
        )
    if holdout.by == "time":
        ordered = frame.sort_values(time_column, kind="stable") if time_column else frame
        train, hold = ordered.iloc[:-n_hold], ordered.iloc[-n_hold:]
    else:
        rng = np.random.default_rng(seed)
        mask = np.zeros(len(frame), dtype=bool)
        mask[rng.choice(len(frame), size=n_hold, replace=False)] = True
        train, hold = frame[~mask], frame[mask]
    return train.reset_index(drop=True), hold.reset_index(drop=True)
