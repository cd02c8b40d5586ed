"""The data contract on real CSV and in-memory batches."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from retrainer.data.contract import ContractReport, check_batch
from retrainer.data.sources import FolderSource
from retrainer.spec import ContractSection


def check(
    df: pd.DataFrame, *, min_rows: int = 3, extra_columns: Literal["allow", "reject"] = "allow"
) -> ContractReport:
    return check_batch(
        df,
        ContractSection(min_rows=min_rows, extra_columns=extra_columns),
        required_columns=["date", "region"],
        numeric_columns=["temp", "rain"],
    )


def clean() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "date": ["2020-01-01", "2020-01-02", "2020-01-03"],
            "region": ["n", "s", "n"],
            "temp": [1.5, np.nan, -3.0],
            "rain": [0, 1, 0],
        }
    )


def read_csv_batch(folder: Path, text: str) -> pd.DataFrame:
    (folder / "batch.csv").write_text(text, encoding="utf-8")
    source = FolderSource(folder, {"csv"})
    return source.read(source.discover(None)[0])


def codes(report: ContractReport) -> list[tuple[str, str | None]]:
    return [(f.check, f.column) for f in report.failures]


def test_a_clean_batch_passes() -> None:
    report = check(clean())
    assert report.passed and report.failures == [] and report.row_count == 3
    assert "passed" in report.summary()
    assert json.loads(json.dumps(report.to_dict())) == {
        "passed": True,
        "row_count": 3,
        "failures": [],
        "warnings": [],
        "flags": [],
    }


def test_missing_column_is_named() -> None:
    report = check(clean().drop(columns=["region"]))
    assert not report.passed
    assert codes(report) == [("MISSING_COLUMN", "region")]
    assert "'region'" in report.failures[0].message
    assert report.summary().splitlines() == [f"MISSING_COLUMN: {report.failures[0].message}"]


def test_renamed_column_is_reported_missing_with_a_hint() -> None:
    df = clean().rename(columns={"temp": "temperature"})
    report = check(df)
    assert codes(report) == [("MISSING_COLUMN", "temp")]
    assert "'temperature'" in report.failures[0].message

    strict = check(df, extra_columns="reject")
    assert codes(strict) == [("MISSING_COLUMN", "temp"), ("EXTRA_COLUMN", "temperature")]


def test_header_only_file_is_an_empty_batch(tmp_path: Path) -> None:
    df = read_csv_batch(tmp_path, "date,region,temp,rain\n")
    report = check(df)
    assert codes(report) == [("EMPTY_BATCH", None)]  # no dtype noise from an empty file
    assert report.row_count == 0


def test_empty_file_is_an_empty_batch(tmp_path: Path) -> None:
    df = read_csv_batch(tmp_path, "")
    report = check(df)
    assert codes(report)[0] == ("EMPTY_BATCH", None)
    assert {c for c, _ in codes(report)} == {"EMPTY_BATCH", "MISSING_COLUMN"}


def test_fewer_rows_than_the_minimum() -> None:
    report = check(clean().iloc[:2], min_rows=500)
    assert codes(report) == [("TOO_FEW_ROWS", None)]
    assert "2 rows" in report.failures[0].message and "500" in report.failures[0].message


def test_text_in_a_numeric_column_is_wrong_dtype_with_examples(tmp_path: Path) -> None:
    df = read_csv_batch(
        tmp_path,
        "date,region,temp,rain\n2020-01-01,n,1.5,0\n2020-01-02,s,12a,1\n2020-01-03,n,3,0\n",
    )
    report = check(df)
    assert codes(report) == [("WRONG_DTYPE", "temp")]
    failure = report.failures[0]
    assert failure.examples == ["12a"]
    assert "'temp'" in failure.message and "numeric" in failure.message
    assert df["temp"].tolist() == ["1.5", "12a", "3"]  # reported, never coerced


def test_numbers_stored_as_booleans_are_wrong_dtype() -> None:
    report = check(clean().assign(rain=[True, False, True]))
    assert codes(report) == [("WRONG_DTYPE", "rain")]
    assert report.failures[0].examples == ["True", "False", "True"]


def test_infinity_in_a_numeric_column_is_non_finite() -> None:
    df = clean().assign(temp=[np.inf, 1.0, -np.inf])
    report = check(df)
    assert codes(report) == [("NON_FINITE", "temp")]
    assert report.failures[0].examples == ["inf", "-inf"]


def test_extra_column_follows_the_policy() -> None:
    df = clean().assign(extra=1)
    allowed = check(df)
    assert allowed.passed and allowed.flags == ["EXTRA_COLUMN"]  # BI-02: recorded
    assert "'extra'" in allowed.warnings[0].message
    report = check(df, extra_columns="reject")
    assert codes(report) == [("EXTRA_COLUMN", "extra")]
    assert "'extra'" in report.failures[0].message


def test_duplicate_column_names_are_reported() -> None:
    df = pd.concat([clean(), clean()[["region"]]], axis=1)
    report = check(df)
    assert ("DUPLICATE_COLUMN", None) in codes(report)


def test_every_failure_is_reported_with_at_most_five_examples() -> None:
    n = 20
    df = pd.DataFrame(
        {
            "date": ["2020-01-01"] * n,
            "temp": [f"bad{i}" for i in range(n)],
            "rain": [np.inf] * n,
            "surplus": range(n),
        }
    )
    report = check(df, min_rows=50, extra_columns="reject")
    assert codes(report) == [
        ("TOO_FEW_ROWS", None),
        ("MISSING_COLUMN", "region"),
        ("EXTRA_COLUMN", "surplus"),
        ("WRONG_DTYPE", "temp"),
        ("NON_FINITE", "rain"),
    ]
    dtype = report.failures[3]
    assert dtype.examples == [f"bad{i}" for i in range(5)]
    assert "20 value(s)" in dtype.message
    assert len(report.summary().splitlines()) == 5


def test_invalid_contract_settings_are_refused() -> None:
    with pytest.raises(ValidationError, match="min_rows"):
        ContractSection(min_rows=0)
    bad: Any = "drop"
    with pytest.raises(ValidationError, match="extra_columns"):
        ContractSection(extra_columns=bad)
    with pytest.raises(ValidationError, match="max_rows >= min_rows"):
        ContractSection(min_rows=10, max_rows=5)
