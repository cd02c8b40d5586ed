"""Two-sample drift statistics: pure functions, arrays in, numbers out.

Each test returns a :class:`TestResult`. The numeric tests take the reference as a
:class:`SortedSample` (its finite values sorted once, with compensated prefix sums), so
a batch of ``m`` values is checked in ``O(m log m + m log n)`` without touching the
``n`` reference values again:

* :func:`ks_test` equals :func:`scipy.stats.ks_2samp` (two-sided, ``method='auto'``).
  The statistic comes from :func:`ks_statistic` (``searchsorted`` of the batch's distinct
  values into the reference, exact with ties). For the p-value scipy's rule is kept:
  when both samples have at most 10,000 values scipy computes the exact p-value on the
  arrays (cheap at that size, and its statistic is returned too); above that, scipy's
  asymptotic formula ``kstwo.sf(D, round(n*m/(n+m)))`` is evaluated here.
* :func:`wasserstein` equals :func:`scipy.stats.wasserstein_distance` to a relative
  1e-9 (in practice to the last bits): ``∫|F_ref - F_cur|`` is split at the batch's
  distinct values and at the reference order statistic where ``F_ref`` crosses the
  batch's level; each piece is a few prefix sums, and every product and sum is carried
  out error-free (two-product and a distillation sum), so values like timestamps
  (~1e9 with a spread of seconds) lose no precision to cancellation.
* :func:`chi2_test` equals :func:`scipy.stats.chi2_contingency` (Yates' correction when
  there is one degree of freedom, scipy's default) on the 2 x K table of counts; the
  effect is Cramér's V (from the uncorrected statistic, as
  :func:`scipy.stats.contingency.association`).
* :func:`psi` and :func:`js_distance` compare binned or categorical frequencies.
* :func:`correct_pvalues`: Benjamini-Hochberg, Bonferroni or none.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
from scipy import stats as sst
from scipy.spatial.distance import jensenshannon

__all__ = [
    "KS_EXACT_MAX_N",
    "PSI_EPSILON",
    "Correction",
    "SortedSample",
    "TestResult",
    "align_categories",
    "bin_counts",
    "chi2_test",
    "correct_pvalues",
    "js_distance",
    "ks_statistic",
    "ks_test",
    "psi",
    "quantile_cuts",
    "sorted_quantiles",
    "unseen_share",
    "wasserstein",
]

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
IntArray = np.ndarray[Any, np.dtype[np.int64]]
Correction = Literal["bh", "bonferroni", "none"]

KS_EXACT_MAX_N = 10_000
"""scipy's ``MAX_AUTO_N``: up to this size ``method='auto'`` computes the exact p-value."""

PSI_EPSILON = 1e-4
"""Share given to an empty bin in :func:`psi`, so that ``log(q/p)`` stays finite."""

_SPLIT = 134_217_729.0  # 2**27 + 1, Dekker's splitter for float64
_SAFE_MAGNITUDE = 1e150  # beyond this the error-free products could overflow: use scipy
_EXACT_INT = 2.0**53


@dataclass(frozen=True)
class TestResult:
    """The outcome of one two-sample comparison.

    Attributes:
        method: ``ks``, ``chi2``, ``psi``, ``js`` or ``wasserstein``.
        statistic: The test statistic (D, chi-square, PSI, JS distance, W1).
        p_value: The p-value, or None for a distance without a test.
        effect: The effect size used against a ``min_effect`` threshold.
        effect_name: What ``effect`` is (``ks``, ``cramers_v``, ``psi``, ``js``,
            ``wasserstein_norm``).
    """

    __test__: ClassVar[bool] = False  # not a pytest test class

    method: str
    statistic: float
    p_value: float | None
    effect: float
    effect_name: str


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


def _distinct(current: Any) -> tuple[FloatArray, IntArray]:
    """The sorted distinct values of ``current`` and how many values are <= each."""
    c = np.sort(np.asarray(current, dtype=np.float64).ravel())
    if c.size == 0:
        raise ValueError("expected at least one current value")
    if not np.isfinite(c).all():
        raise ValueError("expected finite current values")
    last = np.flatnonzero(np.diff(c) != 0)
    keep = np.concatenate((last, [c.size - 1]))
    return c[keep], (keep + 1).astype(np.int64)


def ks_statistic(reference: SortedSample, current: Any) -> float:
    """The two-sample Kolmogorov-Smirnov statistic ``sup |F_ref - F_cur|``.

    Between two consecutive distinct current values ``u[j-1] <= x < u[j]`` the current
    ECDF is constant, so ``F_ref - F_cur`` is largest just left of ``u[j]`` (reference
    values ``< u[j]``) and smallest at ``u[j]`` itself (reference values ``<= u[j]``):
    two ``searchsorted`` per distinct value give the supremum exactly, ties included.
    The arithmetic (``count/n - count/m``) is the same as scipy's, so the value is too.
    """
    if reference.n == 0:
        raise ValueError("expected at least one reference value")
    u, le = _distinct(current)
    n, m = reference.n, int(le[-1])
    lt = np.concatenate(([0], le[:-1]))
    below = np.searchsorted(reference.values, u, side="left")
    upto = np.searchsorted(reference.values, u, side="right")
    d_plus = np.max(below / n - lt / m)  # max of F_ref - F_cur
    d_minus = np.max(le / m - upto / n)  # max of F_cur - F_ref
    return float(max(d_plus, d_minus, 0.0))


def ks_test(reference: SortedSample, current: Any) -> TestResult:
    """Two-sided two-sample KS test, equal to ``scipy.stats.ks_2samp(ref, cur)``.

    Effect = D. See the module docstring for how the p-value follows scipy's ``auto``.
    """
    cur = np.asarray(current, dtype=np.float64).ravel()
    n, m = reference.n, cur.size
    if n == 0 or m == 0:
        raise ValueError("expected at least one value on each side")
    if not np.isfinite(cur).all():
        raise ValueError("expected finite current values")
    if max(n, m) <= KS_EXACT_MAX_N:
        res = sst.ks_2samp(reference.values, cur)
        d, p = float(res.statistic), float(res.pvalue)
    else:
        d = ks_statistic(reference, cur)
        big, small = sorted([float(n), float(m)], reverse=True)
        en = big * small / (big + small)
        p = float(np.clip(sst.kstwo.sf(d, np.round(en)), 0.0, 1.0))
    return TestResult("ks", d, p, d, "ks")


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


def wasserstein(reference: SortedSample, current: Any, *, scale: float | None = None) -> TestResult:
    """Wasserstein-1 distance ``∫|F_ref - F_cur| dx``, equal to
    ``scipy.stats.wasserstein_distance(ref, cur)``.

    ``effect`` is W1 divided by ``scale`` (the reference's spread, see
    :attr:`retrainer.monitor.drift.NumericProfile.spread`): ``wasserstein_norm``. With no
    scale (a constant reference) it is 0 when W1 is 0 and ``inf`` otherwise.

    With ``H(x) = k(x)·x - S[k(x)]`` (``k`` = reference values ``<= x``, ``S`` the
    prefix sums) ``∫_a^b F_ref = (H(b) - H(a))/n``; on ``[u_j, u_j+1)`` the current
    ECDF is ``le_j/m`` and ``F_ref`` crosses it at ``s_j``, the reference's
    ``ceil(n·le_j/m)``-th value clipped to the interval. Then
    ``n·m·W = 2m·Σ_j H(u_j) - 2m·Σ_j H(s_j) + n·Σ_j le_j(2s_j - u_j - u_j+1)
    + m(S[n] - n·u_last)``, summed error-free.
    """
    if reference.n == 0:
        raise ValueError("expected at least one reference value")
    u, le = _distinct(current)
    r = reference.values
    n, m = reference.n, int(le[-1])
    magnitude = max(abs(r[0]), abs(r[-1]), abs(u[0]), abs(u[-1]))
    if magnitude > _SAFE_MAGNITUDE or float(n) * m * 2 >= _EXACT_INT:
        cur = np.asarray(current, dtype=np.float64).ravel()
        w = float(sst.wasserstein_distance(r, cur))
    else:
        w = _wasserstein_exact(reference, u, le, n, m)
    return TestResult("wasserstein", w, None, _normalised(w, scale), "wasserstein_norm")


def _normalised(w: float, scale: float | None) -> float:
    if scale is not None and math.isfinite(scale) and scale > 0:
        return w / scale
    return 0.0 if w == 0 else math.inf


def _wasserstein_exact(ref: SortedSample, u: FloatArray, le: IntArray, n: int, m: int) -> float:
    r, hi, lo = ref.values, ref.prefix_hi, ref.prefix_lo
    fm, fn = float(m), float(n)
    parts: list[FloatArray] = []

    def add_h(x: FloatArray, factor: float) -> None:
        """Append the exact parts of ``factor * H(x)`` (factor: a small integer)."""
        k = np.searchsorted(r, x, side="right")
        parts.extend(_two_prod(factor * k.astype(np.float64), x))
        parts.extend(_two_prod(np.full(k.size, -factor), hi[k]))
        parts.append(-factor * lo[k])

    add_h(u, 2.0 * fm)
    if u.size > 1:
        lev = le[:-1]
        crossing = (lev * n + m - 1) // m  # ceil(n * le / m) >= 1
        s = np.clip(r[crossing - 1], u[:-1], u[1:])
        add_h(s, -2.0 * fm)
        w = lev.astype(np.float64) * fn
        parts.extend(_two_prod(2.0 * w, s))
        parts.extend(_two_prod(-w, u[:-1]))
        parts.extend(_two_prod(-w, u[1:]))
    parts.extend(_two_prod(np.array([fm]), hi[-1:]))
    parts.append(np.array([fm * lo[-1]]))
    parts.extend(_two_prod(np.array([-fm * fn]), u[-1:]))
    total = _accurate_sum(np.concatenate(parts))
    return max(total / (fm * fn), 0.0)


def sorted_quantiles(sorted_values: Any, probs: Any) -> FloatArray:
    """``np.quantile(x, probs)`` (method 'linear') of already-sorted ``x`` in
    ``O(len(probs))``: the same virtual index and interpolation as numpy, so equal."""
    x = np.asarray(sorted_values, dtype=np.float64)
    q = np.asarray(probs, dtype=np.float64)
    if x.size == 0:
        return np.full(q.shape, np.nan)
    virtual = (x.size - 1) * q
    below = np.clip(np.floor(virtual), 0, x.size - 1).astype(np.int64)
    above = np.clip(below + 1, 0, x.size - 1)
    a, b = x[below], x[above]
    t = virtual - below
    diff = b - a
    out: FloatArray = np.where(t >= 0.5, b - diff * (1 - t), a + diff * t)
    return out


def quantile_cuts(sorted_values: Any, bins: int) -> FloatArray:
    """Cut points of ``bins`` quantile bins of a sorted sample, duplicates merged.

    The cuts are the interior quantiles ``1/bins .. (bins-1)/bins`` (numpy 'linear');
    bin ``i`` holds ``cuts[i-1] < x <= cuts[i]``, the first bin everything up to
    ``cuts[0]`` and the last everything above ``cuts[-1]``, so values outside the
    reference's range land in the outer bins. Equal quantiles (ties, a constant
    reference) are merged. When the lowest cut is the reference's minimum itself (many
    ties at the minimum, or a constant reference), a cut just below it (the next float
    down) gives values below the minimum a bin of their own: otherwise they would share
    the minimum's bin, and a constant reference could not see a batch below it. There
    are at most ``bins + 1`` bins.
    """
    if bins < 2:
        raise ValueError(f"expected at least 2 bins, got {bins}")
    x = np.asarray(sorted_values, dtype=np.float64)
    if x.size == 0:
        return np.zeros(0, dtype=np.float64)
    cuts = np.unique(sorted_quantiles(x, np.arange(1, bins) / bins))
    if cuts.size and cuts[0] == x[0]:
        cuts = np.concatenate(([np.nextafter(x[0], -np.inf)], cuts))
    return cuts


def bin_counts(cuts: Any, values: Any, *, presorted: bool = False) -> IntArray:
    """How many ``values`` fall in each bin of :func:`quantile_cuts` (len(cuts) + 1)."""
    c = np.asarray(cuts, dtype=np.float64)
    x = np.asarray(values, dtype=np.float64).ravel()
    if presorted:
        upto = np.searchsorted(x, c, side="right")
        return np.diff(np.concatenate(([0], upto, [x.size]))).astype(np.int64)
    idx = np.searchsorted(c, x, side="left")
    return np.bincount(idx, minlength=c.size + 1).astype(np.int64)


def _shares(counts: Any, what: str) -> FloatArray:
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    if c.ndim != 1 or total <= 0 or (c < 0).any():
        raise ValueError(f"expected non-negative {what} counts with a positive total")
    out: FloatArray = c / total
    return out


def psi(reference_counts: Any, current_counts: Any, *, epsilon: float = PSI_EPSILON) -> TestResult:
    """Population stability index ``Σ (q - p) ln(q / p)`` over aligned bins.

    ``p``/``q`` are the reference/current shares; an empty bin's share is replaced by
    ``epsilon`` (default 1e-4) on that side only, without renormalising. Rule of thumb:
    < 0.1 stable, 0.1-0.2 moderate, > 0.2 a significant shift.
    """
    p = _shares(reference_counts, "reference")
    q = _shares(current_counts, "current")
    if p.shape != q.shape:
        raise ValueError(f"expected aligned bins, got {p.size} and {q.size}")
    p = np.where(p == 0, epsilon, p)
    q = np.where(q == 0, epsilon, q)
    value = float(np.sum((q - p) * np.log(q / p)))
    return TestResult("psi", value, None, value, "psi")


def js_distance(reference_counts: Any, current_counts: Any) -> TestResult:
    """Jensen-Shannon distance (base 2, in [0, 1]) between the two frequency vectors."""
    p = _shares(reference_counts, "reference")
    q = _shares(current_counts, "current")
    if p.shape != q.shape:
        raise ValueError(f"expected aligned bins, got {p.size} and {q.size}")
    value = float(jensenshannon(p, q, base=2))
    value = 0.0 if not math.isfinite(value) else min(max(value, 0.0), 1.0)
    return TestResult("js", value, None, value, "js")


def chi2_test(reference_counts: Any, current_counts: Any) -> TestResult:
    """Chi-square test of homogeneity on the 2 x K table of aligned category counts.

    Equal to ``scipy.stats.chi2_contingency(table)`` (Yates' correction when K == 2).
    Categories with no count on either side are dropped. Effect: Cramér's V from the
    uncorrected statistic, ``sqrt(chi2 / N)`` for two rows; 0 with a single category.
    """
    ref = np.asarray(reference_counts, dtype=np.int64).ravel()
    cur = np.asarray(current_counts, dtype=np.int64).ravel()
    if ref.shape != cur.shape:
        raise ValueError(f"expected aligned categories, got {ref.size} and {cur.size}")
    if (ref < 0).any() or (cur < 0).any() or ref.sum() == 0 or cur.sum() == 0:
        raise ValueError("expected non-negative counts with a positive total on each side")
    keep = (ref + cur) > 0
    table = np.vstack((ref[keep], cur[keep]))
    res = sst.chi2_contingency(table)
    stat, p = float(res.statistic), float(res.pvalue)
    if table.shape[1] < 2:
        return TestResult("chi2", stat, p, 0.0, "cramers_v")
    pearson = stat if res.dof != 1 else float(sst.chi2_contingency(table, correction=False)[0])
    v = math.sqrt(max(pearson, 0.0) / float(table.sum()))
    return TestResult("chi2", stat, p, min(v, 1.0), "cramers_v")


def unseen_share(reference_counts: Any, current_counts: Any) -> float:
    """Share of the current mass on categories the reference never saw."""
    ref = np.asarray(reference_counts, dtype=np.int64).ravel()
    cur = np.asarray(current_counts, dtype=np.int64).ravel()
    total = cur.sum()
    return float(cur[ref == 0].sum() / total) if total > 0 else 0.0


def align_categories(
    reference: Sequence[str], reference_counts: Any, current: dict[str, int]
) -> tuple[list[str], IntArray, IntArray]:
    """(labels, reference counts, current counts) on the union of categories.

    Reference categories come first, in their order; categories only in ``current``
    (unseen) follow, sorted, with a reference count of 0.
    """
    ref_counts = np.asarray(reference_counts, dtype=np.int64).ravel()
    if len(reference) != ref_counts.size:
        raise ValueError("expected one count per reference category")
    known = set(reference)
    unseen = sorted(k for k in current if k not in known)
    labels = [*reference, *unseen]
    ref = np.concatenate((ref_counts, np.zeros(len(unseen), dtype=np.int64)))
    cur = np.array([current.get(k, 0) for k in labels], dtype=np.int64)
    return labels, ref, cur


def correct_pvalues(p_values: Any, method: Correction = "bh") -> FloatArray:
    """Adjusted p-values for a family of tests.

    ``bh``: Benjamini-Hochberg (false discovery rate; :func:`scipy.stats.false_discovery_control`),
    ``bonferroni``: ``min(1, k·p)`` (family-wise error), ``none``: unchanged.
    """
    p = np.asarray(p_values, dtype=np.float64).ravel()
    if p.size and (np.isnan(p).any() or (p < 0).any() or (p > 1).any()):
        raise ValueError("expected p-values in [0, 1]")
    if method == "none" or p.size == 0:
        return p.copy()
    if method == "bonferroni":
        out: FloatArray = np.minimum(p * p.size, 1.0)
        return out
    if method == "bh":
        return np.asarray(sst.false_discovery_control(p, method="bh"), dtype=np.float64)
    raise ValueError(f"expected correction 'bh', 'bonferroni' or 'none', got {method!r}")
