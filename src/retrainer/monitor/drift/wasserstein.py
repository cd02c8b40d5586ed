"""Wasserstein-1 distance of a batch from a sorted reference, by one of two exact paths.

``W1 = ∫|F_ref - F_cur| dx``, equal to :func:`scipy.stats.wasserstein_distance` to a
relative 1e-9. Which path runs depends on the sizes (:func:`wasserstein_w1`):

* **merge** (the batch is not much smaller than the reference, ``n <= MERGE_RATIO·m``):
  the two sorted samples are merged in ``O(n + m)`` using the batch's positions in the
  reference (no new search), and the integral is computed exactly as scipy does:
  ``vecdot(|F - G|, diff(merged))`` in float64 over the same arrays, so the result
  equals scipy's bit for bit (terms at tied values have a zero width in both).
* **prefix sums** (a small batch against a large reference): ``O(m)`` work on top of
  the placement, never touching the ``n`` reference values except at ``O(m)`` positions.
  With ``H(x) = k(x)·x - S[k(x)]`` (``k`` = reference values ``<= x``, ``S`` the prefix
  sums) ``∫_a^b F_ref = (H(b) - H(a))/n``; on ``[u_j, u_j+1)`` the batch ECDF is
  ``le_j/m`` and ``F_ref`` crosses it at ``s_j``, the reference's ``ceil(n·le_j/m)``-th
  value clipped to the interval. Then ``n·m·W = 2m·Σ_j H(u_j) - 2m·Σ_j H(s_j) +
  n·Σ_j le_j(2s_j - u_j - u_j+1) + m(S[n] - n·u_last)``, every product and sum carried
  out error-free (two-product and a distillation sum), so values like timestamps (~1e9
  with a spread of seconds) lose no precision to cancellation. ``k(u_j)`` is the
  placement's ``upto``; ``k(s_j)`` follows from the clipping and the crossing index,
  with a search only where the reference has ties at ``s_j``.

Beyond ``1e150`` (error-free products could overflow) or when ``2·n·m`` reaches
``2**53``, the prefix-sum path hands over to scipy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats as sst

from retrainer.monitor.drift.sample import MERGE_RATIO, Placement

__all__ = ["MERGE_RATIO", "wasserstein_w1"]

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
IntArray = np.ndarray[Any, np.dtype[np.int64]]

_SPLIT = 134_217_729.0  # 2**27 + 1, Dekker's splitter for float64
_SAFE_MAGNITUDE = 1e150  # beyond this the error-free products could overflow: use scipy
_EXACT_INT = 2.0**53


def wasserstein_w1(pl: Placement, *, path: str = "auto") -> float:
    """W1 of the placed batch from its reference (both non-empty).

    ``path``: ``auto`` (the rule in the module docstring), ``merge`` or ``prefix``
    (forced, for tests; ``prefix`` still hands over to scipy out of its safe range).
    """
    if pl.n == 0:
        raise ValueError("expected at least one reference value")
    if path not in ("auto", "merge", "prefix"):
        raise ValueError(f"expected path 'auto', 'merge' or 'prefix', got {path!r}")
    if path == "merge" or (path == "auto" and pl.n <= MERGE_RATIO * pl.m):
        return _merged(pl)
    r, u = pl.reference.values, pl.distinct
    magnitude = max(abs(r[0]), abs(r[-1]), abs(u[0]), abs(u[-1]))
    if magnitude > _SAFE_MAGNITUDE or float(pl.n) * pl.m * 2 >= _EXACT_INT:
        return float(sst.wasserstein_distance(r, pl.values))
    return _prefix(pl)


def _merged(pl: Placement) -> float:
    """scipy's ``_cdf_distance(1, ...)`` on the merge of the two sorted samples."""
    r, c, n, m = pl.reference.values, pl.values, pl.n, pl.m
    if pl.merge_order is not None:
        merged = np.concatenate((r, c))[pl.merge_order]
        is_cur = pl.merge_order >= n
    else:
        # Batch value j goes after the reference values <= it and the j batch values
        # before it (ties: the reference first, as a stable merge would place them).
        pos = np.repeat(pl.upto, np.diff(pl.le, prepend=0))
        pos += np.arange(m, dtype=np.int64)
        is_cur = np.zeros(n + m, dtype=bool)
        is_cur[pos] = True
        merged = np.empty(n + m, dtype=np.float64)
        merged[pos] = c
        merged[~is_cur] = r
    deltas = np.diff(merged)
    del merged
    # At the last element of each run of equal values, the counts so far are the counts
    # <= that value (scipy's searchsorted 'right'); elsewhere the width is 0. Counts are
    # whole numbers, exact in float64, so the CDFs are scipy's to the bit.
    cur_le = np.cumsum(is_cur[:-1], dtype=np.float64)
    ref_le = np.arange(1.0, n + m)
    ref_le -= cur_le
    ref_le /= n
    cur_le /= m
    ref_le -= cur_le
    np.abs(ref_le, out=ref_le)
    return float(np.vecdot(ref_le, deltas))


def _two_prod(a: FloatArray, b: FloatArray) -> tuple[FloatArray, FloatArray]:
    """``a*b == p + e`` exactly (Dekker), barring overflow and underflow."""
    p = a * b
    ca, cb = _SPLIT * a, _SPLIT * b
    ah = ca - (ca - a)
    bh = cb - (cb - b)
    al, bl = a - ah, b - bh
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, e


def _accurate_sum(terms: FloatArray) -> float:
    """Sum with error ~ eps**2 * sum(|terms|): pairwise two-sums, errors summed last."""
    x = np.asarray(terms, dtype=np.float64)
    errors: list[FloatArray] = []
    while x.size > 1:
        if x.size % 2:
            x = np.append(x, 0.0)
        a, b = x[0::2], x[1::2]
        s = a + b
        bb = s - a
        errors.append((a - (s - bb)) + (b - bb))
        x = s
    total = float(x[0]) if x.size else 0.0
    return total + (float(np.sum(np.concatenate(errors))) if errors else 0.0)


def _crossing_counts(pl: Placement, crossing: IntArray, s: FloatArray) -> IntArray:
    """``k(s_j)`` = reference values ``<= s_j`` without a search where avoidable.

    ``s_j`` clipped to ``u_j`` or ``u_j+1`` has that value's ``upto``; otherwise
    ``s_j = r[crossing_j - 1]`` and ``k = crossing_j`` unless ``r[crossing_j]`` ties it.
    """
    r, u, upto = pl.reference.values, pl.distinct, pl.upto
    k = crossing.copy()
    low, high = s <= u[:-1], s >= u[1:]
    k[low] = upto[:-1][low]
    k[high] = upto[1:][high]
    inner = np.flatnonzero(~(low | high) & (crossing < pl.n))
    tied = inner[r[crossing[inner]] == s[inner]]
    if tied.size:
        k[tied] = np.searchsorted(r, s[tied], side="right")
    return k


def _prefix(pl: Placement) -> float:
    ref = pl.reference
    r, prefix = ref.values, ref.prefix
    u, le, n, m = pl.distinct, pl.le, pl.n, pl.m
    fm, fn = float(m), float(n)
    parts: list[FloatArray] = []

    def add_h(x: FloatArray, k: IntArray, factor: float) -> None:
        """Append the exact parts of ``factor * H(x)`` (factor: a small integer)."""
        parts.extend(_two_prod(factor * k.astype(np.float64), x))
        pairs = np.take(prefix, k, axis=0)  # (hi, lo) rows: one cache line per lookup
        parts.extend(_two_prod(np.full(k.size, -factor), pairs[:, 0]))
        parts.append(-factor * pairs[:, 1])

    add_h(u, pl.upto, 2.0 * fm)
    if u.size > 1:
        lev = le[:-1]
        crossing = (lev * n + m - 1) // m  # ceil(n * le / m) >= 1
        s = np.clip(r[crossing - 1], u[:-1], u[1:])
        add_h(s, _crossing_counts(pl, crossing, s), -2.0 * fm)
        w = lev.astype(np.float64) * fn
        parts.extend(_two_prod(2.0 * w, s))
        parts.extend(_two_prod(-w, u[:-1]))
        parts.extend(_two_prod(-w, u[1:]))
    parts.extend(_two_prod(np.array([fm]), prefix[-1:, 0]))
    parts.append(np.array([fm * prefix[-1, 1]]))
    parts.extend(_two_prod(np.array([-fm * fn]), u[-1:]))
    total = _accurate_sum(np.concatenate(parts))
    return max(total / (fm * fn), 0.0)
