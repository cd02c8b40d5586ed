"""A served model's input schema and the checks of a request payload against it.

Payloads are JSON objects in one of two shapes:

- ``{"records": [{"x1": 0.3, "color": "red"}, ...]}`` (one object per row), or
- ``{"columns": {"x1": [0.3, ...], "color": ["red", ...]}}`` (one list per feature).

Numeric features take JSON numbers (booleans and text are refused); NaN, ``inf`` and
nulls are refused, since the trained pipeline passes numbers through unchanged.
Categorical features take text (or a number, compared as text as in training); an
unknown category is *accepted*: the pipeline one-hot encodes with
``handle_unknown="ignore"`` (all indicator columns zero), and the server counts it.
Extra fields are ignored. Every refusal names the row and the field.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["MAX_ROWS", "FeatureSchema", "InputProblem", "ParsedInput"]

MAX_ROWS = 10_000
"""Rows one request may carry."""


class InputProblem(ValueError):
    """The payload does not fit the schema; ``field`` and ``row`` say where (HTTP 422)."""

    def __init__(self, message: str, *, field: str | None = None, row: int | None = None):
        super().__init__(message)
        self.field = field
        self.row = row

    def to_dict(self) -> dict[str, Any]:
        """The 422 body's ``detail``."""
        return {"message": str(self), "field": self.field, "row": self.row}


@dataclass(frozen=True)
class ParsedInput:
    """A checked payload: its rows as arrays (``numeric`` floats, ``categorical`` objects,
    columns in the schema's order), the checked rows, and unknown categories per feature.
    ``frame`` is the pandas frame the pipeline takes (built on first use)."""

    numeric: np.ndarray
    categorical: np.ndarray
    names: tuple[str, ...]
    rows: list[dict[str, Any]]
    unknown: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)

    @functools.cached_property
    def frame(self) -> pd.DataFrame:
        """The feature frame: numeric columns as float64, categorical ones as object."""
        k = self.numeric.shape[1]
        data = {name: self.numeric[:, j] for j, name in enumerate(self.names[:k])}
        data |= {name: self.categorical[:, j] for j, name in enumerate(self.names[k:])}
        return pd.DataFrame(data, columns=list(self.names))


@dataclass(frozen=True)
class FeatureSchema:
    """The features a model takes, by kind, and the categories seen in training.

    ``categories`` maps a categorical feature to its known values (as the fitted encoder
    holds them; when they are text, numbers sent for that feature are compared as text).
    Without known values nothing is counted as unknown.
    """

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    categories: Mapping[str, frozenset[Any]] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        """All features, numeric first (the training column order)."""
        return (*self.numeric, *self.categorical)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the feature names by kind."""
        return {"numeric": list(self.numeric), "categorical": list(self.categorical)}

    def parse(self, payload: Any) -> ParsedInput:
        """Check a decoded JSON payload and build the model's input frame.

        Raises:
            InputProblem: the shape is wrong, a feature is missing, or a value has the
                wrong type or is NaN/inf/null; the message names the row and field.
        """
        rows = _rows(payload, self.names)
        if not rows:
            raise InputProblem("expected at least one row, got none", field="records")
        if len(rows) > MAX_ROWS:
            raise InputProblem(f"expected at most {MAX_ROWS} rows, got {len(rows)}")
        unknown: dict[str, int] = {}
        clean: list[dict[str, Any]] = []
        numeric = np.empty((len(rows), len(self.numeric)), dtype=float)
        categorical = np.empty((len(rows), len(self.categorical)), dtype=object)
        as_text = {
            name: not self.categories.get(name)
            or any(isinstance(k, str) for k in self.categories[name])
            for name in self.categorical
        }
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise InputProblem(
                    f"row {i}: expected an object of features, got {type(row).__name__}",
                    row=i,
                )
            out: dict[str, Any] = {}
            for j, name in enumerate(self.numeric):
                out[name] = numeric[i, j] = _number(row, name, i)
            for j, name in enumerate(self.categorical):
                value: Any = _category(row, name, i)
                if as_text[name]:
                    value = str(value)  # text categories (as in training), or unknown
                known = self.categories.get(name)
                if known and value not in known:
                    unknown[name] = unknown.get(name, 0) + 1
                out[name] = categorical[i, j] = value
            clean.append(out)
        return ParsedInput(numeric, categorical, self.names, clean, unknown)


def _rows(payload: Any, names: Sequence[str]) -> list[Any]:
    if not isinstance(payload, Mapping):
        raise InputProblem(
            'expected a JSON object {"records": [...]} or {"columns": {...}}, '
            f"got {type(payload).__name__}"
        )
    has_records, has_columns = "records" in payload, "columns" in payload
    if has_records == has_columns:
        raise InputProblem('expected exactly one of "records" or "columns"', field="records")
    if has_records:
        records = payload["records"]
        if not isinstance(records, list):
            raise InputProblem(
                f'"records": expected a list of objects, got {type(records).__name__}',
                field="records",
            )
        return records
    columns = payload["columns"]
    if not isinstance(columns, Mapping):
        raise InputProblem(
            f'"columns": expected an object of lists, got {type(columns).__name__}',
            field="columns",
        )
    lengths: dict[str, int] = {}
    for name in names:
        if name not in columns:
            raise InputProblem(f"missing feature {name!r}", field=name)
        values = columns[name]
        if not isinstance(values, list):
            raise InputProblem(
                f"feature {name!r}: expected a list, got {type(values).__name__}", field=name
            )
        lengths[name] = len(values)
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{k}={v}" for k, v in lengths.items())
        raise InputProblem(f"expected columns of one length, got {shown}", field="columns")
    n = next(iter(lengths.values()), 0)
    return [{name: columns[name][i] for name in names} for i in range(n)]


def _number(row: Mapping[str, Any], name: str, i: int) -> float:
    if name not in row:
        raise InputProblem(f"row {i}: missing feature {name!r}", field=name, row=i)
    value = row[name]
    if value is None:
        raise InputProblem(
            f"row {i}: feature {name!r} is null (expected a number)", field=name, row=i
        )
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputProblem(
            f"row {i}: feature {name!r}: expected a number, got {type(value).__name__} {value!r}",
            field=name,
            row=i,
        )
    number = float(value)
    if not math.isfinite(number):
        raise InputProblem(
            f"row {i}: feature {name!r}: expected a finite number, got {value!r}",
            field=name,
            row=i,
        )
    return number


def _category(row: Mapping[str, Any], name: str, i: int) -> str | int | float:
    if name not in row:
        raise InputProblem(f"row {i}: missing feature {name!r}", field=name, row=i)
    value = row[name]
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None or not isinstance(value, int | float):
        raise InputProblem(
            f"row {i}: feature {name!r}: expected text, got "
            f"{'null' if value is None else type(value).__name__ + ' ' + repr(value)}",
            field=name,
            row=i,
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise InputProblem(
            f"row {i}: feature {name!r}: expected text, got {value!r}", field=name, row=i
        )
    return value
