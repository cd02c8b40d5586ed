"""The data contract: is a batch fit to train or evaluate on?

:func:`check_batch` builds a pandera schema from the contract, validates the batch
lazily (every failure, not just the first), and explains each failure in plain
language with a stable code and a few failing values. Nothing is coerced: a ``"12a"``
in a numeric column makes the column non-numeric, and that is what is reported.

Codes: ``EMPTY_BATCH``, ``TOO_FEW_ROWS``, ``MISSING_COLUMN``, ``EXTRA_COLUMN``,
``DUPLICATE_COLUMN``, ``WRONG_DTYPE``, ``NON_FINITE``; ``SCHEMA_CHECK`` for anything
else pandera reports.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

__all__ = ["ContractFailure", "ContractReport", "check_batch"]

log = logging.getLogger(__name__)

MAX_EXAMPLES = 5
_CODE_ORDER = [
    "EMPTY_BATCH",
    "TOO_FEW_ROWS",
    "DUPLICATE_COLUMN",
    "MISSING_COLUMN",
    "EXTRA_COLUMN",
    "WRONG_DTYPE",
    "NON_FINITE",
    "SCHEMA_CHECK",
]
_PANDERA_CODES = {
    "column_in_dataframe": "MISSING_COLUMN",
    "column_in_schema": "EXTRA_COLUMN",
    "dataframe_column_labels_unique": "DUPLICATE_COLUMN",
    "NOT_A_NUMBER": "WRONG_DTYPE",  # the per-value half of the dtype check
}


@dataclass(frozen=True)
class ContractFailure:
    """One way a batch breaks the contract.

    Attributes:
        check: A stable code (``MISSING_COLUMN``, ``WRONG_DTYPE``...), safe to match on.
        column: The column concerned, or ``None`` for whole-batch failures.
        message: Plain language: the column, what was expected and what was found.
        examples: Up to five failing values, as strings (empty when not applicable).
    """

    check: str
    column: str | None
    message: str
    examples: list[str]


@dataclass(frozen=True)
class ContractReport:
    """The result of :func:`check_batch`: passed, or every failure found."""

    passed: bool
    row_count: int
    failures: list[ContractFailure]

    def summary(self) -> str:
        """One line per failure (``CODE: message``), or one line saying it passed."""
        if self.passed:
            return f"contract passed ({self.row_count} rows)"
        return "\n".join(f"{f.check}: {f.message}" for f in self.failures)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form, for run records and quarantine reasons."""
        return asdict(self)


def check_batch(
    df: pd.DataFrame,
    *,
    required_columns: Sequence[str],
    numeric_columns: Sequence[str],
    min_rows: int,
    extra_columns: Literal["allow", "reject"] = "allow",
) -> ContractReport:
    """Check ``df`` against the contract and report every failure.

    Numeric columns are required too. A numeric column must have a numeric, non-boolean
    dtype and hold no infinite values; nulls are not judged here. An empty or
    header-only batch fails with ``EMPTY_BATCH`` (and is not judged on dtypes); a
    batch with fewer than ``min_rows`` rows fails with ``TOO_FEW_ROWS``.

    Raises:
        ValueError: ``min_rows`` is negative or ``extra_columns`` is not allow/reject.
    """
    if min_rows < 0:
        raise ValueError(f"min_rows must be >= 0; got {min_rows}")
    if extra_columns not in ("allow", "reject"):
        raise ValueError(f"extra_columns must be 'allow' or 'reject'; got {extra_columns!r}")
    expected = list(dict.fromkeys([*required_columns, *numeric_columns]))
    schema = _schema(expected, set(numeric_columns), min_rows, extra_columns == "reject")
    try:
        schema.validate(df, lazy=True)
        failures: list[ContractFailure] = []
    except SchemaErrors as exc:
        failures = _translate(exc.failure_cases, df, expected, min_rows)
    report = ContractReport(passed=not failures, row_count=len(df), failures=failures)
    if failures:
        log.debug("contract failed: %s", report.summary().replace("\n", "; "))
    return report


def _schema(
    expected: list[str], numeric: set[str], min_rows: int, strict: bool
) -> pa.DataFrameSchema:
    columns = {
        name: pa.Column(nullable=True, checks=_numeric_checks() if name in numeric else [])
        for name in expected
    }
    frame_checks = [
        pa.Check(lambda d: len(d) > 0, name="EMPTY_BATCH"),
        pa.Check(lambda d: len(d) == 0 or len(d) >= min_rows, name="TOO_FEW_ROWS"),
    ]
    return pa.DataFrameSchema(
        columns, checks=frame_checks, strict=strict, unique_column_names=True, coerce=False
    )


def _is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def _numeric_checks() -> list[pa.Check]:
    def dtype_ok(s: pd.Series) -> bool:
        return s.empty or _is_numeric(s)

    def values_are_numbers(s: pd.Series) -> pd.Series:
        # detection only: the batch itself is never converted
        if _is_numeric(s):
            return pd.Series(True, index=s.index)
        parsed = pd.to_numeric(s.astype(object), errors="coerce")
        return pd.Series(parsed.notna() | s.isna(), index=s.index)

    def finite(s: pd.Series) -> pd.Series:
        if not _is_numeric(s):
            return pd.Series(True, index=s.index)
        return ~s.isin([np.inf, -np.inf])

    return [
        pa.Check(dtype_ok, name="WRONG_DTYPE"),
        pa.Check(values_are_numbers, name="NOT_A_NUMBER"),
        pa.Check(finite, name="NON_FINITE"),
    ]


def _translate(
    cases: pd.DataFrame, df: pd.DataFrame, expected: list[str], min_rows: int
) -> list[ContractFailure]:
    """pandera's failure-case table -> one ContractFailure per (code, column)."""
    groups: dict[tuple[str, str | None], list[tuple[Any, Any, str]]] = {}
    for row in cases.itertuples(index=False):
        name = str(row.check)
        code = _PANDERA_CODES.get(name, name if name in _CODE_ORDER else "SCHEMA_CHECK")
        column = None if _absent(row.column) else str(row.column)
        if code in ("MISSING_COLUMN", "EXTRA_COLUMN"):
            column = str(row.failure_case)
        groups.setdefault((code, column), []).append((row.failure_case, row.index, name))
    order = {name: i for i, name in enumerate([*expected, *map(str, df.columns)])}
    keys = sorted(groups, key=lambda k: (_CODE_ORDER.index(k[0]), order.get(k[1] or "", -1)))
    return [
        _failure(code, column, groups[code, column], df, expected, min_rows)
        for code, column in keys
    ]


def _failure(
    code: str,
    column: str | None,
    cases: list[tuple[Any, Any, str]],
    df: pd.DataFrame,
    expected: list[str],
    min_rows: int,
) -> ContractFailure:
    row_cases = [(v, i) for v, i, _ in cases if not _absent(i)]
    examples = [str(value) for value, _ in row_cases[:MAX_EXAMPLES]]
    rows = ", ".join(str(index) for _, index in row_cases[:MAX_EXAMPLES])
    more = " ..." if len(row_cases) > MAX_EXAMPLES else ""
    messages: dict[str, Callable[[], str]] = {
        "EMPTY_BATCH": lambda: "the batch has no rows (an empty or header-only file)",
        "TOO_FEW_ROWS": lambda: f"the batch has {len(df)} rows; at least {min_rows} are required",
        "DUPLICATE_COLUMN": lambda: f"column names appear more than once: {examples}",
        "MISSING_COLUMN": lambda: _missing_message(str(column), df, expected),
        "EXTRA_COLUMN": lambda: (
            f"column {column!r} is not in the contract and extra columns are rejected; "
            f"expected only {expected}"
        ),
        "WRONG_DTYPE": lambda: _dtype_message(str(column), df, len(row_cases), rows + more),
        "NON_FINITE": lambda: (
            f"column {column!r} must hold finite numbers; found {len(row_cases)} infinite "
            f"value(s) at row index {rows}{more}"
        ),
    }
    if code == "DUPLICATE_COLUMN":
        examples = sorted({str(c) for c in df.columns[df.columns.duplicated()]})[:MAX_EXAMPLES]
    if code == "WRONG_DTYPE" and not examples and column in df.columns:
        examples = [str(v) for v in df[column].dropna().head(MAX_EXAMPLES).tolist()]
    value, _, check = cases[0]
    where = f" on column {column!r}" if column else ""
    message = messages.get(code, lambda: f"check {check!r} failed{where}: {value}")()
    return ContractFailure(check=code, column=column, message=message, examples=examples)


def _absent(value: object) -> bool:
    """None, NaN or NA: pandera's "no column" / "no row" marker."""
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def _missing_message(column: str, df: pd.DataFrame, expected: list[str]) -> str:
    found = [str(c) for c in df.columns]
    close = difflib.get_close_matches(column, [c for c in found if c not in expected], n=1)
    if close:
        return f"required column {column!r} is missing (renamed to {close[0]!r}?)"
    return f"required column {column!r} is missing; found columns {found}"


def _dtype_message(column: str, df: pd.DataFrame, bad: int, rows: str) -> str:
    dtype = df[column].dtype if column in df.columns else "unknown"
    message = f"column {column!r} must be numeric but has dtype {dtype}"
    if bad:
        return message + f"; {bad} value(s) are not numbers, at row index {rows}"
    return message + "; its values are not stored as numbers (booleans, decimals or dates?)"
