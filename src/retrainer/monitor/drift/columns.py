"""Turning frame columns into what the statistics compare, without silent coercion.

* A numeric column becomes float64 (NaN for missing, ``±inf`` kept). Integer, float,
  nullable and boolean dtypes qualify, and so does an ``object`` column holding only
  real numbers; strings, dates or categories do not (:func:`numeric_values` returns
  None: a ``type_mismatch``, never a column of NaN).
* A categorical value becomes a string key, the same for the same value whatever the
  dtype it arrived in: ``3``, ``3.0`` and ``"3"`` are all ``"3"`` (a column of integer
  codes read with one NaN is float64, and must still match), other floats are their
  ``repr`` (``"0.5"``), booleans ``"True"``/``"False"``; missing values are None.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "category_counts",
    "category_keys",
    "column_counts",
    "numeric_values",
    "split_special",
]

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
ObjectArray = np.ndarray[Any, np.dtype[np.object_]]


def numeric_values(series: pd.Series[Any]) -> FloatArray | None:
    """The column as float64, or None when it does not hold numbers."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    if pd.api.types.is_object_dtype(dtype):
        values = series.to_numpy(dtype=object)
        present = values[~pd.isna(values)]
        if all(isinstance(v, numbers.Real) and not isinstance(v, str | bytes) for v in present):
            return np.array([np.nan if pd.isna(v) else float(v) for v in values], dtype=float)
    return None


def split_special(values: FloatArray) -> tuple[FloatArray, int, int, int]:
    """(finite values, NaN count, +inf count, -inf count)."""
    finite = np.isfinite(values)
    if finite.all():  # the common case: no copy, no counting
        return values, 0, 0, 0
    nan = int(np.isnan(values).sum())
    posinf = int(np.isposinf(values).sum())
    return values[finite], nan, posinf, int(values.size - finite.sum() - nan - posinf)


def _key(value: Any) -> str | None:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        f = float(value)
        if f != f:
            return None
        return str(int(f)) if f.is_integer() else repr(f)
    return str(value)


def category_keys(series: pd.Series[Any]) -> ObjectArray:
    """The column's values as string keys (None for missing), as described above.

    Each distinct value is keyed once: :func:`pandas.factorize` codes the column, the
    uniques get their keys, and the codes pick them (``O(rows)`` in C, one Python call
    per distinct value). Where factorizing could merge values whose keys differ (an
    object column holding both booleans and numbers: ``True == 1``) or cannot hash a
    value (a list in a cell), every value is keyed on its own instead.
    """
    coded = _coded(series)
    if isinstance(coded, np.ndarray):
        return coded
    return _pick(*coded)


def column_counts(series: pd.Series[Any]) -> tuple[dict[str, int], int]:
    """(count per category key, missing count) of a column: :func:`category_counts` of
    its :func:`category_keys`, counted on the factorized codes."""
    coded = _coded(series)
    if isinstance(coded, np.ndarray):
        return category_counts(coded)
    codes, lookup = coded
    per_code = np.bincount(codes[codes >= 0], minlength=lookup.size)
    present: dict[str, int] = {}
    for key, count in zip(lookup.tolist(), per_code.tolist(), strict=True):
        if count:  # distinct values with the same key (3 and "3") add up
            present[key] = present.get(key, 0) + count
    return present, int(codes.size - sum(present.values()))


def _coded(series: pd.Series[Any]) -> tuple[np.ndarray[Any, Any], ObjectArray] | ObjectArray:
    """(codes, key per code) with code -1 for missing, or the keys themselves where
    values must be keyed one by one."""
    dtype = series.dtype
    if pd.api.types.is_integer_dtype(dtype) and not pd.api.types.is_extension_array_dtype(dtype):
        ints, int_uniques = pd.factorize(series.to_numpy(), use_na_sentinel=True)
        return ints, np.asarray(int_uniques).astype(str).astype(object)
    try:
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
    except TypeError:  # unhashable values
        return _keys_one_by_one(series)
    distinct = list(uniques)
    if pd.api.types.is_object_dtype(dtype) and _bools_and_numbers(distinct):
        return _keys_one_by_one(series)
    lookup = np.empty(len(distinct), dtype=object)
    lookup[:] = [_key(v) for v in distinct]
    return codes, lookup


def _pick(codes: np.ndarray[Any, Any], lookup: ObjectArray) -> ObjectArray:
    """``lookup[codes]`` with code -1 (missing) as None."""
    table = np.empty(lookup.size + 1, dtype=object)
    table[:-1] = lookup  # table[-1] stays None: code -1 picks it
    out: ObjectArray = table[codes]
    return out


def _bools_and_numbers(values: list[Any]) -> bool:
    bools = any(isinstance(v, bool | np.bool_) for v in values)
    return bools and any(
        isinstance(v, numbers.Number) and not isinstance(v, bool | np.bool_) for v in values
    )


def _keys_one_by_one(series: pd.Series[Any]) -> ObjectArray:
    values = series.to_numpy(dtype=object)
    cache: dict[tuple[type, Any], str | None] = {}  # by type too: True == 1
    out = np.empty(values.size, dtype=object)
    for i, v in enumerate(values):
        try:
            out[i] = cache[type(v), v]
        except KeyError:
            out[i] = cache[type(v), v] = _key(v)
        except TypeError:  # unhashable (a list in a cell): its text
            out[i] = str(v)
    return out


def category_counts(keys: ObjectArray) -> tuple[dict[str, int], int]:
    """(count per category, missing count) of :func:`category_keys` output."""
    counts = pd.Series(keys, dtype=object).value_counts(dropna=True)
    present = {str(k): int(v) for k, v in counts.items()}
    return present, int(keys.size - sum(present.values()))
