"""Infer a data contract from data a model was trained on.

:func:`infer_contract` turns a frame (the champion's training snapshot) into the
``contract:`` section of a spec: per column its dtype, observed range widened by a
margin, known categories and largest null share. The result is validated as a
:class:`~retrainer.spec.ContractSection` before it is returned, so it pastes cleanly.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from retrainer.data.rules import is_numeric
from retrainer.spec import ContractSection, PipelineSpec

__all__ = ["infer_contract"]


def infer_contract(
    frame: pd.DataFrame,
    spec: PipelineSpec,
    *,
    widen: float = 0.1,
    null_margin: float = 0.05,
    max_categories: int = 50,
) -> dict[str, Any]:
    """The spec's contract section with ``columns`` inferred from ``frame``.

    For each feature, the target and the time column found in ``frame``: ``dtype``;
    for numeric features ``min``/``max``, the observed range widened by ``widen``
    times its span on each side (never narrower than observed); for text columns with
    at most ``max_categories`` distinct values, every categorical feature and a
    classification target, ``allowed``; for features, ``max_null_share``: the observed
    share plus ``null_margin``. The time column gets its dtype only (time moves on),
    a regression target its dtype only. The spec's other contract keys are kept (only
    those that differ from the defaults).

    Raises:
        ValueError: ``widen`` or ``null_margin`` is negative, ``max_categories`` < 1,
            or ``frame`` has no rows.
    """
    if widen < 0 or null_margin < 0 or max_categories < 1:
        raise ValueError(
            "expected widen >= 0, null_margin >= 0 and max_categories >= 1; got "
            f"{widen}, {null_margin} and {max_categories}"
        )
    if frame.empty:
        raise ValueError("cannot infer a contract from no rows")
    m = spec.model
    names = [*m.features.all, m.target, *([spec.data.time_column] if spec.data.time_column else [])]
    columns: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(names):
        if name not in frame.columns:
            continue
        if name == spec.data.time_column:  # time moves on: no range, no categories
            is_time = pd.api.types.is_datetime64_any_dtype(frame[name])
            columns[name] = {"dtype": "datetime"} if is_time else {}
            continue
        categorical = name in m.features.categorical or (
            name == m.target and m.task == "classification"
        )
        rule = _column(frame[name], categorical, max_categories, widen)
        if name == m.target and m.task == "regression":
            rule = {k: v for k, v in rule.items() if k == "dtype"}
        if name in m.features.all:
            share = float(frame[name].isna().mean())
            rule["max_null_share"] = min(1.0, round(share + null_margin, 4))
        columns[name] = rule
    section = spec.contract.model_dump(mode="json", exclude_defaults=True, exclude={"columns"})
    section["columns"] = columns
    ContractSection.model_validate(section)  # what we print must load
    return section


def _column(s: pd.Series, categorical: bool, max_categories: int, widen: float) -> dict[str, Any]:
    values = s.dropna()
    if pd.api.types.is_bool_dtype(s):
        return {"dtype": "boolean"}
    if pd.api.types.is_datetime64_any_dtype(s):
        return {"dtype": "datetime"}
    if is_numeric(s) and not categorical:
        rule: dict[str, Any] = {"dtype": "integer" if pd.api.types.is_integer_dtype(s) else "float"}
        if not values.empty:
            low, high = float(values.min()), float(values.max())
            span = (high - low) or abs(high) or 1.0
            rule["min"] = min(low, _round(low - widen * span))
            rule["max"] = max(high, _round(high + widen * span))
        return rule
    rule = {"dtype": "string"} if pd.api.types.is_string_dtype(s) else {}
    distinct = values.unique()
    if categorical or len(distinct) <= max_categories:
        rule["allowed"] = sorted((_plain(v) for v in distinct), key=lambda v: (str(type(v)), v))
    return rule


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value YAML writes plainly."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value
