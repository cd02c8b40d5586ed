"""Profiles built partition by partition: byte-identical however the rows are split."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pytest

from retrainer.data.parts import ParquetFiles
from retrainer.errors import DataSourceError
from retrainer.monitor.drift import ReferenceProfile, drift_report
from retrainer.monitor.drift.partial import sample_rows
from retrainer.orchestrate.executors import LocalExecutor

T = TypeVar("T")


class Pieces:
    """An executor over a frame cut at ``cuts`` (row positions), for these tests."""

    def __init__(self, cuts: Sequence[int]) -> None:
        self.cuts = list(cuts)

    def map_partitions(
        self, fn: Callable[..., T], data: Any, args: Sequence[Any] | None = None
    ) -> list[T]:
        bounds = [0, *self.cuts, len(data)]
        parts = [data.iloc[a:b] for a, b in itertools.pairwise(bounds)]
        assert args is None or len(args) == len(parts)
        return [fn(p) if args is None else fn(p, args[i]) for i, p in enumerate(parts)]


def frame(rows: int = 3000, seed: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    x[rng.choice(rows, rows // 75, replace=False)] = np.nan
    x[:3] = [np.inf, -np.inf, np.inf]
    return pd.DataFrame(
        {
            "x": x,
            "n": rng.integers(0, 50, size=rows),
            "c": pd.Series(rng.choice(["a", "b", "c", None], size=rows), dtype=object),
        }
    )


def profile(executor: Any, data: Any, **kwargs: Any) -> ReferenceProfile:
    return ReferenceProfile.build(data, ["x", "n"], ["c"], seed=2, executor=executor, **kwargs)


@pytest.mark.parametrize("profile_rows", [1_000_000, 700])
@pytest.mark.parametrize("cuts", [[], [1], [1000, 1001, 2500], [10 * i for i in range(1, 300)]])
def test_every_split_gives_the_same_bytes(cuts: list[int], profile_rows: int) -> None:
    data = frame()
    whole = ReferenceProfile.build(data, ["x", "n"], ["c"], seed=2, profile_rows=profile_rows)
    split = profile(Pieces(cuts), data, profile_rows=profile_rows)
    assert split.to_bytes() == whole.to_bytes()


def test_parquet_files_give_the_bytes_of_the_frame(tmp_path: Path) -> None:
    data = frame()
    paths = []
    for i, (a, b) in enumerate([(0, 1200), (1200, 1201), (1201, 3000)]):
        path = tmp_path / f"part-{i}.parquet"
        data.iloc[a:b].to_parquet(path)
        paths.append(str(path))
    files = ParquetFiles(tuple(paths))
    assert profile(LocalExecutor(), files).to_bytes() == profile(LocalExecutor(), data).to_bytes()


def test_a_large_reference_keeps_a_sample_of_values_and_exact_counts() -> None:
    data = frame(rows=5000)
    full = profile(LocalExecutor(), data)
    kept = profile(LocalExecutor(), data, profile_rows=1000)
    x_full, x_kept = full.numeric["x"], kept.numeric["x"]
    assert x_full.n_finite is None and x_kept.n_finite == x_full.count
    assert x_kept.count == x_full.count and x_kept.sample.n < 1000 <= x_full.sample.n
    assert (x_kept.n_missing, x_kept.n_posinf, x_kept.n_neginf) == (
        x_full.n_missing,
        x_full.n_posinf,
        x_full.n_neginf,
    )
    assert (x_kept.mean, x_kept.var, x_kept.std) == (x_full.mean, x_full.var, x_full.std)
    assert int(x_kept.bin_counts.sum()) == x_kept.sample.n
    assert set(x_kept.sample.values) <= set(x_full.sample.values)
    again = ReferenceProfile.from_bytes(kept.to_bytes())
    assert again.numeric["x"].n_finite == x_full.count
    current = frame(rows=800, seed=9)
    report = drift_report(again, current)
    assert report.feature("x").status == "no_drift"
    assert report.feature("x").n_reference == x_full.count


def test_sample_rows_picks_the_same_rows_on_every_split() -> None:
    data = frame(rows=2000)
    one = sample_rows(LocalExecutor(), data, 300, seed=5)
    many = sample_rows(Pieces([7, 500, 1999]), data, 300, seed=5)
    pd.testing.assert_frame_equal(one, many)
    assert abs(len(one) - 300) < 60  # each row kept with probability 300 / 2000
    shuffled = data.sample(frac=1, random_state=1)
    pd.testing.assert_frame_equal(sample_rows(Pieces([900]), shuffled, 300, seed=5), one)
    small = sample_rows(Pieces([3]), data.head(10), 300, seed=5)
    pd.testing.assert_frame_equal(small, data.head(10).reset_index(drop=True))


def test_a_non_numeric_column_is_named_from_any_partition() -> None:
    data = frame(rows=100)
    data["x"] = data["x"].astype(object)
    data.loc[60, "x"] = "oops"
    with pytest.raises(DataSourceError, match="'x' should be numeric"):
        profile(Pieces([50]), data)
    with pytest.raises(DataSourceError, match="no column 'z'"):
        ReferenceProfile.build(data, ["z"], [], executor=Pieces([50]))


@pytest.mark.parametrize("profile_rows", [1_000_000, 700])
def test_row_order_and_a_partition_s_dtype_do_not_change_the_profile(profile_rows: int) -> None:
    data = frame()
    whole = profile(LocalExecutor(), data, profile_rows=profile_rows).to_bytes()
    shuffled = data.sample(frac=1, random_state=3).reset_index(drop=True)
    assert profile(Pieces([1234]), shuffled, profile_rows=profile_rows).to_bytes() == whole

    class Mixed(Pieces):  # the second partition stores "n" as float64, "c" as category
        def map_partitions(self, fn: Any, data: Any, args: Any = None) -> list[Any]:
            first, second = data.iloc[:1500], data.iloc[1500:].copy()
            second["n"] = second["n"].astype("float64")
            second["c"] = second["c"].astype("category")
            parts = [first, second]
            return [fn(p) if args is None else fn(p, args[i]) for i, p in enumerate(parts)]

    assert profile(Mixed([]), data, profile_rows=profile_rows).to_bytes() == whole
