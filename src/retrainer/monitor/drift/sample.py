"""Sorted numeric samples and a batch placed in a reference: what KS, Wasserstein-1 and
the PSI bins of a numeric feature share.

* :class:`SortedSample`: a reference's finite values sorted once (kept in the
  reference profile), with compensated prefix sums computed when first needed.
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
from functools import cached_property
from typing import Any

import numpy as np

__all__ = [
    "FENCE_BLOCK",
    "FENCE_MIN",
    "MERGE_RATIO",
    "Placement",
    "SortedSample",
    "place",
    "upper_counts",
]

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
IntArray = np.ndarray[Any, np.dtype[np.int64]]


@dataclass(frozen=True, eq=False)
class SortedSample:
    """Finite values sorted ascending, with compensated prefix sums.

    ``prefix_hi[k] + prefix_lo[k]`` is the sum of the ``k`` smallest values to about
    twice float64 precision (``len == n + 1``, starting at 0). The prefix sums are
    computed on first use (only Wasserstein's prefix-sum path, a small batch against a
    large reference, reads them) and kept. Build it with :meth:`from_values` (sorts) or
    :meth:`from_sorted` (checks the order).
    """

    values: FloatArray

    @classmethod
    def from_values(cls, values: Any) -> SortedSample:
        """Sort ``values`` (which must all be finite)."""
        x = np.sort(np.asarray(values, dtype=np.float64).ravel())
        if x.size and not (np.isfinite(x[0]) and np.isfinite(x[-1])):  # NaN sorts last
            raise ValueError("expected finite values sorted ascending")
        return cls(values=x)

    @classmethod
    def from_sorted(cls, values: Any) -> SortedSample:
        """Wrap values already sorted ascending; raises ValueError if they are not
        finite and sorted (an ``O(n)`` check, done once per reference)."""
        x = np.ascontiguousarray(values, dtype=np.float64).ravel()
        if x.size and (not np.isfinite(x).all() or bool((np.diff(x) < 0).any())):
            raise ValueError("expected finite values sorted ascending")
        return cls(values=x)

    @cached_property
    def fence(self) -> FloatArray:
        """Every ``FENCE_BLOCK``-th value (a copy, made on first use): a small index
        that :func:`upper_counts` searches first, so that a search in a large
        reference then touches one block of it instead of ~log2(n) scattered lines."""
        return self.values[::FENCE_BLOCK].copy()

    @cached_property
    def prefix(self) -> FloatArray:
        """``(n + 1, 2)``: row ``k`` is (:attr:`prefix_hi`, :attr:`prefix_lo`) of ``k``,
        side by side so that one lookup touches one cache line."""
        return np.stack(_compensated_cumsum(self.values), axis=1)

    @property
    def prefix_hi(self) -> FloatArray:
        """Prefix sums, rounded (``n + 1`` values from 0)."""
        return self.prefix[:, 0]

    @property
    def prefix_lo(self) -> FloatArray:
        """The rounding errors of :attr:`prefix_hi`, summed."""
        return self.prefix[:, 1]

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
        merge_order: When the batch was placed by merging (see :func:`place`): the
            stable order of ``concatenate((reference.values, values))``, i.e. where each
            element of the merged run comes from (``< n``: the reference); else None.
    """

    reference: SortedSample
    values: FloatArray
    distinct: FloatArray
    le: IntArray
    upto: IntArray
    below: IntArray
    merge_order: IntArray | None = None

    @property
    def n(self) -> int:
        """Reference values."""
        return self.reference.n

    @property
    def m(self) -> int:
        """Batch values."""
        return int(self.values.size)


FENCE_BLOCK = 64
"""Reference values per block of :attr:`SortedSample.fence`."""

FENCE_MIN = 1 << 20
"""From this many reference values on, :func:`upper_counts` searches through the fence."""


def upper_counts(reference: SortedSample, x: FloatArray) -> IntArray:
    """How many reference values are ``<= x[i]``: ``searchsorted(values, x, 'right')``.

    Below ``FENCE_MIN`` values it is exactly that. Above, a binary search per query is a
    chain of dependent cache misses in an array larger than the caches (the cost per
    query grows with ``n`` well beyond ``log n``); instead the queries are located in
    the cache-resident :attr:`~SortedSample.fence`, then all of them are narrowed inside
    their block of ``FENCE_BLOCK`` values at once, one halving step per numpy gather,
    whose misses are independent of each other. The result is the same.
    """
    r = reference.values
    n = r.size
    if n < FENCE_MIN:
        return np.searchsorted(r, x, side="right").astype(np.int64)
    j = np.searchsorted(reference.fence, x, side="right")
    pos = np.maximum(j - 1, 0) * FENCE_BLOCK  # r[pos] <= x where j >= 1
    last = n - 1
    step = FENCE_BLOCK // 2
    while step:
        cand = pos + step
        ok = r[np.minimum(cand, last)] <= x
        ok &= cand <= last
        pos = np.where(ok, cand, pos)
        step //= 2
    counts = (pos + 1).astype(np.int64)
    counts[j == 0] = 0
    return counts


MERGE_RATIO = 8
"""A batch is placed by merging when the reference has at most this many times its
values; Wasserstein-1 then takes its merge path too."""


def place(reference: SortedSample, current: Any) -> Placement:
    """Sort ``current`` (finite values, at least one) and place it in ``reference``.

    Two ways, same result: a batch much smaller than the reference (``n > MERGE_RATIO·m``)
    is searched (``searchsorted`` of its distinct values, ``O(m log n)``); a larger one is
    merged with the reference by a stable argsort of the two sorted runs (timsort merges
    two runs in ``O(n + m)``), whose order Wasserstein-1 reuses. A :class:`Placement`
    already made for this very ``reference`` is returned as is; one made for another
    reference is placed again from its values.

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
    if not (np.isfinite(c[0]) and np.isfinite(c[-1])):  # NaN sorts last
        raise ValueError("expected finite current values")
    keep = np.flatnonzero(c[1:] != c[:-1])
    keep = np.append(keep, c.size - 1)
    u = c[keep]
    r, n, m = reference.values, reference.n, int(c.size)
    order = None
    if n <= MERGE_RATIO * m:
        order = np.argsort(np.concatenate((r, c)), kind="stable")
        # batch value j sits after the reference values <= it and the j batch values
        # before it (ties: the reference first, by stability)
        positions = np.flatnonzero(order >= n)
        upto = (positions[keep] - keep).astype(np.int64)
    else:
        upto = upper_counts(reference, u)
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
        merge_order=order,
    )
