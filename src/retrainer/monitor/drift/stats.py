"""Two-sample drift statistics: pure functions, arrays in, numbers out.

Each test returns a :class:`TestResult`. The numeric tests take the reference as a
:class:`SortedSample` (its finite values sorted once, with compensated prefix sums,
:mod:`retrainer.monitor.drift.sample`) and the batch as values or as their
:class:`Placement` in it (sorted and searched once, shared by KS, Wasserstein and the
PSI bins), so a batch of ``m`` values is checked in ``O(m log m + m log n)`` without
touching the ``n`` reference values again:

* :func:`ks_test` equals :func:`scipy.stats.ks_2samp` (two-sided, ``method='auto'``).
  The statistic comes from :func:`ks_statistic` (the batch's distinct values placed in
  the reference, exact with ties). For the p-value scipy's rule is kept: when both
  samples have at most 10,000 values scipy computes the exact p-value on the arrays
  (cheap at that size, and its statistic is returned too); above that, scipy's
  asymptotic formula ``kstwo.sf(D, round(n*m/(n+m)))`` is evaluated here
  (:func:`ks_sf`; where that p-value is provably below 1e-9 a cheaper value within 1e-9
  of it is used).
* :func:`welch_t_test` equals ``scipy.stats.ttest_ind(ref, cur, equal_var=False)``
  from the reference's count, mean and sample variance (:class:`LocationStats`) in
  ``O(m)``. KS has little power against a small shift of location in large samples;
  the t-test has much more, and :func:`combined_p_value` joins the two (Bonferroni).
* :func:`wasserstein` equals :func:`scipy.stats.wasserstein_distance` to a relative
  1e-9 (:mod:`retrainer.monitor.drift.wasserstein`: a linear merge computed as scipy
  does when the batch is not much smaller than the reference, else error-free prefix
  sums, so values like timestamps lose no precision to cancellation).
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
from scipy import special
from scipy import stats as sst
from scipy.spatial.distance import jensenshannon

from retrainer.monitor.drift.sample import Placement, SortedSample, place
from retrainer.monitor.drift.wasserstein import wasserstein_w1

__all__ = [
    "KS_EXACT_MAX_N",
    "PSI_EPSILON",
    "Correction",
    "LocationStats",
    "Placement",
    "SortedSample",
    "TestResult",
    "align_categories",
    "bin_counts",
    "chi2_test",
    "combined_p_value",
    "correct_pvalues",
    "js_distance",
    "ks_sf",
    "ks_statistic",
    "ks_test",
    "place",
    "psi",
    "quantile_cuts",
    "sorted_quantiles",
    "unseen_share",
    "wasserstein",
    "welch_t_test",
]

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
IntArray = np.ndarray[Any, np.dtype[np.int64]]
Correction = Literal["bh", "bonferroni", "none"]

KS_EXACT_MAX_N = 10_000
"""scipy's ``MAX_AUTO_N``: up to this size ``method='auto'`` computes the exact p-value."""

PSI_EPSILON = 1e-4
"""Share given to an empty bin in :func:`psi`, so that ``log(q/p)`` stays finite."""


@dataclass(frozen=True)
class TestResult:
    """The outcome of one two-sample comparison.

    Attributes:
        method: ``ks``, ``t``, ``ks+t``, ``chi2``, ``psi``, ``js`` or ``wasserstein``.
        statistic: The test statistic (D, t, chi-square, PSI, JS distance, W1).
        p_value: The p-value, or None for a distance without a test.
        effect: The effect size used against a ``min_effect`` threshold.
        effect_name: What ``effect`` is (``ks``, ``mean_shift``, ``cramers_v``,
            ``psi``, ``js``, ``wasserstein_norm``).
    """

    __test__: ClassVar[bool] = False  # not a pytest test class

    method: str
    statistic: float
    p_value: float | None
    effect: float
    effect_name: str


@dataclass(frozen=True)
class LocationStats:
    """What the t-test needs from a reference: the count, mean and sample variance
    (``ddof=1``) of its finite values. Build it with :meth:`from_values`."""

    count: int
    mean: float
    var: float

    @classmethod
    def from_values(cls, values: Any) -> LocationStats:
        """Of finite ``values`` (the variance is NaN with fewer than two)."""
        x = np.asarray(values, dtype=np.float64).ravel()
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            mean = float(np.mean(x)) if x.size else math.nan
            var = float(np.var(x, ddof=1)) if x.size > 1 else math.nan
        return cls(int(x.size), mean, var)


def ks_statistic(reference: SortedSample, current: Any) -> float:
    """The two-sample Kolmogorov-Smirnov statistic ``sup |F_ref - F_cur|``.

    ``current``: the batch's finite values, or their :class:`Placement` in
    ``reference``. Between two consecutive distinct current values ``u[j-1] <= x <
    u[j]`` the current ECDF is constant, so ``F_ref - F_cur`` is largest just left of
    ``u[j]`` (reference values ``< u[j]``) and smallest at ``u[j]`` itself (reference
    values ``<= u[j]``): the placement's ``below`` and ``upto`` give the supremum
    exactly, ties included. The arithmetic (``count/n - count/m``) is the same as
    scipy's, so the value is too.
    """
    if reference.n == 0:
        raise ValueError("expected at least one reference value")
    pl = place(reference, current)
    n, m = pl.n, pl.m
    lt = np.concatenate(([0], pl.le[:-1]))
    d_plus = np.max(pl.below / n - lt / m)  # max of F_ref - F_cur
    d_minus = np.max(pl.le / m - pl.upto / n)  # max of F_cur - F_ref
    return float(max(d_plus, d_minus, 0.0))


def ks_test(reference: SortedSample, current: Any) -> TestResult:
    """Two-sided two-sample KS test, equal to ``scipy.stats.ks_2samp(ref, cur)``.

    ``current``: finite values or their :class:`Placement`. Effect = D. See the module
    docstring for how the p-value follows scipy's ``auto``.
    """
    n = reference.n
    if n == 0:
        raise ValueError("expected at least one value on each side")
    pl = place(reference, current)
    m = pl.m
    if max(n, m) <= KS_EXACT_MAX_N:
        res = sst.ks_2samp(reference.values, pl.values)
        d, p = float(res.statistic), float(res.pvalue)
    else:
        d = ks_statistic(reference, pl)
        big, small = sorted([float(n), float(m)], reverse=True)
        en = big * small / (big + small)
        p = ks_sf(d, int(np.round(en)))
    return TestResult("ks", d, p, d, "ks")


KS_BOUND_P = 1e-9
"""Below this bound on the p-value :func:`ks_sf` skips scipy's costly series."""


def ks_sf(d: float, n: int) -> float:
    """``P(D_n >= d)``: ``scipy.stats.kstwo.sf(d, n)``, within 1e-9.

    scipy's series costs about 0.4 s per call for ``n`` in the hundreds of thousands
    and a p-value below 0.005 (a million rows per side). Massart's inequality bounds the
    p-value by ``2·exp(-2·n·d²)``; where that bound is at most 1e-9, scipy's value lies
    in ``[0, 1e-9]`` and so does the asymptotic Kolmogorov value
    ``kstwobign.sf(d·sqrt(n))`` (itself below the same bound), which is returned: the two
    differ by less than 1e-9 (typically by 0.3% of a number below 1e-9) and no decision
    at any usable ``alpha`` can tell them apart. Elsewhere scipy's value is returned.
    """
    if n >= 1 and d > 0 and 2.0 * math.exp(-2.0 * n * d * d) <= KS_BOUND_P:
        return float(np.clip(sst.kstwobign.sf(d * math.sqrt(n)), 0.0, KS_BOUND_P))
    return float(np.clip(sst.kstwo.sf(d, n), 0.0, 1.0))


def welch_t_test(
    reference: LocationStats, current: Any, *, mean: float | None = None
) -> TestResult:
    """Welch's two-sample t-test (unequal variances), equal to
    ``scipy.stats.ttest_ind(ref, cur, equal_var=False)`` within 1e-9.

    The reference enters through :class:`LocationStats` (count, mean, sample variance),
    so a batch of ``m`` values costs ``O(m)``; ``mean`` may pass the batch's mean when
    already known. ``statistic`` is t (positive when the reference mean is larger, as
    scipy's); ``effect`` is ``|mean_ref - mean_cur| / sqrt((var_ref + var_cur) / 2)``
    (Cohen's d with the two variances averaged), ``effect_name`` ``mean_shift``.

    Where scipy returns NaN this defines the outcome: both samples constant (zero
    variance) and equal → t = 0, p = 1; both constant and different → t = ±inf, p = 0.
    With fewer than two values on a side, or a mean or variance that is not finite
    (values beyond ~1e154), the test cannot be computed: ValueError.
    """
    cur = np.asarray(current, dtype=np.float64).ravel()
    n1, n2 = reference.count, cur.size
    if n1 < 2 or n2 < 2:
        raise ValueError(f"expected at least two values on each side, got {n1} and {n2}")
    with np.errstate(over="ignore", invalid="ignore"):
        m1, v1 = reference.mean, reference.var
        m2 = float(np.mean(cur)) if mean is None else mean
        v2 = float(np.var(cur, ddof=1))
    if not all(math.isfinite(x) for x in (m1, v1, m2, v2)):
        raise ValueError("expected a finite mean and variance on each side")
    d = m1 - m2
    vn1, vn2 = v1 / n1, v2 / n2
    if vn1 + vn2 == 0:
        t = 0.0 if d == 0 else math.copysign(math.inf, d)
        p = 1.0 if d == 0 else 0.0
        effect = 0.0 if d == 0 else math.inf
        return TestResult("t", t, p, effect, "mean_shift")
    df = (vn1 + vn2) ** 2 / (vn1**2 / (n1 - 1) + vn2**2 / (n2 - 1))
    t = d / math.sqrt(vn1 + vn2)
    p = float(min(1.0, 2.0 * float(special.stdtr(df, -abs(t)))))
    effect = abs(d) / math.sqrt((v1 + v2) / 2.0)
    return TestResult("t", t, p, effect, "mean_shift")


def combined_p_value(p_values: Sequence[float]) -> float:
    """Bonferroni combination of ``k`` tests of the same null: ``min(1, k·min(p))``.

    Valid under the null whatever the dependence between the tests (the chance that any
    of them falls below ``alpha/k`` is at most ``alpha``); used for KS and t on one
    feature (``numeric_test='ks+t'``): ``min(1, 2·min(p_ks, p_t))``.
    """
    if not p_values:
        raise ValueError("expected at least one p-value")
    return float(min(1.0, len(p_values) * min(p_values)))


def wasserstein(reference: SortedSample, current: Any, *, scale: float | None = None) -> TestResult:
    """Wasserstein-1 distance ``∫|F_ref - F_cur| dx``, equal to
    ``scipy.stats.wasserstein_distance(ref, cur)`` to a relative 1e-9
    (:mod:`retrainer.monitor.drift.wasserstein` says how).

    ``current``: finite values or their :class:`Placement`. ``effect`` is W1 divided by
    ``scale`` (the reference's spread, see
    :attr:`retrainer.monitor.drift.NumericProfile.spread`): ``wasserstein_norm``. With no
    scale (a constant reference) it is 0 when W1 is 0 and ``inf`` otherwise.
    """
    if reference.n == 0:
        raise ValueError("expected at least one reference value")
    w = wasserstein_w1(place(reference, current))
    return TestResult("wasserstein", w, None, _normalised(w, scale), "wasserstein_norm")


def _normalised(w: float, scale: float | None) -> float:
    if scale is not None and math.isfinite(scale) and scale > 0:
        return w / scale
    return 0.0 if w == 0 else math.inf


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
