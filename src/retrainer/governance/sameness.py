"""Are two models the same? Their predictions on the same rows, and their fitted state.

Used by reproduction: a model retrained from a version's recorded inputs is compared with
the version's stored artifact. skops files are not byte-deterministic (zip members are
named after object ids and carry timestamps), so equal files cannot be expected; what
can be compared is what the model computes with: its fitted attributes.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["PredictionComparison", "compare_predictions", "state_differences"]

Array = np.ndarray[Any, Any]
_MAX_DEPTH = 40


@dataclass(frozen=True)
class PredictionComparison:
    """Two models' predictions on the same rows.

    Attributes:
        compared: What was compared: ``probabilities``, ``values`` or ``labels``.
        rows: Rows predicted.
        max_abs_diff: Largest absolute difference of the numbers (0 for labels).
        rows_differ: Rows whose output differs by more than ``tolerance`` (labels: at all).
        tolerance: The declared tolerance.
        identical: Every output bit-for-bit equal.
    """

    compared: str
    rows: int
    max_abs_diff: float
    rows_differ: int
    tolerance: float
    identical: bool

    @property
    def verdict(self) -> str:
        """``identical``, ``within tolerance`` or ``differ``."""
        if self.identical:
            return "identical"
        return "within tolerance" if self.rows_differ == 0 else "differ"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {**self.__dict__, "verdict": self.verdict}


def compare_predictions(
    a: Any, b: Any, frame: pd.DataFrame, features: list[str], *, tolerance: float = 0.0
) -> PredictionComparison:
    """Predict ``frame[features]`` with both models: class probabilities when both have
    ``predict_proba``, else ``predict`` (numbers compared with ``tolerance``, labels
    exactly). Prediction errors propagate."""
    X = frame[features]
    if hasattr(a, "predict_proba") and hasattr(b, "predict_proba"):
        kind, out_a, out_b = "probabilities", a.predict_proba(X), b.predict_proba(X)
    else:
        kind, out_a, out_b = "values", a.predict(X), b.predict(X)
    left, right = np.asarray(out_a), np.asarray(out_b)
    rows = len(frame)
    if left.shape != right.shape:
        return PredictionComparison(kind, rows, float("inf"), rows, tolerance, False)
    identical = bool(np.array_equal(left, right, equal_nan=_numeric(left)))
    if not (_numeric(left) and _numeric(right)):
        differ = left != right
        per_row = differ.reshape(rows, -1).any(axis=1) if rows else differ
        return PredictionComparison("labels", rows, 0.0, int(per_row.sum()), tolerance, identical)
    diff = np.abs(left.astype(float) - right.astype(float))
    diff = np.where(np.isnan(left) & np.isnan(right), 0.0, diff)
    diff = np.where(np.isnan(diff), np.inf, diff)
    worst = diff.reshape(rows, -1).max(axis=1) if rows else np.zeros(0)
    top = float(worst.max()) if rows else 0.0
    return PredictionComparison(
        kind, rows, top, int((worst > tolerance).sum()), tolerance, identical
    )


def _numeric(values: Array) -> bool:
    return values.dtype.kind in "fiub"


def state_differences(a: Any, b: Any, *, limit: int = 5) -> list[str]:
    """Where the fitted state of ``a`` and ``b`` differs (attribute paths, at most
    ``limit``); ``[]`` when every attribute, array and nested estimator is equal.

    Example:
        >>> from sklearn.linear_model import LinearRegression
        >>> m1 = LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])
        >>> m2 = LinearRegression().fit([[0.0], [1.0]], [0.0, 2.0])
        >>> state_differences(m1, m1), state_differences(m1, m2)
        ([], ['coef_', 'intercept_'])
    """
    found: list[str] = []
    seen: set[tuple[int, int]] = set()
    stack: list[tuple[str, Any, Any, int]] = [("", a, b, 0)]
    while stack and len(found) < limit:
        path, x, y, depth = stack.pop()
        problem = _leaf_difference(x, y)
        if problem is not None:
            if problem:
                found.append(path or "model")
            continue
        if (id(x), id(y)) in seen or depth > _MAX_DEPTH:
            continue
        seen.add((id(x), id(y)))
        children = _pairs(x, y)
        if children is None:
            found.append(f"{path or 'model'} (keys differ)")
            continue
        for key, cx, cy in reversed(children):
            joined = f"{path}{key}" if key.startswith("[") or not path else f"{path}.{key}"
            stack.append((joined, cx, cy, depth + 1))
    return found


def _leaf_difference(x: Any, y: Any) -> bool | None:
    """True/False when ``x`` and ``y`` are leaves that differ/agree; None to descend."""
    if type(x) is not type(y):
        return True
    if x is None or isinstance(x, bool | int | str | bytes):
        return bool(x != y)
    if isinstance(x, float):
        return not (x == y or (np.isnan(x) and np.isnan(y)))
    if isinstance(x, np.generic):
        return not bool(
            np.array_equal(np.asarray(x), np.asarray(y), equal_nan=_numeric(np.asarray(x)))
        )
    if isinstance(x, np.ndarray):
        if x.dtype != y.dtype or x.shape != y.shape:
            return True
        if x.dtype.kind == "O":
            return None
        return not bool(np.array_equal(x, y, equal_nan=_numeric(x) or x.dtype.kind in "mM"))
    if isinstance(x, np.dtype):
        return bool(x != y)
    if inspect.isroutine(x) or isinstance(x, type):
        return _name(x) != _name(y)
    return None


def _name(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _pairs(x: Any, y: Any) -> list[tuple[str, Any, Any]] | None:
    """The children to compare, or None when their keys differ."""
    if isinstance(x, dict):
        if set(x) != set(y):
            return None
        return [(str(k), x[k], y[k]) for k in x]
    if isinstance(x, functools.partial):
        return _pairs(
            {"func": x.func, "args": x.args, "keywords": x.keywords},
            {"func": y.func, "args": y.args, "keywords": y.keywords},
        )
    if isinstance(x, list | tuple | np.ndarray):
        if len(x) != len(y):
            return None
        items = zip(np.ravel(x) if isinstance(x, np.ndarray) else x,
                    np.ravel(y) if isinstance(y, np.ndarray) else y, strict=True)  # fmt: skip
        return [(f"[{i}]", cx, cy) for i, (cx, cy) in enumerate(items)]
    sx, sy = _state(x), _state(y)
    if sx is not None and sy is not None:
        return _pairs(sx, sy)
    rx, ry = _reduced(x), _reduced(y)
    if rx is None or ry is None:
        return [] if repr(x) == repr(y) else None
    return _pairs(rx, ry)


def _reduced(obj: Any) -> tuple[Any, ...] | None:
    """What pickling would keep of ``obj`` (constructor arguments and state): how numpy
    random generators and Cython objects (a loss function) expose their state."""
    try:
        reduced = obj.__reduce_ex__(4)
    except Exception:  # noqa: BLE001 - not reducible: compared by repr
        return None
    return tuple(reduced[1:]) if isinstance(reduced, tuple) else None


def _state(obj: Any) -> dict[str, Any] | None:
    getter = getattr(obj, "__getstate__", None)
    state = getter() if callable(getter) else None
    if isinstance(state, dict):
        return state
    attrs = getattr(obj, "__dict__", None)
    return dict(attrs) if isinstance(attrs, dict) else None
