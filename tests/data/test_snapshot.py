"""Snapshot hashing, description and Parquet round trips."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from retrainer.data.snapshot import (
    SnapshotInfo,
    describe_frame,
    frame_from_parquet,
    frame_sha256,
    frame_to_parquet,
)
from retrainer.errors import DataSourceError


def sample() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "date": pd.to_datetime(["2020-01-03", "2020-01-01", "2020-01-02"]),
            "temp": [1.5, np.nan, -3.0],
            "count": [1, 2, 3],
            "region": ["north", "south", None],
            "flag": [True, False, True],
            "n": pd.array([1, None, 3], dtype="Int64"),
            "cat": pd.Categorical(["a", "b", "a"]),
        }
    )


def test_same_rows_give_the_same_hash_whatever_the_index() -> None:
    df = sample()
    digest = frame_sha256(df)
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert frame_sha256(df.copy()) == digest
    assert frame_sha256(df.set_axis([10, 20, 30])) == digest


def test_hash_is_stable_across_processes() -> None:
    code = textwrap.dedent(
        """
        import pandas as pd
        from retrainer.data.snapshot import frame_sha256
        print(frame_sha256(pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == frame_sha256(pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}))


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda d: d.assign(temp=d["temp"].where(d.index != 0, 1.6)), id="cell"),
        pytest.param(lambda d: d.assign(region=d["region"].fillna("none")), id="null-to-value"),
        pytest.param(lambda d: d[list(reversed(d.columns))], id="column-order"),
        pytest.param(lambda d: d.astype({"count": "float64"}), id="dtype"),
        pytest.param(lambda d: d.iloc[[1, 0, 2]], id="row-order"),
        pytest.param(lambda d: d.rename(columns={"temp": "temperature"}), id="column-name"),
        pytest.param(lambda d: d.iloc[:2], id="fewer-rows"),
    ],
)
def test_any_change_changes_the_hash(change: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    df = sample()
    assert frame_sha256(change(df)) != frame_sha256(df)


def test_unhashable_values_are_reported_by_column() -> None:
    with pytest.raises(DataSourceError, match="'tags'"):
        frame_sha256(pd.DataFrame({"tags": [[1], [2]]}))


def test_parquet_round_trip_keeps_rows_dtypes_and_hash() -> None:
    df = sample().set_axis([7, 8, 9])
    data = frame_to_parquet(df)
    back = frame_from_parquet(data)
    assert list(back.index) == [0, 1, 2]
    assert back.dtypes.to_dict() == df.dtypes.to_dict()
    pd.testing.assert_frame_equal(back, df.reset_index(drop=True))
    assert frame_sha256(back) == frame_sha256(df)


def test_corrupt_parquet_bytes_raise() -> None:
    with pytest.raises(DataSourceError, match="not valid Parquet"):
        frame_from_parquet(b"PAR1 not really")


def test_describe_frame_reports_hash_size_schema_and_time_range() -> None:
    df = sample()
    info = describe_frame(df, time_column="date")
    assert info == SnapshotInfo(
        content_hash=frame_sha256(df),
        row_count=3,
        columns={str(c): str(t) for c, t in df.dtypes.items()},
        time_min="2020-01-01T00:00:00",
        time_max="2020-01-03T00:00:00",
    )
    assert list(info.columns) == list(df.columns)


def test_describe_frame_parses_iso_strings_without_changing_the_frame() -> None:
    df = pd.DataFrame({"date": ["2021-05-02", "2021-05-01T12:30:00", None], "x": [1, 2, 3]})
    before = df.copy()
    info = describe_frame(df, time_column="date")
    assert (info.time_min, info.time_max) == ("2021-05-01T12:30:00", "2021-05-02T00:00:00")
    pd.testing.assert_frame_equal(df, before)


def test_describe_frame_without_time_column_and_with_numeric_time() -> None:
    df = pd.DataFrame({"t": [5, 3, 9]})
    assert describe_frame(df, time_column=None).time_min is None
    info = describe_frame(df, time_column="t")
    assert (info.time_min, info.time_max) == ("3", "9")
    empty = describe_frame(df.iloc[:0], time_column="t")
    assert (empty.row_count, empty.time_min, empty.time_max) == (0, None, None)


def test_describe_frame_rejects_a_missing_or_unparseable_time_column() -> None:
    df = pd.DataFrame({"date": ["2021-05-01", "yesterday"]})
    with pytest.raises(DataSourceError, match="'when' is not in the data"):
        describe_frame(df, time_column="when")
    with pytest.raises(DataSourceError, match="ISO-8601"):
        describe_frame(df, time_column="date")
