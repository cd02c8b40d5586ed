"""The contract's rules on in-memory batches: one test (or more) per bad-input class.

BI-01..BI-07 of the reliability checklist, plus ranges, time order and the spec keys.
Through whole cycles: ``test_bad_batches.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import SYNTHETIC_SPEC, synthetic_batch
from retrainer.data import AUTO_PROMOTION_BLOCKERS, BatchContext, check_batch, deduplicate
from retrainer.data.contract import ContractReport
from retrainer.data.infer import infer_contract
from retrainer.errors import SpecError
from retrainer.spec import ContractSection, parse_spec

SPEC = parse_spec(SYNTHETIC_SPEC.format(approval="auto", store="sqlite:///x.db"))


def check(
    df: pd.DataFrame, contract: dict[str, Any] | None = None, **context: Any
) -> ContractReport:
    """The toy model's columns: x1, x2 numeric, color categorical, y target, ts time."""
    return check_batch(
        df,
        ContractSection.model_validate(contract or {}),
        required_columns=SPEC.required_columns,
        numeric_columns=["x1", "x2"],
        categorical_columns=["color"],
        time_column="ts",
        context=BatchContext(**context),
    )


def batch(rows: int = 100, seed: int = 1) -> pd.DataFrame:
    return synthetic_batch(seed, rows, start_day=0)


def codes(findings: Any) -> list[tuple[str, str | None]]:
    return [(f.check, f.column) for f in findings]


def test_a_good_batch_passes_with_nothing_to_say() -> None:
    report = check(batch())
    assert report.passed and report.failures == [] and report.warnings == []
    assert report.flags == []


# -- BI-01: empty, header-only, too few, too many -------------------------------------------


def test_bi01_empty_and_bounds() -> None:
    empty = check(batch().iloc[:0])
    assert codes(empty.failures) == [("EMPTY_BATCH", None)]  # nothing else: no dtype noise
    few = check(batch(20), {"min_rows": 50})
    assert codes(few.failures) == [("TOO_FEW_ROWS", None)]
    assert few.failures[0].details == {"rows": 20, "min_rows": 50, "max_rows": None}
    many = check(batch(120), {"max_rows": 100})
    assert codes(many.failures) == [("TOO_MANY_ROWS", None)]
    assert "120 rows; at most 100" in many.failures[0].message


# -- BI-02: missing, renamed and extra columns ----------------------------------------------


def test_bi02_renamed_column_is_named_with_a_hint_and_extra_columns_follow_the_policy() -> None:
    renamed = batch().rename(columns={"color": "colour"})
    report = check(renamed)
    assert codes(report.failures) == [("MISSING_COLUMN", "color")]
    assert "renamed to 'colour'?" in report.failures[0].message
    assert codes(report.warnings) == [("EXTRA_COLUMN", "colour")]  # recorded, not fatal

    strict = check(renamed, {"extra_columns": "reject"})
    assert codes(strict.failures) == [("MISSING_COLUMN", "color"), ("EXTRA_COLUMN", "colour")]


def test_bi02_columns_listed_in_the_contract_and_the_key_are_required() -> None:
    report = check(batch(), {"columns": {"station": {}}, "duplicates": {"key": ["order_id"]}})
    assert codes(report.failures) == [
        ("MISSING_COLUMN", "station"),
        ("MISSING_COLUMN", "order_id"),
    ]


# -- BI-03: wrong dtypes, every failing row, no coercion --------------------------------------


def test_bi03_text_in_numeric_columns_reports_every_row_lazily_and_converts_nothing() -> None:
    df = batch(40).astype({"x1": object, "x2": object})
    df.loc[3:30, "x1"] = "12a"  # 28 bad rows
    df.loc[7, "x2"] = "n/a"
    report = check(df, {"examples": 3})
    assert codes(report.failures) == [("WRONG_DTYPE", "x1"), ("WRONG_DTYPE", "x2")]
    x1 = report.failures[0]
    assert (x1.count, x1.rows, x1.examples) == (28, [3, 4, 5], ["12a"] * 3)
    assert "28 value(s) are not numbers, at row index 3, 4, 5 ..." in x1.message
    assert x1.details == {"expected": "numeric", "found": "object"}
    assert df.loc[3, "x1"] == "12a" and df["x1"].dtype == object  # untouched


def test_bi03_numbers_stored_as_text_are_wrong_dtype() -> None:
    df = batch(10).assign(x1=lambda d: d["x1"].map(str))
    [failure] = check(df).failures
    assert (failure.check, failure.column, failure.count) == ("WRONG_DTYPE", "x1", 0)
    assert "not stored as numbers" in failure.message


@pytest.mark.parametrize(
    ("dtype", "values", "bad"),
    [
        ("integer", [1, 2, 2.5, 4], ["2.5"]),
        ("integer", ["1", "2", "x", "4"], ["x"]),
        ("string", ["a", "b", 3, "d"], ["3"]),
        ("boolean", [True, False, "yes", True], ["yes"]),
        ("datetime", ["2024-01-01", "2024-13-45", "2024-01-03", None], ["2024-13-45"]),
    ],
)
def test_bi03_declared_dtypes_show_the_failing_values(
    dtype: str, values: list[Any], bad: list[str]
) -> None:
    df = batch(4).assign(extra=pd.Series(values, dtype=object))
    report = check(df, {"columns": {"extra": {"dtype": dtype}}})
    [failure] = report.failures
    assert (failure.check, failure.column, failure.examples) == ("WRONG_DTYPE", "extra", bad)


def test_whole_numbers_with_gaps_are_integers() -> None:
    df = batch(4).assign(n=[1.0, np.nan, 3.0, 4.0])  # how CSV reads an int column with a gap
    assert check(df, {"columns": {"n": {"dtype": "integer"}}}).passed


def test_an_unparseable_time_column_is_named() -> None:
    df = batch(5).assign(ts=["2024-01-01", "yesterday", "2024-01-02", "2024-01-02", "x"])
    [failure] = check(df).failures
    assert (failure.check, failure.column, failure.examples) == (
        "WRONG_DTYPE",
        "ts",
        ["yesterday", "x"],
    )


# -- ranges ---------------------------------------------------------------------------------------


def test_out_of_range_values_are_counted_and_shown() -> None:
    df = batch(50)
    df.loc[[4, 9], "x1"] = [99.0, -99.0]
    [failure] = check(df, {"columns": {"x1": {"min": -10, "max": 10}}}).failures
    assert (failure.check, failure.count, failure.rows) == ("OUT_OF_RANGE", 2, [4, 9])
    assert "[-10, 10]" in failure.message and failure.examples == ["99.0", "-99.0"]


# -- BI-04: null storms and infinities ------------------------------------------------------------


def test_bi04_null_share_above_the_reference_plus_tolerance_is_a_null_storm() -> None:
    df = batch(200)
    df.loc[: 200 * 0.3 - 1, "x1"] = np.nan  # 30% null
    df.loc[:9, "color"] = None  # 5% null
    reference = {"x1": 0.02, "color": 0.0, "x2": 0.0}
    report = check(
        df, reference_null_shares=reference, reference="the champion's training data (v1)"
    )
    assert codes(report.failures) == [("NULL_STORM", "x1")]  # color: 5% <= 0% + 10%
    storm = report.failures[0]
    assert storm.details == {"share": 0.3, "limit": 0.12, "reference": 0.02}
    assert storm.count == 60 and storm.rows == [0, 1, 2, 3, 4]
    assert storm.message == (
        "column 'x1' is 30.0% null (60 of 200 rows); at most 12.0% allowed: 2.0% in the "
        "champion's training data (v1) + null_tolerance 10.0%"
    )
    assert check(df, {"null_tolerance": 0.3}, reference_null_shares=reference).passed
    assert check(df).passed  # no reference (no champion yet): no relative limit


def test_bi04_explicit_limits_and_non_nullable_columns() -> None:
    df = batch(100)
    df.loc[:4, "x2"] = np.nan
    df.loc[:1, "y"] = np.nan
    report = check(df, {"columns": {"x2": {"max_null_share": 0.02}, "y": {"nullable": False}}})
    assert codes(report.failures) == [("NULL_STORM", "x2"), ("NULL_STORM", "y")]
    assert "max_null_share is 2.0%" in report.failures[0].message
    assert "not nullable" in report.failures[1].message


def test_bi04_infinity_in_a_float_column_rejects() -> None:
    df = batch(10)
    df.loc[2, "x2"] = np.inf
    report = check(df)
    assert codes(report.failures) == [("NON_FINITE", "x2")]
    assert report.failures[0].rows == [2]


# -- BI-05: volume ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "previous", "flagged"),
    [
        (1000, 100, True),
        (999, 100, False),
        (100, 1000, True),
        (101, 1000, False),
    ],
)
def test_bi05_volume_anomaly_is_a_flag_not_a_failure(
    rows: int, previous: int, flagged: bool
) -> None:
    report = check(batch(rows), previous_rows=previous)
    assert report.passed
    assert report.flags == (["VOLUME_ANOMALY"] if flagged else [])
    if flagged:
        assert report.warnings[0].details["ratio"] == rows / previous
        assert "not promoted automatically" in report.warnings[0].message
    assert "VOLUME_ANOMALY" in AUTO_PROMOTION_BLOCKERS


# -- BI-06: unseen categories ---------------------------------------------------------------------


def test_bi06_unseen_categories_above_the_tolerance_flag_or_reject() -> None:
    df = batch(100)
    df.loc[:11, "color"] = "purple"  # 12% unseen
    rule = {"allowed": ["red", "green", "blue"], "max_unseen_share": 0.1}
    flagged = check(df, {"columns": {"color": rule}})
    assert flagged.passed and flagged.flags == ["UNSEEN_CATEGORY"]
    warning = flagged.warnings[0]
    assert warning.details["unseen"] == {"purple": 12} and warning.examples == ["purple"]
    assert "12.0% of values outside its known categories" in warning.message

    rejected = check(df, {"columns": {"color": rule}, "unseen_categories": "reject"})
    assert codes(rejected.failures) == [("UNSEEN_CATEGORY", "color")]
    tolerated = check(df, {"columns": {"color": {**rule, "max_unseen_share": 0.12}}})
    assert tolerated.passed and tolerated.flags == []


# -- BI-07: duplicates -----------------------------------------------------------------------------


def test_bi07_duplicate_rows_are_counted_and_dropped_by_default() -> None:
    good = batch(50)
    df = pd.concat([good, good.iloc[[3, 3, 8]]], ignore_index=True)
    report = check(df)
    assert report.passed and report.flags == ["DUPLICATE_ROWS"]
    assert report.warnings[0].count == 3 and report.warnings[0].rows == [50, 51, 52]
    kept, dropped = deduplicate(df, ContractSection().duplicates)
    assert dropped == {"duplicate_rows": 3, "duplicate_keys": 0}
    pd.testing.assert_frame_equal(kept, good)

    rejected = check(df, {"duplicates": {"rows": "reject"}})
    assert codes(rejected.failures) == [("DUPLICATE_ROWS", None)]
    assert "3 row(s) are exact copies" in rejected.failures[0].message


def test_bi07_duplicate_keys_reject_by_default_or_keep_the_last_row() -> None:
    df = batch(20).assign(id=[*range(18), 5, 7])
    df.loc[18, "x1"] = 42.0  # a correction of id 5
    contract = {"duplicates": {"key": ["id"]}}
    report = check(df, contract)
    assert codes(report.failures) == [("DUPLICATE_KEYS", "id")]
    failure = report.failures[0]
    assert failure.examples == ["id=5", "id=7"] and failure.count == 2
    assert failure.details == {"duplicate_keys": 2, "surplus_rows": 2, "policy": "reject"}

    dropping = ContractSection.model_validate({"duplicates": {"key": ["id"], "keys": "drop"}})
    assert check(df, dropping.model_dump()).flags == ["DUPLICATE_KEYS"]
    kept, dropped = deduplicate(df, dropping.duplicates)
    assert dropped == {"duplicate_rows": 0, "duplicate_keys": 2}
    assert kept["id"].is_unique and kept.loc[kept["id"] == 5, "x1"].item() == 42.0


# -- time order ------------------------------------------------------------------------------------


def test_time_going_backwards_or_behind_the_watermark() -> None:
    df = batch(10)
    df.loc[6, "ts"] = df.loc[0, "ts"]
    assert check(df).passed  # time_order: none (the default)
    [back] = check(df, {"time_order": "batch"}).failures
    assert (back.check, back.column, back.rows) == ("TIME_ORDER", "ts", [6])
    assert "goes backwards" in back.message

    fresh = batch(10)
    newest = str(fresh["ts"].iloc[4].isoformat())
    [late] = check(fresh, {"time_order": "watermark"}, newest_time=newest).failures
    assert late.count == 4 and late.rows == [0, 1, 2, 3]
    assert "older than the newest accepted row" in late.message
    assert check(fresh, {"time_order": "batch"}, newest_time=newest).passed


# -- the spec keys (BI-09: malformed contract config fails with its key path) ---------------------


@pytest.mark.parametrize(
    ("contract", "needle"),
    [
        ("columns: {x1: {maxx: 3}}", "contract.columns.x1.maxx"),
        ("columns: {x1: {min: 3, max: 1}}", "expected min <= max"),
        ("duplicates: {rows: dedupe}", "contract.duplicates.rows"),
        ("volume: {max_ratio: 0.5}", "contract.volume.max_ratio"),
        ("null_tolerance: 2", "contract.null_tolerance"),
        ("time_order: sometimes", "contract.time_order"),
    ],
)
def test_malformed_contract_keys_name_the_path(contract: str, needle: str) -> None:
    text = SYNTHETIC_SPEC.format(approval="auto", store="sqlite:///x.db").replace(
        "contract:\n  min_rows: 50\n", f"contract:\n  min_rows: 50\n  {contract}\n"
    )
    with pytest.raises(SpecError, match=needle.replace(".", r"\.")):
        parse_spec(text)


def test_time_order_needs_a_time_column() -> None:
    text = SYNTHETIC_SPEC.format(approval="auto", store="sqlite:///x.db")
    text = text.replace("  time_column: ts\n", "").replace("by: time", "by: random")
    text = text.replace("contract:\n", "contract:\n  time_order: batch\n")
    with pytest.raises(SpecError, match=r"contract\.time_order .*: checking time order needs"):
        parse_spec(text)


# -- inference -------------------------------------------------------------------------------------


def test_an_inferred_contract_loads_and_its_own_data_passes_it() -> None:
    train = batch(300)
    section = infer_contract(train, SPEC, widen=0.1)
    text = yaml.safe_dump({"contract": section}, sort_keys=False)
    spec = parse_spec(
        SYNTHETIC_SPEC.format(approval="auto", store="sqlite:///x.db").replace(
            "contract:\n  min_rows: 50\n", text
        )
    )
    x1 = spec.contract.columns["x1"]
    span = train["x1"].max() - train["x1"].min()
    assert x1.dtype == "float" and x1.min == pytest.approx(train["x1"].min() - 0.1 * span, 1e-4)
    assert spec.contract.columns["color"].allowed == ["blue", "green", "red"]
    assert spec.contract.columns["y"].allowed == [0, 1]
    assert spec.contract.columns["ts"].dtype == "datetime"
    assert spec.contract.min_rows == 50  # the spec's other keys are kept
    assert check(train, spec.contract.model_dump()).passed

    other = batch(300, seed=9)
    other.loc[0, "x1"] = 1e6
    assert codes(check(other, spec.contract.model_dump()).failures) == [("OUT_OF_RANGE", "x1")]
    with pytest.raises(ValueError, match="no rows"):
        infer_contract(train.iloc[:0], SPEC)
