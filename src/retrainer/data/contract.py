"""The data contract: is a batch fit to train or evaluate on?

:func:`check_batch` checks a batch against the spec's ``contract`` section and reports
every failure at once (lazy: nothing stops at the first), each with a stable code, a
plain-language message naming the column, what was expected and what was found, how
many rows fail and the first few of them. Nothing is coerced: a ``"12a"`` in a numeric
column makes the column non-numeric, and that is what is reported.

The schema half (columns, dtypes, ranges, row counts) is a pandera schema built from the
contract; the statistical half (null rates, unseen categories, duplicates, time order,
volume) is in :mod:`retrainer.data.rules`. A report has *failures*, which quarantine
the batch, and *warnings*, which do not; the warnings' codes are the batch's *flags*.

Failure codes: ``EMPTY_BATCH``, ``TOO_FEW_ROWS``, ``TOO_MANY_ROWS``,
``DUPLICATE_COLUMN``, ``MISSING_COLUMN``, ``EXTRA_COLUMN`` (policy ``reject``),
``WRONG_DTYPE``, ``NON_FINITE``, ``OUT_OF_RANGE``, ``NULL_STORM``, ``UNSEEN_CATEGORY``
(policy ``reject``), ``DUPLICATE_ROWS`` / ``DUPLICATE_KEYS`` (policy ``reject``),
``DUPLICATE_BATCH`` (the rows of a batch already accepted), ``TIME_ORDER``;
``SCHEMA_CHECK`` for anything else pandera reports. Warning codes: ``VOLUME_ANOMALY``,
``UNSEEN_CATEGORY``, ``EXTRA_COLUMN``, ``DUPLICATE_ROWS``, ``DUPLICATE_KEYS``.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from retrainer.data import rules
from retrainer.data.rules import BatchContext, ContractFailure
from retrainer.spec import ColumnRule, ContractSection

__all__ = [
    "AUTO_PROMOTION_BLOCKERS",
    "BatchContext",
    "ContractFailure",
    "ContractReport",
    "check_batch",
]

log = logging.getLogger(__name__)

AUTO_PROMOTION_BLOCKERS = frozenset({"VOLUME_ANOMALY"})
"""Flags that keep a candidate trained on the flagged batch from automatic promotion."""

_CODE_ORDER = [
    "EMPTY_BATCH",
    "TOO_FEW_ROWS",
    "TOO_MANY_ROWS",
    "VOLUME_ANOMALY",
    "DUPLICATE_COLUMN",
    "MISSING_COLUMN",
    "EXTRA_COLUMN",
    "WRONG_DTYPE",
    "NON_FINITE",
    "OUT_OF_RANGE",
    "NULL_STORM",
    "UNSEEN_CATEGORY",
    "DUPLICATE_ROWS",
    "DUPLICATE_KEYS",
    "DUPLICATE_BATCH",
    "TIME_ORDER",
    "SCHEMA_CHECK",
]
_PANDERA_CODES = {
    "column_in_dataframe": "MISSING_COLUMN",
    "column_in_schema": "EXTRA_COLUMN",
    "dataframe_column_labels_unique": "DUPLICATE_COLUMN",
    "WRONG_VALUE": "WRONG_DTYPE",  # the per-value half of the dtype check
}
_KIND_WORDS = {
    "numeric": "numeric",
    "float": "numeric",
    "integer": "whole numbers",
    "string": "text",
    "boolean": "true/false values",
    "datetime": "date-times",
    "time": "times (date-times, ISO-8601 text or numbers)",
}

_VALUE_WORDS = {"numeric": "numbers", "float": "numbers", "time": "times"}


@dataclass(frozen=True)
class ContractReport:
    """The result of :func:`check_batch`: every failure and warning found.

    Attributes:
        passed: True when there is no failure (warnings do not fail a batch).
        row_count: Rows in the batch as received.
        failures: Why the batch is quarantined, in a stable order.
        warnings: Findings that do not quarantine it (flags, dropped duplicates...).
    """

    passed: bool
    row_count: int
    failures: list[ContractFailure]
    warnings: list[ContractFailure] = field(default_factory=list)

    @property
    def flags(self) -> list[str]:
        """The warnings' codes, once each (``VOLUME_ANOMALY``...): the batch's flags."""
        return list(dict.fromkeys(w.check for w in self.warnings))

    def summary(self) -> str:
        """One line per failure (``CODE: message``), or one line saying it passed."""
        if self.passed:
            flagged = f"; flagged {', '.join(self.flags)}" if self.flags else ""
            return f"contract passed ({self.row_count} rows){flagged}"
        return "\n".join(f"{f.check}: {f.message}" for f in self.failures)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form, stored as the batch's ``reasons`` (with ``flags``)."""
        return {**asdict(self), "flags": self.flags}


def check_batch(
    df: pd.DataFrame,
    contract: ContractSection | None = None,
    *,
    required_columns: Sequence[str] = (),
    numeric_columns: Sequence[str] = (),
    categorical_columns: Sequence[str] = (),
    time_column: str | None = None,
    context: BatchContext | None = None,
) -> ContractReport:
    """Check ``df`` against ``contract`` and report every failure and warning.

    Required are ``required_columns``, the numeric and categorical features, the
    columns the contract lists and its duplicate key. A numeric feature must have a
    numeric, non-boolean dtype and hold no infinite values. The time column must hold
    times. The null share of a feature may exceed its share in the reference (the
    champion's training data, ``context.reference_null_shares``) by at most
    ``contract.null_tolerance``. An empty or header-only batch fails with
    ``EMPTY_BATCH`` alone (it is not judged on dtypes). Pure: ``df`` is not changed.
    """
    contract = contract or ContractSection()
    context = context or BatchContext()
    expected = list(
        dict.fromkeys(
            [
                *required_columns,
                *numeric_columns,
                *categorical_columns,
                *([time_column] if time_column else []),
                *contract.columns,
                *(contract.duplicates.key or []),
            ]
        )
    )
    kinds = _kinds(expected, contract, set(numeric_columns), time_column)
    failures = _schema_failures(df, contract, expected, kinds)
    warnings: list[ContractFailure] = []
    if len(df):
        if contract.extra_columns == "allow":
            warnings += _extra_columns(df, expected)
        stats = rules.statistical_checks(
            df,
            contract,
            features=[*numeric_columns, *categorical_columns],
            time_column=time_column,
            context=context,
            usable=_usable_columns(df, failures),
        )
        failures += stats.failures
        warnings += stats.warnings
    order = {name: i for i, name in enumerate([*expected, *map(str, df.columns)])}

    def key(f: ContractFailure) -> tuple[int, int]:
        return (_CODE_ORDER.index(f.check), order.get(f.column or "", -1))

    report = ContractReport(
        passed=not failures,
        row_count=len(df),
        failures=sorted(failures, key=key),
        warnings=sorted(warnings, key=key),
    )
    if failures or warnings:
        log.debug("contract: %s", report.summary().replace("\n", "; "))
    return report


def _kinds(
    expected: list[str], contract: ContractSection, numeric: set[str], time_column: str | None
) -> dict[str, str]:
    """Column -> the kind of values it must hold (only columns with an expectation)."""
    kinds = {name: "numeric" for name in expected if name in numeric}
    if time_column:
        kinds[time_column] = "time"
    for name, rule in contract.columns.items():
        if rule.dtype is not None:
            kinds[name] = rule.dtype
        elif rule.min is not None or rule.max is not None:
            kinds.setdefault(name, "numeric")
    return kinds


def _usable_columns(df: pd.DataFrame, failures: list[ContractFailure]) -> set[str]:
    """Columns present once and of the right dtype: the statistical checks may read them."""
    bad = {f.column for f in failures if f.check in ("WRONG_DTYPE", "DUPLICATE_COLUMN")}
    names = [str(c) for c in df.columns]
    return {n for n in names if names.count(n) == 1 and n not in bad}


# -- the schema half: pandera ---------------------------------------------------------------


def _schema_failures(
    df: pd.DataFrame, contract: ContractSection, expected: list[str], kinds: dict[str, str]
) -> list[ContractFailure]:
    empty = len(df) == 0
    columns = {
        name: pa.Column(
            nullable=True,
            checks=[] if empty else _column_checks(kinds.get(name), contract.columns.get(name)),
        )
        for name in expected
    }
    n = len(df)
    frame_checks = [
        pa.Check(lambda d: len(d) > 0, name="EMPTY_BATCH"),
        pa.Check(lambda d: len(d) == 0 or len(d) >= contract.min_rows, name="TOO_FEW_ROWS"),
    ]
    if contract.max_rows is not None:
        limit = contract.max_rows
        frame_checks.append(pa.Check(lambda d: len(d) <= limit, name="TOO_MANY_ROWS"))
    schema = pa.DataFrameSchema(
        columns,
        checks=frame_checks,
        strict=contract.extra_columns == "reject",
        unique_column_names=True,
        coerce=False,
    )
    try:
        schema.validate(df, lazy=True)
    except SchemaErrors as exc:
        return _translate(exc.failure_cases, df, expected, contract, kinds, n)
    return []


def _column_checks(kind: str | None, rule: ColumnRule | None) -> list[pa.Check]:
    checks: list[pa.Check] = []
    if kind is not None:
        checks += [
            pa.Check(lambda s: s.empty or rules.dtype_ok(s, kind), name="WRONG_DTYPE"),
            pa.Check(lambda s: rules.values_ok(s, kind), name="WRONG_VALUE"),
        ]
    if kind in ("numeric", "float", "integer"):
        checks.append(pa.Check(rules.finite, name="NON_FINITE"))
    if rule is not None and (rule.min is not None or rule.max is not None):
        low, high = rule.min, rule.max
        checks.append(pa.Check(lambda s: rules.in_range(s, low, high), name="OUT_OF_RANGE"))
    return checks


def _translate(
    cases: pd.DataFrame,
    df: pd.DataFrame,
    expected: list[str],
    contract: ContractSection,
    kinds: dict[str, str],
    n: int,
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
    return [
        _failure(code, column, cases_, df, expected, contract, kinds, n)
        for (code, column), cases_ in groups.items()
    ]


def _failure(
    code: str,
    column: str | None,
    cases: list[tuple[Any, Any, str]],
    df: pd.DataFrame,
    expected: list[str],
    contract: ContractSection,
    kinds: dict[str, str],
    n: int,
) -> ContractFailure:
    limit = contract.examples
    row_cases = [(v, i) for v, i, _ in cases if not _absent(i)]
    examples = [str(value) for value, _ in row_cases[:limit]]
    rows = [_row_label(i) for _, i in row_cases[:limit]]
    where = rules.row_list(rows, len(row_cases))
    rule = contract.columns.get(column or "")
    messages: dict[str, Callable[[], str]] = {
        "EMPTY_BATCH": lambda: "the batch has no rows (an empty or header-only file)",
        "TOO_FEW_ROWS": lambda: (
            f"the batch has {n} rows; at least {contract.min_rows} are required"
        ),
        "TOO_MANY_ROWS": lambda: f"the batch has {n} rows; at most {contract.max_rows} are allowed",
        "DUPLICATE_COLUMN": lambda: f"column names appear more than once: {examples}",
        "MISSING_COLUMN": lambda: _missing_message(str(column), df, expected),
        "EXTRA_COLUMN": lambda: (
            f"column {column!r} is not in the contract and extra columns are rejected; "
            f"expected only {expected}"
        ),
        "WRONG_DTYPE": lambda: _dtype_message(
            str(column), df, kinds.get(str(column), "numeric"), len(row_cases), where
        ),
        "NON_FINITE": lambda: (
            f"column {column!r} must hold finite numbers; found {len(row_cases)} infinite "
            f"value(s) at row index {where}"
        ),
        "OUT_OF_RANGE": lambda: (
            f"column {column!r} must lie in {rules.range_text(rule)}; "
            f"{len(row_cases)} value(s) lie outside, at row index {where}"
        ),
    }
    if code == "DUPLICATE_COLUMN":
        examples = sorted({str(c) for c in df.columns[df.columns.duplicated()]})[:limit]
    if code == "WRONG_DTYPE" and not examples and column in df.columns:
        examples = [str(v) for v in df[column].dropna().head(limit).tolist()]
    value, _, check = cases[0]
    on = f" on column {column!r}" if column else ""
    message = messages.get(code, lambda: f"check {check!r} failed{on}: {value}")()
    details: dict[str, Any] = {}
    if code in ("TOO_FEW_ROWS", "TOO_MANY_ROWS"):
        details = {"rows": n, "min_rows": contract.min_rows, "max_rows": contract.max_rows}
    if code == "WRONG_DTYPE" and column in df.columns:
        details = {"expected": kinds.get(str(column)), "found": str(df[column].dtype)}
    if code == "OUT_OF_RANGE" and rule is not None:
        details = {"min": rule.min, "max": rule.max}
    return ContractFailure(
        check=code,
        column=column,
        message=message,
        examples=examples,
        count=len(row_cases),
        rows=rows,
        details=details,
    )


def _row_label(index: Any) -> int | str:
    try:
        return int(index)
    except (TypeError, ValueError):
        return str(index)


def _absent(value: object) -> bool:
    """None, NaN or NA: pandera's "no column" / "no row" marker."""
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def _extra_columns(df: pd.DataFrame, expected: list[str]) -> list[ContractFailure]:
    return [
        ContractFailure(
            check="EXTRA_COLUMN",
            column=str(name),
            message=f"column {name!r} is not in the contract; it is kept in the snapshot "
            "but not used (extra columns are allowed)",
            examples=[],
        )
        for name in dict.fromkeys(map(str, df.columns))
        if name not in expected
    ]


def _missing_message(column: str, df: pd.DataFrame, expected: list[str]) -> str:
    found = [str(c) for c in df.columns]
    close = difflib.get_close_matches(column, [c for c in found if c not in expected], n=1)
    if close:
        return f"required column {column!r} is missing (renamed to {close[0]!r}?)"
    return f"required column {column!r} is missing; found columns {found}"


def _dtype_message(column: str, df: pd.DataFrame, kind: str, bad: int, rows: str) -> str:
    dtype = df[column].dtype if column in df.columns else "unknown"
    word = _KIND_WORDS.get(kind, kind)
    if kind in ("numeric", "float", "integer", "time"):
        message = f"column {column!r} must be {word} but has dtype {dtype}"
    else:
        message = f"column {column!r} must hold {word} but has dtype {dtype}"
    if bad:
        what = _VALUE_WORDS.get(kind, word)
        return message + f"; {bad} value(s) are not {what}, at row index {rows}"
    if kind in ("numeric", "float", "integer"):
        return message + "; its values are not stored as numbers (booleans, decimals or dates?)"
    return message + "; nothing was converted"
