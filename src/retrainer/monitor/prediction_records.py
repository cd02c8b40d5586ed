"""Prediction and label records as callers give them, checked and normalised for the
store: ids, timestamps (timezone-aware), scores, labels (JSON scalars; compared as text
by :func:`label_text`) and class probabilities. Every refusal is an
:class:`InvalidRecordsError` naming the row, the prediction id and the column.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from retrainer.errors import RetrainerError
from retrainer.registry.db import as_utc

__all__ = [
    "InvalidRecordsError",
    "as_records",
    "check_columns",
    "check_model",
    "class_probabilities",
    "is_missing",
    "label_text",
    "label_value",
    "prediction_id_text",
    "prediction_row",
    "scalar",
    "timestamp",
]


class InvalidRecordsError(RetrainerError, ValueError):
    """Prediction or label records are malformed; the message names the row, id and column."""

    code = "INVALID_RECORDS"
    exit_code = 2


def is_missing(value: Any) -> bool:
    if value is None or value is pd.NaT:
        return True
    return isinstance(value, float | np.floating) and math.isnan(value)


def scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def label_text(value: Any) -> str:
    """A label as the text it is stored and compared as: ``1``, ``1.0`` -> ``"1"``; ``"yes"``.

    >>> [label_text(v) for v in (1, 1.0, 2.5, True, "yes")]
    ['1', '1', '2.5', 'True', 'yes']
    """
    value = scalar(value)
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() else repr(value)
    raise ValueError(f"expected a label (text, integer, finite number or boolean), got {value!r}")


def label_value(value: Any) -> str | int | float | bool:
    """A true label as the JSON scalar stored; integral floats become integers."""
    value = scalar(value)
    if isinstance(value, str | bool | int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value) if value.is_integer() else value
    raise ValueError(f"expected a label (text, integer, finite number or boolean), got {value!r}")


def prediction_id_text(value: Any, row: int, what: str) -> str:
    value = scalar(value)
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise InvalidRecordsError(
            f"{what}: row {row}: column 'prediction_id' must be a non-empty text or integer, "
            f"got {value!r}"
        )
    text = str(value)
    if len(text) > 128:
        raise InvalidRecordsError(
            f"{what}: row {row}: prediction_id {text[:40]!r}... is longer than 128 characters"
        )
    return text


def as_records(data: pd.DataFrame | Iterable[Mapping[str, Any]], what: str) -> list[dict[str, Any]]:
    if isinstance(data, pd.DataFrame):
        if not all(isinstance(c, str) for c in data.columns):
            raise InvalidRecordsError(
                f"{what}: column names must be text, got {list(data.columns)}"
            )
        return [{str(k): v for k, v in r.items()} for r in data.to_dict(orient="records")]
    if isinstance(data, Mapping | str | bytes):
        raise InvalidRecordsError(
            f"{what}: expected a DataFrame or an iterable of records (mappings), "
            f"got {type(data).__name__}"
        )
    out = []
    for i, rec in enumerate(data):
        if not isinstance(rec, Mapping):
            raise InvalidRecordsError(
                f"{what}: row {i}: expected a mapping of column to value, got {type(rec).__name__}"
            )
        out.append(dict(rec))
    return out


def check_columns(
    records: list[dict[str, Any]], allowed: Sequence[str], required: str, what: str
) -> None:
    for i, rec in enumerate(records):
        unknown = sorted(set(rec) - set(allowed), key=str)
        if unknown:
            raise InvalidRecordsError(
                f"{what}: row {i}: unexpected column {unknown[0]!r}; expected {', '.join(allowed)}"
            )
        if required not in rec:
            raise InvalidRecordsError(f"{what}: row {i}: missing required column {required!r}")


def timestamp(value: Any, where: str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise InvalidRecordsError(f"{where}: not an ISO 8601 timestamp: {value!r}") from exc
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime(warn=False)
    if not isinstance(value, datetime):
        raise InvalidRecordsError(f"{where}: expected a timezone-aware datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidRecordsError(
            f"{where}: expected a timezone-aware datetime, got naive {value!r} "
            "(its instant is unknown; localize it, e.g. to UTC)"
        )
    return as_utc(value)


def prediction_row(
    rec: dict[str, Any], i: int, model: str, version: int, default_at: datetime
) -> dict[str, Any]:
    pid = prediction_id_text(rec["prediction_id"], i, "predictions")
    where = f"predictions: row {i} (prediction_id {pid!r})"
    at = rec.get("predicted_at")
    predicted_at = default_at if is_missing(at) else timestamp(at, f"{where}: 'predicted_at'")

    raw_score = scalar(rec.get("score"))
    value: float | None = None
    if not is_missing(raw_score):
        if isinstance(raw_score, bool) or not isinstance(raw_score, int | float):
            raise InvalidRecordsError(f"{where}: 'score' must be a number, got {raw_score!r}")
        value = float(raw_score)
        if not math.isfinite(value):
            raise InvalidRecordsError(f"{where}: 'score' must be finite, got {raw_score!r}")

    raw_label = rec.get("label")
    text: str | None = None
    if not is_missing(raw_label):
        try:
            text = label_text(raw_label)
        except ValueError as exc:
            raise InvalidRecordsError(f"{where}: 'label': {exc}") from exc
        if len(text) > 256:
            raise InvalidRecordsError(f"{where}: 'label' is longer than 256 characters")

    probabilities = class_probabilities(rec.get("probabilities"), where)
    if value is None and text is None and probabilities is None:
        raise InvalidRecordsError(
            f"{where}: has no output; expected at least one of 'score', 'label', 'probabilities'"
        )
    return {
        "model": model,
        "prediction_id": pid,
        "version": version,
        "predicted_at": predicted_at,
        "score": value,
        "label": text,
        "probabilities": probabilities,
    }


def class_probabilities(raw: Any, where: str) -> dict[str, float] | None:
    if raw is None or (not isinstance(raw, Mapping) and is_missing(raw)):
        return None
    if not isinstance(raw, Mapping) or not raw:
        raise InvalidRecordsError(
            f"{where}: 'probabilities' must be a non-empty mapping of class to probability, "
            f"got {raw!r}"
        )
    out: dict[str, float] = {}
    for key, p in raw.items():
        p = scalar(p)
        try:
            name = label_text(key)
        except ValueError as exc:
            raise InvalidRecordsError(f"{where}: 'probabilities': {exc}") from exc
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= float(p) <= 1.0:
            raise InvalidRecordsError(
                f"{where}: 'probabilities'[{name!r}] must be a number in [0, 1], got {p!r}"
            )
        out[name] = float(p)
    return out


def check_model(model: str) -> None:
    if not isinstance(model, str) or not 0 < len(model) <= 64:
        raise InvalidRecordsError(f"model must be a name of 1 to 64 characters, got {model!r}")
