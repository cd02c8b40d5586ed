"""Exact, mergeable sums: a column's mean and variance, the same however it is split.

A float sum depends on the order of its terms, so summing partitions and adding the
results gives slightly different numbers for different partitionings. Here every
float is an integer mantissa times a power of two, and the mantissas are added as
integers (NumPy ``bincount`` over the exponents, on 26- and 27-bit halves so every
partial sum stays exact in float64), then as Python integers: the sum is exact, so
merging :class:`Moments` of any split of the values gives the very same sum, and the
mean and variance derived from it are correctly rounded.

The squares are exact too: ``x·x = p + e`` with ``p = fl(x·x)`` and the rounding error
``e`` found by Dekker's product (Veltkamp splitting), so ``Σx²`` is exact as well, but
for squares that underflow (``|x| < ~1e-146``: off by less than 1e-300 each, and the
same on every split). A value whose square overflows (``|x| > ~1e153``) makes the
variance unknown (None).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

__all__ = ["Moments", "exact_sum"]

FloatArray = np.ndarray[Any, np.dtype[np.float64]]

_CHUNK = 1 << 24
"""Values per bincount: 2^24 values of at most 2^27 keep every float64 partial sum exact."""
_SPLIT = 134217729.0  # 2^27 + 1: Veltkamp's splitter for float64
_SAFE = 1e150  # below this, the splitter and the square cannot overflow


def exact_sum(values: Any) -> Fraction:
    """The exact sum of finite float64 ``values`` as a Fraction.

    Example:
        >>> float(exact_sum([1e16, 1.0, -1e16]))
        1.0
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    total = Fraction(0)
    for start in range(0, x.size, _CHUNK):
        total += _chunk_sum(x[start : start + _CHUNK])
    return total


def _chunk_sum(x: FloatArray) -> Fraction:
    x = x[x != 0]
    if not x.size:
        return Fraction(0)
    mantissa, exponent = np.frexp(x)  # x = mantissa · 2^exponent, 0.5 <= |mantissa| < 1
    ints = (mantissa * 9007199254740992.0).astype(np.int64)  # · 2^53: exact integers
    exps = exponent.astype(np.int64) - 53
    base = int(exps.min())
    slot = exps - base
    high, low = np.divmod(np.abs(ints), 1 << 26)  # |ints| = high · 2^26 + low
    sign = np.sign(ints)
    total = 0
    for shift, part in ((26, high), (0, low)):
        sums = np.bincount(slot, weights=(sign * part).astype(np.float64))
        for i in np.flatnonzero(sums):
            total += int(sums[i]) << (int(i) + shift)
    return Fraction(total) * Fraction(2) ** base


def _squares(x: FloatArray) -> tuple[FloatArray, FloatArray] | None:
    """(p, e) with ``x·x == p + e`` exactly, or None when a square would overflow."""
    if x.size and float(np.max(np.abs(x))) >= _SAFE:
        return None
    p = x * x
    c = _SPLIT * x
    high = c - (c - x)
    low = x - high
    e = ((high * high - p) + 2.0 * high * low) + low * low
    return p, e


@dataclass(frozen=True)
class Moments:
    """Count, exact sum and exact sum of squares of finite values (see the module).

    Attributes:
        n: How many values.
        total: Their exact sum.
        squares: The exact sum of their squares; None when one overflows.
    """

    n: int
    total: Fraction
    squares: Fraction | None

    @classmethod
    def of(cls, values: Any) -> Moments:
        """The moments of finite float64 ``values``."""
        x = np.asarray(values, dtype=np.float64).ravel()
        parts = _squares(x)
        squares = None if parts is None else exact_sum(parts[0]) + exact_sum(parts[1])
        return cls(n=int(x.size), total=exact_sum(x), squares=squares)

    @classmethod
    def merge(cls, parts: Any) -> Moments:
        """The moments of all the values of ``parts`` together (exact)."""
        n, total = 0, Fraction(0)
        squares: Fraction | None = Fraction(0)
        for m in parts:
            n += m.n
            total += m.total
            squares = None if squares is None or m.squares is None else squares + m.squares
        return cls(n=n, total=total, squares=squares)

    @property
    def mean(self) -> float | None:
        """The mean, correctly rounded; None without values or when it overflows."""
        return _finite(self.total / self.n) if self.n else None

    def _deviations(self) -> Fraction | None:
        """``Σ(x - mean)²`` exactly, from the two sums."""
        if self.squares is None or not self.n:
            return None
        return self.squares - self.total * self.total / self.n

    @property
    def var(self) -> float | None:
        """The sample variance (ddof=1); None with fewer than two values or on overflow."""
        dev = self._deviations()
        return None if dev is None or self.n < 2 else _finite(dev / (self.n - 1))

    @property
    def std(self) -> float | None:
        """The population standard deviation (ddof=0); None without values or on overflow."""
        dev = self._deviations()
        if dev is None:
            return None
        variance = _finite(dev / self.n)
        return None if variance is None else math.sqrt(variance)


def _finite(value: Fraction) -> float | None:
    try:
        out = float(value)
    except OverflowError:
        return None
    return out if math.isfinite(out) else None
