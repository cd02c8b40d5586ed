"""Sorted numeric samples and a batch placed in a reference: what KS, Wasserstein-1 and
the PSI bins of a numeric feature share.

* :class:`SortedSample`: a reference's finite values sorted once, with compensated
  prefix sums (kept in the reference profile).
* :class:`Placement` (:func:`place`): a batch sorted once, its distinct values and,
  for each, how many reference values are below and up to it. One ``searchsorted``
  of the batch's distinct values into the reference (side ``right``); the ``left``
  positions follow from it, with a second search only for the values the reference
  also holds (ties). :func:`~retrainer.monitor.drift.stats.ks_statistic`,
  :func:`~retrainer.monitor.drift.stats.wasserstein` and
  :func:`~retrainer.monitor.drift.stats.bin_counts` (``presorted=True`` on
  ``Placement.values``) all read it, so a batch is sorted and searched once per feature.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Placement", "SortedSample", "place"]

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
IntArray = np.ndarray[Any, np.dtype[np.int64]]


@dataclass(frozen=True, eq=False)
class SortedSample:
    """Finite values sorted ascending, with compensated prefix sums.

    ``prefix_hi[k] + prefix_lo[k]`` is the sum of the ``k`` smallest values to about
    twice float64 precision (``len == n + 1``, starting at 0). Build it with
    :meth:`from_values` (sorts) or :meth:`from_sorted` (checks the order).
    """

    values: FloatArray
    prefix_hi: FloatArray
    prefix_lo: FloatArray

    @classmethod
    def from_values(cls, values: Any) -> SortedSample:
        """Sort ``values`` (which must all be finite) and compute the prefix sums."""
        x = np.sort(np.asarray(values, dtype=np.float64).ravel())
        return cls.from_sorted(x)

    @classmethod
    def from_sorted(cls, values: Any) -> SortedSample:
        """Wrap values already sorted ascending; raises ValueError if they are not
        finite and sorted (an ``O(n)`` check, done once per reference)."""
        x = np.ascontiguousarray(values, dtype=np.float64).ravel()
        if x.size and (not np.isfinite(x).all() or bool((np.diff(x) < 0).any())):
            raise ValueError("expected finite values sorted ascending")
        hi, lo = _compensated_cumsum(x)
        return cls(values=x, prefix_hi=hi, prefix_lo=lo)

    @classmethod
    def from_parts(cls, values: Any, prefix_hi: Any, prefix_lo: Any) -> SortedSample:
        """Rebuild from stored arrays (checked for order and matching lengths)."""
        x = np.ascontiguousarray(values, dtype=np.float64).ravel()
        hi = np.ascontiguousarray(prefix_hi, dtype=np.float64).ravel()
        lo = np.ascontiguousarray(prefix_lo, dtype=np.float64).ravel()
        if hi.size != x.size + 1 or lo.size != x.size + 1:
            raise ValueError("expected prefix sums one longer than the values")
        if x.size and (not np.isfinite(x).all() or bool((np.diff(x) < 0).any())):
            raise ValueError("expected finite values sorted ascending")
        return cls(values=x, prefix_hi=hi, prefix_lo=lo)

    @property
    def n(self) -> int:
        """How many values."""
        return int(self.values.size)


def _compensated_cumsum(x: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Prefix sums as (hi, lo) with the rounding error of every step kept in ``lo``."""
    hi = np.concatenate(([0.0], np.cumsum(x)))
    s = hi[:-1] + x  # what each sequential step computed
    bb = s - hi[:-1]
    err = (hi[:-1] - (s - bb)) + (x - bb) + (s - hi[1:])
    lo = np.concatenate(([0.0], np.cumsum(err)))
    return hi, lo


@dataclass(frozen=True, eq=False)
class Placement:
    """A batch sorted once and placed in a reference sample.

    Attributes:
        reference: The sample it was placed in.
        values: The batch's values, sorted (``m`` of them).
        distinct: Its distinct values ``u`` ascending.
        le: How many batch values are ``<= u[j]`` (the last is ``m``).
        upto: How many reference values are ``<= u[j]``.
        below: How many reference values are ``< u[j]``.
    """

    reference: SortedSample
    values: FloatArray
    distinct: FloatArray
    le: IntArray
    upto: IntArray
    below: IntArray

    @property
    def n(self) -> int:
        """Reference values."""
        return self.reference.n

    @property
    def m(self) -> int:
        """Batch values."""
        return int(self.values.size)


def place(reference: SortedSample, current: Any) -> Placement:
    """Sort ``current`` (finite values, at least one) and place it in ``reference``.

    A :class:`Placement` already made for this very ``reference`` is returned as is;
    one made for another reference is placed again from its values.

    Raises:
        ValueError: ``current`` is empty or holds NaN or ``±inf``.
    """
    if isinstance(current, Placement):
        if current.reference is reference:
            return current
        current = current.values
    c = np.sort(np.asarray(current, dtype=np.float64).ravel())
    if c.size == 0:
        raise ValueError("expected at least one current value")
    if not np.isfinite(c).all():
        raise ValueError("expected finite current values")
    keep = np.flatnonzero(c[1:] != c[:-1])
    keep = np.append(keep, c.size - 1)
    u = c[keep]
    r = reference.values
    upto = np.searchsorted(r, u, side="right").astype(np.int64)
    below = upto.copy()
    # Where the reference holds u itself (r[upto - 1] == u), the left side needs its own
    # search; elsewhere no reference value equals u and below == upto.
    has = np.flatnonzero(upto > 0)
    tied = has[r[upto[has] - 1] == u[has]]
    if tied.size:
        below[tied] = np.searchsorted(r, u[tied], side="left")
    return Placement(
        reference=reference,
        values=c,
        distinct=u,
        le=(keep + 1).astype(np.int64),
        upto=upto,
        below=below,
    )
