"""The contract's value rules and batch statistics: pure functions over one batch.

Dtype and value predicates (used by the pandera schema of :mod:`retrainer.data.contract`)
only *detect*: a column is never converted. The statistical checks judge a whole batch:
null rates against a reference (``NULL_STORM``), categories outside the known set
(``UNSEEN_CATEGORY``), exact duplicate rows and duplicate keys (``DUPLICATE_ROWS``,
``DUPLICATE_KEYS``), a batch identical to an accepted one (``DUPLICATE_BATCH``), time
going backwards or behind the watermark (``TIME_ORDER``) and the batch size against the
previous accepted batch (``VOLUME_ANOMALY``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from retrainer.spec import ColumnRule, ContractSection, DuplicatesRule

__all__ = [
    "BatchContext",
    "ContractFailure",
    "Findings",
    "as_time",
    "deduplicate",
    "merge_null_counts",
    "null_counts",
    "null_shares",
    "statistical_checks",
]


@dataclass(frozen=True)
class ContractFailure:
    """One way a batch breaks (or, as a warning, strains) the contract.

    Attributes:
        check: A stable code (``MISSING_COLUMN``, ``WRONG_DTYPE``...), safe to match on.
        column: The column concerned, or ``None`` for whole-batch findings.
        message: Plain language: the column, what was expected and what was found.
        examples: The first failing values, as strings (empty when not applicable).
        count: How many rows fail (0 when the finding is not about rows).
        rows: Index labels of the first failing rows (as many as ``examples`` at most).
        details: The numbers behind the message (shares, limits, counts), JSON-ready.
    """

    check: str
    column: str | None
    message: str
    examples: list[str]
    count: int = 0
    rows: list[int | str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchContext:
    """What a batch is compared with; every field is optional.

    Attributes:
        previous_rows: Rows of the previous accepted (or released) batch.
        reference_null_shares: Column -> null share in the reference data (the
            champion's training snapshot), the baseline of ``NULL_STORM``.
        reference: How to name that reference in messages.
        newest_time: The newest time value of the accepted data (ISO-8601 or a number
            as text), the watermark of ``time_order: watermark``.
        duplicate_of: A batch already accepted with exactly these rows (its id and key,
            e.g. ``"3 (b1.parquet)"``): the batch is a re-delivery, ``DUPLICATE_BATCH``.
    """

    previous_rows: int | None = None
    reference_null_shares: Mapping[str, float] | None = None
    reference: str = "the reference data"
    newest_time: str | None = None
    duplicate_of: str | None = None


@dataclass
class Findings:
    """Failures (quarantine the batch) and warnings (flag it) of the statistical checks."""

    failures: list[ContractFailure] = field(default_factory=list)
    warnings: list[ContractFailure] = field(default_factory=list)

    def add(self, finding: ContractFailure, *, fails: bool) -> None:
        """Record ``finding`` as a failure or a warning."""
        (self.failures if fails else self.warnings).append(finding)


# -- value predicates: detection only -----------------------------------------------------


def is_numeric(s: pd.Series) -> bool:
    """A numeric dtype that is not boolean."""
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def _is_text(s: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(s) or isinstance(s.dtype, pd.CategoricalDtype)


def dtype_ok(s: pd.Series, kind: str) -> bool:
    """Whether the column's dtype can hold ``kind`` values (text may still hold bad ones)."""
    if kind in ("numeric", "float", "integer"):
        return is_numeric(s)
    if kind == "string":
        return _is_text(s)
    if kind == "boolean":
        return pd.api.types.is_bool_dtype(s) or s.dtype == object
    if kind == "datetime":
        return pd.api.types.is_datetime64_any_dtype(s) or _is_text(s)
    if kind == "time":
        return pd.api.types.is_datetime64_any_dtype(s) or is_numeric(s) or _is_text(s)
    raise ValueError(f"unknown column kind {kind!r}")


def values_ok(s: pd.Series, kind: str) -> pd.Series:
    """Per value: True when it is a ``kind`` value or null (the batch is not converted)."""
    ok = pd.Series(True, index=s.index)
    if kind in ("numeric", "float", "integer"):
        values = s if is_numeric(s) else pd.to_numeric(s.astype(object), errors="coerce")
        ok = values.notna() | s.isna()
        if kind == "integer":
            numbers = values.astype(float)
            whole = (numbers % 1 == 0) | ~np.isfinite(numbers)
            ok &= whole.fillna(True) | s.isna()
    elif kind == "string" and s.dtype == object:
        ok = s.map(lambda v: isinstance(v, str)) | s.isna()
    elif kind == "boolean" and s.dtype == object:
        ok = s.map(lambda v: isinstance(v, (bool, np.bool_))) | s.isna()
    elif kind in ("datetime", "time") and _is_text(s):
        parsed = pd.to_datetime(s.astype(object), errors="coerce", format="ISO8601", utc=True)
        ok = parsed.notna() | s.isna()
    return pd.Series(np.asarray(ok, dtype=bool), index=s.index)


def finite(s: pd.Series) -> pd.Series:
    """Per value: not +-inf (non-numeric columns pass; their dtype is reported instead)."""
    if not is_numeric(s):
        return pd.Series(True, index=s.index)
    return ~s.isin([np.inf, -np.inf])


def in_range(s: pd.Series, low: float | None, high: float | None) -> pd.Series:
    """Per value: within ``[low, high]`` (nulls and non-numeric columns pass)."""
    ok = pd.Series(True, index=s.index)
    if not is_numeric(s):
        return ok
    if low is not None:
        ok &= (s >= low) | s.isna()
    if high is not None:
        ok &= (s <= high) | s.isna()
    return ok


def as_time(s: pd.Series) -> pd.Series:
    """Comparable times: numbers as floats, anything else as UTC datetimes (NaT if not one)."""
    if is_numeric(s):
        return s.astype(float)
    if pd.api.types.is_datetime64_any_dtype(s):
        out: pd.Series = s.dt.tz_localize("UTC") if s.dt.tz is None else s.dt.tz_convert("UTC")
        return out
    return pd.to_datetime(s.astype(object), errors="coerce", format="ISO8601", utc=True)


def null_shares(df: pd.DataFrame) -> dict[str, float]:
    """Each column's share of nulls: the baseline ``NULL_STORM`` compares with."""
    return merge_null_counts([null_counts(df)])


def null_counts(df: pd.DataFrame) -> tuple[int, dict[str, int]]:
    """(rows, nulls per column) of one part of a dataset."""
    return len(df), {str(k): int(v) for k, v in df.isna().sum().items()}


def merge_null_counts(parts: Sequence[tuple[int, dict[str, int]]]) -> dict[str, float]:
    """:func:`null_shares` of a dataset from its parts' :func:`null_counts` (columns of
    the first part)."""
    rows = sum(n for n, _ in parts)
    if rows == 0:
        return {}
    names = list(parts[0][1])
    return {k: sum(counts.get(k, 0) for _, counts in parts) / rows for k in names}


# -- helpers for messages -----------------------------------------------------------------


def row_list(rows: Sequence[object], total: int) -> str:
    """``"3, 7, 9 ..."``: the rows shown, and ``...`` when there are more."""
    return ", ".join(map(str, rows)) + (" ..." if total > len(rows) else "")


def range_text(rule: ColumnRule | None) -> str:
    """``[0, 10]``, ``>= 0`` or ``<= 10``."""
    if rule is None:
        return "its range"
    if rule.min is not None and rule.max is not None:
        return f"[{rule.min:g}, {rule.max:g}]"
    return f">= {rule.min:g}" if rule.min is not None else f"<= {rule.max:g}"


def _pct(share: float) -> str:
    return f"{100 * share:.1f}%"


def _labels(index: pd.Index, limit: int) -> list[int | str]:
    out: list[int | str] = []
    for label in index[:limit]:
        try:
            out.append(int(label))
        except (TypeError, ValueError):
            out.append(str(label))
    return out


# -- statistical checks -------------------------------------------------------------------


def statistical_checks(
    df: pd.DataFrame,
    contract: ContractSection,
    *,
    features: Sequence[str],
    time_column: str | None,
    context: BatchContext,
    usable: set[str],
) -> Findings:
    """Null rates, unseen categories, duplicates, time order and volume of a non-empty batch.

    ``usable`` names the columns present once with an acceptable dtype; only those are
    read for values (nulls are counted in any column present once).
    """
    found = Findings()
    names = [str(c) for c in df.columns]
    present = {n for n in names if names.count(n) == 1}
    for column in dict.fromkeys([*features, *contract.columns]):
        if column in present:
            _nulls(df, column, contract, column in features, context, found)
    for column, rule in contract.columns.items():
        if rule.allowed is not None and column in usable:
            _unseen(df[column], column, rule, contract, found)
    if len(present) == len(names):
        _duplicates(df, contract.duplicates, contract.examples, found)
    if contract.time_order != "none" and time_column in usable:
        _time_order(df[time_column], str(time_column), contract, context, found)
    _volume(len(df), contract, context, found)
    if context.duplicate_of is not None:
        found.add(
            ContractFailure(
                check="DUPLICATE_BATCH",
                column=None,
                message=f"the batch holds exactly the rows of batch {context.duplicate_of}, "
                "already accepted: a re-delivery would count every row twice",
                examples=[],
                count=len(df),
                details={"duplicate_of": context.duplicate_of},
            ),
            fails=True,
        )
    return found


def _nulls(
    df: pd.DataFrame,
    column: str,
    contract: ContractSection,
    is_feature: bool,
    context: BatchContext,
    found: Findings,
) -> None:
    nulls = df[column].isna()
    count = int(nulls.sum())
    if not count:
        return
    share = count / len(df)
    rule = contract.columns.get(column)
    limits: list[tuple[float, str]] = []
    if rule is not None and not rule.nullable:
        limits.append((0.0, "the contract says it is not nullable"))
    if rule is not None and rule.max_null_share is not None:
        limits.append((rule.max_null_share, f"max_null_share is {_pct(rule.max_null_share)}"))
    base = (context.reference_null_shares or {}).get(column)
    if is_feature and base is not None:
        limit = min(1.0, base + contract.null_tolerance)
        limits.append(
            (
                limit,
                f"{_pct(base)} in {context.reference} + null_tolerance "
                f"{_pct(contract.null_tolerance)}",
            )
        )
    broken = [(limit, why) for limit, why in limits if share > limit + 1e-12]
    if not broken:
        return
    limit, why = min(broken)
    found.add(
        ContractFailure(
            check="NULL_STORM",
            column=column,
            message=f"column {column!r} is {_pct(share)} null ({count} of {len(df)} rows); "
            f"at most {_pct(limit)} allowed: {why}",
            examples=[],
            count=count,
            rows=_labels(df.index[nulls.to_numpy()], contract.examples),
            details={"share": round(share, 6), "limit": round(limit, 6), "reference": base},
        ),
        fails=True,
    )


def _unseen(
    s: pd.Series, column: str, rule: ColumnRule, contract: ContractSection, found: Findings
) -> None:
    allowed = list(rule.allowed or [])
    values = s.dropna()
    if values.empty:
        return
    known = values.isin(allowed) | values.astype(str).isin([str(a) for a in allowed])
    unseen = values[~known.to_numpy()]
    share = len(unseen) / len(values)
    if not len(unseen) or share <= rule.max_unseen_share:
        return
    counts = unseen.astype(str).value_counts().head(contract.examples)
    rejected = contract.unseen_categories == "reject"
    found.add(
        ContractFailure(
            check="UNSEEN_CATEGORY",
            column=column,
            message=f"column {column!r} has {_pct(share)} of values outside its known "
            f"categories ({len(unseen)} of {len(values)}; at most "
            f"{_pct(rule.max_unseen_share)} tolerated), e.g. "
            + ", ".join(f"{v!r} x{n}" for v, n in counts.items())
            + ("" if rejected else "; flagged, not rejected (unseen_categories: flag)"),
            examples=list(counts.index),
            count=len(unseen),
            rows=_labels(unseen.index, contract.examples),
            details={
                "share": round(share, 6),
                "limit": rule.max_unseen_share,
                "unseen": {str(k): int(v) for k, v in counts.items()},
            },
        ),
        fails=rejected,
    )


def _policy_text(policy: str, kept: str) -> str:
    return {
        "reject": "the batch is rejected",
        "drop": f"they are dropped, keeping {kept}",
        "allow": "they are kept (duplicates are allowed)",
    }[policy]


def _duplicates(df: pd.DataFrame, rule: DuplicatesRule, limit: int, found: Findings) -> None:
    try:
        dup_rows = df.duplicated(keep="first")
    except TypeError:  # unhashable cells: a dtype failure says so already
        return
    n_rows = int(dup_rows.sum())
    if n_rows:
        found.add(
            ContractFailure(
                check="DUPLICATE_ROWS",
                column=None,
                message=f"{n_rows} row(s) are exact copies of an earlier row; "
                + _policy_text(rule.rows, "the first of each"),
                examples=[],
                count=n_rows,
                rows=_labels(df.index[dup_rows.to_numpy()], limit),
                details={"duplicate_rows": n_rows, "policy": rule.rows},
            ),
            fails=rule.rows == "reject",
        )
    key = list(rule.key or [])
    if not key or any(k not in df.columns for k in key):
        return
    base = df[~dup_rows.to_numpy()] if rule.rows == "drop" else df
    extra = base.duplicated(subset=key, keep="last")
    n_keys = int(extra.sum())
    if not n_keys:
        return
    repeated = base.loc[base.duplicated(subset=key, keep=False).to_numpy(), key]
    distinct = repeated.drop_duplicates()
    examples = [
        ", ".join(f"{k}={v}" for k, v in zip(key, row, strict=True))
        for row in distinct.head(limit).itertuples(index=False)
    ]
    found.add(
        ContractFailure(
            check="DUPLICATE_KEYS",
            column=", ".join(key),
            message=f"{len(distinct)} key value(s) of ({', '.join(key)}) appear on more than "
            f"one row ({n_keys} surplus row(s)), e.g. {'; '.join(examples)}; "
            + _policy_text(rule.keys, "the last row of each key"),
            examples=examples,
            count=n_keys,
            rows=_labels(base.index[extra.to_numpy()], limit),
            details={"duplicate_keys": len(distinct), "surplus_rows": n_keys, "policy": rule.keys},
        ),
        fails=rule.keys == "reject",
    )


def deduplicate(df: pd.DataFrame, rule: DuplicatesRule) -> tuple[pd.DataFrame, dict[str, int]]:
    """Apply the ``drop`` policies: the rows kept, and how many of each kind were dropped.

    Exact duplicate rows keep the first copy; rows sharing a key keep the last row of the
    key (a later row corrects an earlier one). ``allow`` and ``reject`` drop nothing.
    """
    dropped = {"duplicate_rows": 0, "duplicate_keys": 0}
    out = df
    if rule.rows == "drop":
        mask = out.duplicated(keep="first").to_numpy()
        dropped["duplicate_rows"] = int(mask.sum())
        out = out[~mask]
    key = list(rule.key or [])
    if key and rule.keys == "drop" and all(k in out.columns for k in key):
        mask = out.duplicated(subset=key, keep="last").to_numpy()
        dropped["duplicate_keys"] = int(mask.sum())
        out = out[~mask]
    return out.reset_index(drop=True), dropped


def _time_order(
    s: pd.Series, column: str, contract: ContractSection, context: BatchContext, found: Findings
) -> None:
    times = as_time(s)
    running = times.cummax().ffill().shift(1)
    back = (times < running).fillna(False).to_numpy(dtype=bool)
    late = np.zeros(len(s), dtype=bool)
    mark = None
    if contract.time_order == "watermark" and context.newest_time is not None:
        mark = as_time(pd.Series([context.newest_time])).iloc[0]
        if is_numeric(s) and not isinstance(mark, float):
            mark = pd.to_numeric(context.newest_time, errors="coerce")
        late = (times < mark).fillna(False).to_numpy(dtype=bool)
    for mask, what in (
        (back, "goes backwards within the batch: a row is older than a row before it"),
        (late, f"has rows older than the newest accepted row ({context.newest_time})"),
    ):
        count = int(mask.sum())
        if count:
            index = s.index[mask]
            found.add(
                ContractFailure(
                    check="TIME_ORDER",
                    column=column,
                    message=f"time column {column!r} {what}: {count} row(s), at row index "
                    f"{row_list(_labels(index, contract.examples), count)}",
                    examples=[str(v) for v in s[mask].head(contract.examples)],
                    count=count,
                    rows=_labels(index, contract.examples),
                    details={"order": contract.time_order, "watermark": context.newest_time},
                ),
                fails=True,
            )


def _volume(rows: int, contract: ContractSection, context: BatchContext, found: Findings) -> None:
    previous = context.previous_rows
    if not previous or not rows:
        return
    ratio = rows / previous
    rule = contract.volume
    if rule.min_ratio < ratio < rule.max_ratio:
        return
    found.add(
        ContractFailure(
            check="VOLUME_ANOMALY",
            column=None,
            message=f"the batch has {rows} rows, {ratio:.3g}x the previous accepted batch "
            f"({previous} rows; flagged at >= {rule.max_ratio:g}x or <= {rule.min_ratio:g}x); "
            "a candidate trained on it is not promoted automatically",
            examples=[],
            details={
                "rows": rows,
                "previous_rows": previous,
                "ratio": round(ratio, 6),
                "min_ratio": rule.min_ratio,
                "max_ratio": rule.max_ratio,
            },
        ),
        fails=False,
    )
