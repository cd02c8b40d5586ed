"""Training windows and holdout splits, against the rules in docs/spec.md."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from retrainer.errors import TrainingError
from retrainer.spec import HoldoutSpec, WindowSpec
from retrainer.train import select_window, split_holdout

T0 = pd.Timestamp("2024-03-01")


def daily(n: int, *, shuffle: bool = False) -> pd.DataFrame:
    """One row a day from T0; ``id`` is the day number, so rows can be traced."""
    frame = pd.DataFrame({"id": np.arange(n), "ts": T0 + pd.to_timedelta(np.arange(n), unit="D")})
    if shuffle:  # arrival order is not time order
        frame = frame.sample(frac=1, random_state=0).reset_index(drop=True)
    return frame


# -- select_window ----------------------------------------------------------------------


def test_last_keeps_rows_strictly_newer_than_newest_minus_last() -> None:
    frame = daily(10)  # newest is day 9
    out = select_window(frame, WindowSpec(last=timedelta(days=3)), time_column="ts")
    # day 6 is exactly 3 days before day 9: excluded; days 7, 8, 9 kept
    assert out["id"].tolist() == [7, 8, 9]


def test_a_row_just_inside_the_boundary_is_kept() -> None:
    frame = daily(10)
    frame.at[6, "ts"] = T0 + pd.Timedelta(days=6, seconds=1)
    out = select_window(frame, WindowSpec(last=timedelta(days=3)), time_column="ts")
    assert out["id"].tolist() == [6, 7, 8, 9]


def test_the_reference_is_the_newest_row_not_the_clock() -> None:
    old = daily(5)  # all in 2024; "last 2 days" still keeps the newest two
    out = select_window(old, WindowSpec(last=timedelta(days=2)), time_column="ts")
    assert out["id"].tolist() == [3, 4]


def test_a_time_column_sorts_rows_stably_and_resets_the_index() -> None:
    frame = pd.DataFrame(
        {
            "id": [0, 1, 2, 3],
            "ts": pd.to_datetime(["2024-01-03", "2024-01-01", "2024-01-03", "2024-01-02"]),
        }
    )
    out = select_window(frame, WindowSpec(), time_column="ts")
    assert out["id"].tolist() == [1, 3, 0, 2]  # ties (0 and 2) keep arrival order
    assert out.index.tolist() == [0, 1, 2, 3]


def test_time_strings_are_compared_as_times() -> None:
    frame = daily(6)
    frame["ts"] = frame["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S")
    out = select_window(frame, WindowSpec(last=timedelta(days=2)), time_column="ts")
    assert out["id"].tolist() == [4, 5]


def test_rows_keeps_the_newest_by_time() -> None:
    out = select_window(daily(20, shuffle=True), WindowSpec(rows=5), time_column="ts")
    assert out["id"].tolist() == [15, 16, 17, 18, 19]


def test_rows_without_a_time_column_keeps_the_last_arrived() -> None:
    frame = daily(20, shuffle=True)
    out = select_window(frame, WindowSpec(rows=4), time_column=None)
    assert out["id"].tolist() == frame["id"].tolist()[-4:]


def test_last_applies_first_then_rows() -> None:
    window = WindowSpec(last=timedelta(days=10), rows=3)
    assert select_window(daily(30), window, time_column="ts")["id"].tolist() == [27, 28, 29]
    # a cap larger than the time window changes nothing
    wide = WindowSpec(last=timedelta(days=4), rows=100)
    assert select_window(daily(30), wide, time_column="ts")["id"].tolist() == [26, 27, 28, 29]


def test_no_window_keeps_every_row() -> None:
    frame = daily(7, shuffle=True)
    assert len(select_window(frame, WindowSpec(), time_column=None)) == 7
    pd.testing.assert_frame_equal(select_window(frame, WindowSpec(), time_column=None), frame)


# -- split_holdout --------------------------------------------------------------------


@pytest.mark.parametrize(("rows", "fraction", "held"), [(100, 0.2, 20), (10, 0.25, 2), (7, 0.5, 4)])
def test_by_time_holds_out_the_newest_rows(rows: int, fraction: float, held: int) -> None:
    frame = daily(rows, shuffle=True)
    train, hold = split_holdout(
        frame, HoldoutSpec(fraction=fraction, by="time"), time_column="ts", seed=0
    )
    assert len(hold) == held == round(rows * fraction)
    assert sorted(hold["id"]) == list(range(rows - held, rows))
    assert set(train["id"]).isdisjoint(hold["id"])
    assert len(train) + len(hold) == rows
    assert train["ts"].max() < hold["ts"].min()


def test_by_time_with_tied_times_never_puts_a_row_in_both() -> None:
    frame = pd.DataFrame(
        {"id": range(10), "ts": T0 + pd.to_timedelta([i // 3 for i in range(10)], "D")}
    )
    train, hold = split_holdout(frame, HoldoutSpec(fraction=0.5), time_column="ts", seed=0)
    assert sorted([*train["id"], *hold["id"]]) == list(range(10))
    assert train["ts"].max() <= hold["ts"].min()


def test_by_time_without_a_time_column_holds_out_the_last_arrived() -> None:
    frame = daily(10, shuffle=True)
    train, hold = split_holdout(frame, HoldoutSpec(fraction=0.3), time_column=None, seed=0)
    assert hold["id"].tolist() == frame["id"].tolist()[-3:]
    assert train["id"].tolist() == frame["id"].tolist()[:-3]


def test_random_holdout_is_seeded_disjoint_and_complete() -> None:
    frame = daily(200)
    spec = HoldoutSpec(fraction=0.2, by="random")
    train, hold = split_holdout(frame, spec, time_column="ts", seed=7)
    again_train, again_hold = split_holdout(frame, spec, time_column="ts", seed=7)
    _, other = split_holdout(frame, spec, time_column="ts", seed=8)
    pd.testing.assert_frame_equal(hold, again_hold)
    pd.testing.assert_frame_equal(train, again_train)
    assert set(other["id"]) != set(hold["id"])
    assert len(hold) == 40 and len(train) == 160
    assert set(train["id"]).isdisjoint(hold["id"])
    assert set(train["id"]) | set(hold["id"]) == set(range(200))
    assert train["id"].is_monotonic_increasing  # the rest keep their order
    assert train.index.tolist() == list(range(160))


def test_random_holdout_is_not_the_newest_rows() -> None:
    _, hold = split_holdout(
        daily(200), HoldoutSpec(fraction=0.2, by="random"), time_column="ts", seed=7
    )
    assert sorted(hold["id"]) != list(range(160, 200))


@pytest.mark.parametrize(("rows", "fraction"), [(2, 0.2), (1, 0.5), (0, 0.5), (4, 0.1)])
def test_too_few_rows_raise_a_training_error_naming_the_field(rows: int, fraction: float) -> None:
    with pytest.raises(TrainingError) as info:
        split_holdout(daily(rows), HoldoutSpec(fraction=fraction), time_column="ts", seed=0)
    assert f"{rows} rows are too few" in str(info.value)
    assert "data.holdout.fraction" in str(info.value)
    assert info.value.code == "TRAINING_FAILED"


def test_two_rows_at_one_half_is_just_enough() -> None:
    train, hold = split_holdout(daily(2), HoldoutSpec(fraction=0.5), time_column="ts", seed=0)
    assert (train["id"].tolist(), hold["id"].tolist()) == ([0], [1])
