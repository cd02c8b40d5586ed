"""Exact mergeable moments: the same sum, mean and variance however the values are split."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retrainer.monitor.drift.moments import Moments, exact_sum

finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)


@given(st.lists(finite, max_size=60), st.lists(st.integers(0, 60), max_size=5))
@settings(max_examples=200, deadline=None)
def test_any_split_merges_to_the_exact_moments_of_the_whole(
    values: list[float], cuts: list[int]
) -> None:
    x = np.array(values, dtype=np.float64)
    bounds = sorted({min(c, len(x)) for c in cuts})
    parts = np.split(x, bounds)
    whole = Moments.of(x)
    merged = Moments.merge(Moments.of(p) for p in parts)
    assert merged == whole
    assert whole.total == sum((Fraction(v) for v in values), Fraction(0))
    if all(v == 0 or abs(v) > 1e-140 for v in values):  # no square underflows
        assert whole.squares == sum((Fraction(v) ** 2 for v in values), Fraction(0))
    if values:
        assert whole.mean == float(whole.total / len(values))  # correctly rounded
        assert whole.mean == pytest.approx(math.fsum(values) / len(values), rel=1e-15, abs=1e-300)


def test_the_sum_is_exact_where_floats_cancel() -> None:
    assert float(exact_sum([1e16, 1.0, -1e16])) == 1.0
    assert float(exact_sum([1e308, 1e308, -1e308])) == 1e308  # no overflow on the way
    assert float(exact_sum([5e-324, 5e-324])) == 1e-323  # subnormals


def test_variance_and_std_match_numpy_and_are_unknown_when_squares_overflow() -> None:
    x = np.random.default_rng(1).normal(7, 2, size=5000)
    m = Moments.of(x)
    assert m.var == pytest.approx(np.var(x, ddof=1), rel=1e-12)
    assert m.std == pytest.approx(np.std(x), rel=1e-12)
    assert Moments.of([3.0]).var is None and Moments.of([3.0]).std == 0.0
    assert Moments.of([]).mean is None
    huge = Moments.of([1e200, -1e200, 5.0])
    assert huge.mean == pytest.approx(5 / 3) and huge.var is None and huge.std is None
