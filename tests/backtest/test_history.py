"""Reading a history and cutting it into batches."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from retrainer.backtest.history import load_history, parse_batch_by, split_batches
from retrainer.errors import DataSourceError, SpecError


def _days(n: int, start: str = "2024-01-01") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "day": pd.date_range(start, periods=n, freq="D"),
            "x": range(n),
            "y": [i % 2 for i in range(n)],
        }
    )


@pytest.mark.parametrize(
    ("text", "period", "rows"),
    [
        ("day", "day", None),
        ("WEEK", "week", None),
        ("month", "month", None),
        ("rows:500", None, 500),
    ],
)
def test_batch_by_accepts_periods_and_row_counts(
    text: str, period: str | None, rows: int | None
) -> None:
    by = parse_batch_by(text)
    assert (by.period, by.rows) == (period, rows)


@pytest.mark.parametrize("text", ["rows:0", "rows:-3", "rows:x", "rows:", "year", ""])
def test_batch_by_refuses_anything_else_and_says_what_it_takes(text: str) -> None:
    with pytest.raises(SpecError, match=r"--batch-by: expected day, week, month or rows:N"):
        parse_batch_by(text)


def test_periods_follow_the_calendar_and_rows_cut_in_time_order() -> None:
    data = _days(70)  # 2024-01-01 (a Monday) .. 2024-03-10
    months = split_batches(data, parse_batch_by("month"), time_column="day")
    assert [len(b.frame) for b in months] == [31, 29, 10]
    assert str(months[1].start.date()) == "2024-02-01" and str(months[1].end.date()) == "2024-02-29"
    weeks = split_batches(data, parse_batch_by("week"), time_column="day")
    assert [len(b.frame) for b in weeks] == [7] * 10  # weeks start on Monday
    rows = split_batches(data, parse_batch_by("rows:30"), time_column="day")
    assert [len(b.frame) for b in rows] == [30, 30, 10]
    assert [b.index for b in rows] == [0, 1, 2]
    assert rows[1].frame["x"].tolist() == list(range(30, 60))
    assert rows[0].to_dict(target="y") == {
        "index": 0,
        "start": "2024-01-01T00:00:00",
        "end": "2024-01-30T00:00:00",
        "rows": 30,
        "labelled": 30,
    }


def test_a_gap_makes_no_empty_batch_and_time_zones_keep_their_own_calendar() -> None:
    data = pd.concat([_days(3, "2024-01-30"), _days(2, "2024-04-01")], ignore_index=True)
    assert len(split_batches(data, parse_batch_by("month"), time_column="day")) == 3
    aware = _days(2, "2024-01-31").assign(
        day=pd.to_datetime(["2024-01-31 23:30", "2024-02-01 00:30"]).tz_localize("Europe/Paris")
    )
    assert [
        len(b.frame) for b in split_batches(aware, parse_batch_by("day"), time_column="day")
    ] == [1, 1]


def test_a_calendar_period_needs_a_time_column() -> None:
    with pytest.raises(SpecError, match="needs a time column"):
        split_batches(_days(4), parse_batch_by("week"), time_column=None)


def test_a_folder_of_csv_and_parquet_is_read_whole_and_sorted_by_time(tmp_path: Path) -> None:
    data = _days(10)
    data.iloc[5:].to_csv(tmp_path / "a-late.csv", index=False)  # read first, by name
    data.iloc[:5].to_parquet(tmp_path / "b-early.parquet")
    (tmp_path / "notes.txt").write_text("not data")
    (tmp_path / ".partial.csv").write_text("day\nnot a time\n")
    history = load_history(tmp_path, time_column="day")
    assert history["x"].tolist() == list(range(10))
    assert pd.api.types.is_datetime64_any_dtype(history["day"])


def test_bad_histories_are_named_with_file_column_and_row(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="no such file or folder"):
        load_history(tmp_path / "missing", time_column=None)
    with pytest.raises(DataSourceError, match=r"holds no \.parquet or \.csv file"):
        load_history(tmp_path, time_column=None)
    (tmp_path / "h.json").write_text("{}")
    with pytest.raises(DataSourceError, match=r"h.json: expected a .parquet or .csv file"):
        load_history(tmp_path / "h.json", time_column=None)
    csv = tmp_path / "h.csv"
    _days(3).to_csv(csv, index=False)
    with pytest.raises(
        DataSourceError, match=r"h.csv: no time column 'when' \(columns: day, x, y\)"
    ):
        load_history(csv, time_column="when")
    csv.write_text("day,x,y\n2024-01-01,1,0\nyesterday,2,1\n")
    with pytest.raises(
        DataSourceError, match=r"h.csv: column 'day' row 1: expected a time, got 'yesterday'"
    ):
        load_history(csv, time_column="day")
    bad = tmp_path / "h.parquet"
    bad.write_bytes(b"PAR1 not really")
    with pytest.raises(DataSourceError, match=r"h.parquet: cannot read it"):
        load_history(bad, time_column=None)
