"""Windows chosen in parts choose the rows the local path chooses, in every spec variant."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import SYNTHETIC_SPEC
from retrainer.data.parts import ParquetFiles
from retrainer.errors import LeakageError, TrainingError
from retrainer.orchestrate.executors import LocalExecutor
from retrainer.spec import PipelineSpec, parse_spec
from retrainer.train.partitioned import partitioned_sets
from retrainer.train.windows import training_sets


def spec(window: str = "{rows: 2000}", holdout: str = "{fraction: 0.25, by: time}") -> PipelineSpec:
    text = SYNTHETIC_SPEC.format(approval="auto", store="sqlite:///x.db")
    text = text.replace("window: {rows: 2000}", f"window: {window}")
    text = text.replace("holdout: {fraction: 0.25, by: time}", f"holdout: {holdout}")
    return parse_spec(text)


def batches(tmp_path: Path, *, ts: str = "datetime") -> list[pd.DataFrame]:
    """Three batches whose times interleave (the second is older than the first)."""
    out = []
    for i, (start, rows) in enumerate([(10, 300), (0, 250), (20, 200)]):
        rng = np.random.default_rng(i)
        times = pd.Timestamp("2024-01-01") + pd.to_timedelta(start + rng.random(rows) * 12, "D")
        frame = pd.DataFrame(
            {
                "ts": times if ts == "datetime" else times.strftime("%Y-%m-%dT%H:%M:%S.%f"),
                "x1": rng.normal(size=rows).round(1),
                "x2": rng.integers(0, 3, size=rows).astype(float),
                "color": rng.choice(["red", "blue"], size=rows),
                "y": rng.integers(0, 2, size=rows),
            }
        )
        if ts == "number":
            frame["ts"] = start + rng.random(rows) * 12
        out.append(frame)
    return out


def files(tmp_path: Path, frames: list[pd.DataFrame]) -> ParquetFiles:
    paths = []
    for i, frame in enumerate(frames):
        path = tmp_path / f"b{i}.parquet"
        frame.to_parquet(path)
        paths.append(str(path))
    return ParquetFiles(tuple(paths))


def rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows as a sorted frame, to compare sets of rows."""
    return frame.sort_values(list(frame.columns), kind="stable").reset_index(drop=True)


@pytest.mark.parametrize("ts", ["datetime", "iso", "number"])
@pytest.mark.parametrize(
    ("window", "holdout"),
    [
        ("{rows: 2000}", "{fraction: 0.25, by: time}"),
        ("{rows: 400}", "{fraction: 0.2, by: time}"),
        ("{rows: 500}", "{fraction: 0.3, by: random}"),
        ("{last: 15d}", "{fraction: 0.25, by: time}"),
        ("{last: 9d, rows: 150}", "{fraction: 0.25, by: random}"),
    ],
)
def test_the_rows_chosen_in_parts_are_the_local_rows(
    tmp_path: Path, ts: str, window: str, holdout: str
) -> None:
    if ts == "number" and "last" in window:
        pytest.skip("a window by age needs times")
    frames = batches(tmp_path, ts=ts if ts != "iso" else "iso")
    s = spec(window, holdout)
    train, hold, overlap = training_sets(pd.concat(frames, ignore_index=True), s)
    sets = partitioned_sets(LocalExecutor(), files(tmp_path, frames), s)
    lazy_train = LocalExecutor().materialize(sets.train)
    lazy_hold = LocalExecutor().materialize(sets.holdout)
    assert (sets.train_rows, sets.holdout_rows, sets.overlap) == (len(train), len(hold), overlap)
    pd.testing.assert_frame_equal(rows(lazy_train), rows(train))
    pd.testing.assert_frame_equal(rows(lazy_hold), rows(hold))


def test_overlap_is_dropped_or_blocks_as_locally(tmp_path: Path) -> None:
    frames = batches(tmp_path)
    frames[2] = pd.concat([frames[2], frames[0].iloc[:5]], ignore_index=True)  # repeats
    frames[2]["ts"] = frames[2]["ts"].max()  # the repeats land in the holdout
    s = spec("{rows: 2000}", "{fraction: 0.25, by: time}")
    _, _, overlap = training_sets(pd.concat(frames, ignore_index=True), s)
    sets = partitioned_sets(LocalExecutor(), files(tmp_path, frames), s)
    assert sets.overlap == overlap > 0
    blocked = parse_spec(
        s.model_dump_json().replace('"holdout_overlap":"drop"', '"holdout_overlap":"block"')
    )
    with pytest.raises(LeakageError, match=f"{overlap} training row"):
        partitioned_sets(LocalExecutor(), files(tmp_path, frames), blocked)


def test_too_few_rows_say_so_as_locally(tmp_path: Path) -> None:
    frames = [batches(tmp_path)[0].head(1)]
    with pytest.raises(TrainingError, match="1 rows are too few to hold out 25%"):
        partitioned_sets(LocalExecutor(), files(tmp_path, frames), spec())
