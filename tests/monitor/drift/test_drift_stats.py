"""The drift statistics against scipy and against slow, obvious reference code.

Property tests (hypothesis) draw ties (integers from a small range), tiny samples,
continuous and heavy-tailed data (Cauchy, Pareto, timestamps with a small spread);
deterministic cases cover sizes above 10,000, where KS switches to the asymptotic
p-value.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats as sst
from scipy.spatial.distance import jensenshannon

from retrainer.monitor.drift.stats import (
    KS_EXACT_MAX_N,
    PSI_EPSILON,
    SortedSample,
    align_categories,
    bin_counts,
    chi2_test,
    correct_pvalues,
    js_distance,
    ks_sf,
    ks_statistic,
    ks_test,
    psi,
    quantile_cuts,
    sorted_quantiles,
    unseen_share,
    wasserstein,
)

Array = np.ndarray[Any, Any]
PROPS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,  # the same examples on every run
    database=None,  # no .hypothesis folder in the tree
    suppress_health_check=[HealthCheck.too_slow],
)
# scipy's own notes on tiny samples (it falls back to the asymptotic p-value, as do we)
pytestmark = [
    pytest.mark.filterwarnings("ignore:ks_2samp. Exact calculation unsuccessful:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:divide by zero encountered:RuntimeWarning"),
]


@st.composite
def samples(draw: st.DrawFn, max_size: int = 80) -> Array:
    """One sample: ties, continuous, heavy-tailed, or large values with a small spread."""
    kind = draw(st.sampled_from(["ties", "floats", "cauchy", "pareto", "timestamps", "tiny"]))
    size = draw(st.integers(1, 5 if kind == "tiny" else max_size))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "ties":
        return rng.integers(-3, 4, size).astype(float)
    if kind == "floats":
        values = draw(
            st.lists(
                st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False),
                min_size=size,
                max_size=size,
            )
        )
        return np.array(values, dtype=float)
    if kind == "cauchy":
        return rng.standard_cauchy(size) * draw(st.sampled_from([1.0, 1e3]))
    if kind == "pareto":
        return rng.pareto(draw(st.sampled_from([0.5, 1.0, 3.0])), size)
    if kind == "timestamps":
        return 1.7e9 + rng.integers(0, 50, size) + rng.random(size).round(2)
    return rng.normal(size=size)


def close(ours: float, theirs: float, *, scale: float = 1.0) -> bool:
    """Equal to a relative 1e-9 (and to 1e-12 of the data's scale near zero)."""
    return math.isclose(ours, theirs, rel_tol=1e-9, abs_tol=1e-12 * max(scale, 1.0))


# --- Kolmogorov-Smirnov ---------------------------------------------------------------


@PROPS
@given(ref=samples(), cur=samples())
def test_ks_equals_scipy(ref: Array, cur: Array) -> None:
    ours = ks_test(SortedSample.from_values(ref), cur)
    theirs = sst.ks_2samp(ref, cur)
    assert ours.method == "ks" and ours.effect_name == "ks"
    assert ours.statistic == pytest.approx(float(theirs.statistic), abs=1e-9)
    assert ours.p_value == pytest.approx(float(theirs.pvalue), abs=1e-9)
    assert ours.effect == ours.statistic


@PROPS
@given(ref=samples(), cur=samples())
def test_ks_statistic_from_sorted_reference_is_scipys_sup(ref: Array, cur: Array) -> None:
    """The O(m log n) statistic is scipy's unrounded D (its 'asymp' mode), bit for bit."""
    d = ks_statistic(SortedSample.from_values(ref), cur)
    assert d == float(sst.ks_2samp(ref, cur, method="asymp").statistic)


def _large(case: str) -> tuple[Array, Array]:
    rng = np.random.default_rng(7)
    if case == "ties-12000x300":
        return rng.integers(0, 20, 12_000).astype(float), rng.integers(0, 21, 300).astype(float)
    if case == "normal-300x15000":
        return rng.normal(size=300), rng.normal(0.1, 1, 15_000)
    if case == "cauchy-20000x20000":
        return rng.standard_cauchy(20_000), rng.standard_cauchy(20_000) + 0.02
    if case == "same-10001x10001":
        x = rng.normal(size=10_001)
        return x, x.copy()
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case", ["ties-12000x300", "normal-300x15000", "cauchy-20000x20000", "same-10001x10001"]
)
def test_ks_asymptotic_regime_equals_scipy(case: str) -> None:
    ref, cur = _large(case)
    assert max(ref.size, cur.size) > KS_EXACT_MAX_N
    ours = ks_test(SortedSample.from_values(ref), cur)
    theirs = sst.ks_2samp(ref, cur)
    assert ours.statistic == pytest.approx(float(theirs.statistic), abs=1e-12)
    assert ours.p_value == pytest.approx(float(theirs.pvalue), abs=1e-9)
    w = wasserstein(SortedSample.from_values(ref), cur).statistic
    assert close(w, float(sst.wasserstein_distance(ref, cur)))


@pytest.mark.parametrize("n", [10_001, 150_000, 500_000])
@pytest.mark.parametrize("t", [0.5, 2.0, 8.0, 10.0, 10.8, 11.5, 14.0, 40.0, 400.0])
def test_ks_sf_equals_scipy_within_1e9_also_where_it_takes_the_bound(n: int, t: float) -> None:
    d = math.sqrt(t / n)  # t = n·d²: the bound 2·exp(-2t) is <= 1e-9 from t ~ 10.7
    ours, theirs = ks_sf(d, n), float(sst.kstwo.sf(d, n))
    assert abs(ours - theirs) <= 1e-9
    assert 0.0 <= ours <= 1.0
    if t >= 11:  # the shortcut: never above the bound, and not rounded to 0 needlessly
        bound = 2 * math.exp(-2 * t)
        assert ours <= bound * (1 + 1e-9)
        assert ours > 0 or bound < 1e-300


def test_ks_p_value_of_a_clear_shift_in_large_samples_equals_scipy() -> None:
    rng = np.random.default_rng(11)
    ref, cur = rng.normal(size=200_000), rng.normal(0.02, 1, 200_000)
    ours = ks_test(SortedSample.from_values(ref), cur)
    theirs = sst.ks_2samp(ref, cur)
    assert ours.statistic == pytest.approx(float(theirs.statistic), abs=1e-12)
    assert float(theirs.pvalue) < 1e-9  # where ks_sf skips scipy's series
    assert abs(ours.p_value - float(theirs.pvalue)) <= 1e-9


def test_ks_exact_regime_at_the_boundary() -> None:
    rng = np.random.default_rng(3)
    ref, cur = rng.normal(size=KS_EXACT_MAX_N), rng.normal(0.03, 1, 7_001)
    ours = ks_test(SortedSample.from_values(ref), cur)
    theirs = sst.ks_2samp(ref, cur)
    assert (ours.statistic, ours.p_value) == (float(theirs.statistic), float(theirs.pvalue))


def test_ks_refuses_empty_or_non_finite() -> None:
    ref = SortedSample.from_values([1.0, 2.0])
    with pytest.raises(ValueError, match="at least one"):
        ks_test(ref, [])
    with pytest.raises(ValueError, match="finite"):
        ks_statistic(ref, [1.0, np.inf])
    with pytest.raises(ValueError, match="finite"):
        ks_test(ref, [1.0, np.nan])
    with pytest.raises(ValueError, match="finite"):
        wasserstein(ref, [np.nan])
    with pytest.raises(ValueError, match="finite values sorted"):
        SortedSample.from_sorted([2.0, 1.0])
    with pytest.raises(ValueError, match="finite values sorted"):
        SortedSample.from_values([1.0, np.nan])


# --- Wasserstein ------------------------------------------------------------------------


@PROPS
@given(ref=samples(), cur=samples())
def test_wasserstein_equals_scipy(ref: Array, cur: Array) -> None:
    scale = float(max(np.abs(ref).max(), np.abs(cur).max()))
    res = wasserstein(SortedSample.from_values(ref), cur)
    assert res.method == "wasserstein" and res.p_value is None
    assert close(res.statistic, float(sst.wasserstein_distance(ref, cur)), scale=scale)


@PROPS
@given(ref=samples(), cur=samples(), spread=st.floats(0.01, 100))
def test_wasserstein_normalised_by_the_given_spread(ref: Array, cur: Array, spread: float) -> None:
    res = wasserstein(SortedSample.from_values(ref), cur, scale=spread)
    assert res.effect_name == "wasserstein_norm"
    assert res.effect == pytest.approx(res.statistic / spread, rel=1e-12)


def test_wasserstein_without_spread_is_zero_or_infinite() -> None:
    ref = SortedSample.from_values([5.0] * 10)
    assert wasserstein(ref, [5.0, 5.0], scale=None).effect == 0.0
    moved = wasserstein(ref, [6.0, 6.0], scale=0.0)
    assert moved.statistic == 1.0 and moved.effect == math.inf


def test_wasserstein_keeps_precision_where_prefix_sums_would_cancel() -> None:
    """Timestamps (~1.7e9) a few seconds apart: naive prefix sums lose ~1e-3 here."""
    rng = np.random.default_rng(11)
    ref = 1.7e9 + rng.normal(0, 30, 50_000)
    cur = 1.7e9 + rng.normal(0.5, 30, 40_000)
    ours = wasserstein(SortedSample.from_values(ref), cur).statistic
    assert close(ours, float(sst.wasserstein_distance(ref, cur)))


def test_wasserstein_with_huge_values_falls_back_to_scipy() -> None:
    ref, cur = np.array([-1e200, 0.0, 1e200]), np.array([1e199, 3e200])
    ours = wasserstein(SortedSample.from_values(ref), cur).statistic
    assert ours == float(sst.wasserstein_distance(ref, cur))


def test_compensated_prefix_sums_are_exact_to_double_double() -> None:
    rng = np.random.default_rng(5)
    x = np.sort(np.concatenate([rng.normal(0, 1e8, 500), rng.normal(0, 1e-3, 500)]))
    s = SortedSample.from_sorted(x)
    for k in (0, 1, 17, 500, 999, 1000):
        exact = math.fsum(x[:k].tolist())
        assert s.prefix_hi[k] + s.prefix_lo[k] == exact


# --- quantile bins, PSI, JS -------------------------------------------------------------


@PROPS
@given(x=samples(), probs=st.lists(st.floats(0, 1), min_size=1, max_size=12))
def test_sorted_quantiles_equal_numpy(x: Array, probs: list[float]) -> None:
    ours = sorted_quantiles(np.sort(x), probs)
    assert np.array_equal(ours, np.quantile(x, probs))


def _slow_psi_bins(ref: Array, cur: Array, bins: int) -> tuple[list[int], list[int]]:
    """Bins by a loop over the values: (-inf, c0], (c0, c1], ..., (c_last, inf)."""
    cuts = sorted(set(np.quantile(ref, [i / bins for i in range(1, bins)]).tolist()))
    if cuts[0] == ref.min():  # below the minimum: a bin of its own
        cuts.insert(0, float(np.nextafter(ref.min(), -np.inf)))

    def which(v: float) -> int:
        for i, c in enumerate(cuts):
            if v <= c:
                return i
        return len(cuts)

    counts_ref, counts_cur = [0] * (len(cuts) + 1), [0] * (len(cuts) + 1)
    for v in ref:
        counts_ref[which(float(v))] += 1
    for v in cur:
        counts_cur[which(float(v))] += 1
    return counts_ref, counts_cur


def _slow_psi(p_counts: list[int], q_counts: list[int]) -> float:
    total_p, total_q = sum(p_counts), sum(q_counts)
    out = 0.0
    for a, b in zip(p_counts, q_counts, strict=True):
        p = a / total_p or PSI_EPSILON
        q = b / total_q or PSI_EPSILON
        out += (q - p) * math.log(q / p)
    return out


def _slow_js(p_counts: list[int], q_counts: list[int]) -> float:
    p = [a / sum(p_counts) for a in p_counts]
    q = [b / sum(q_counts) for b in q_counts]
    m = [(a + b) / 2 for a, b in zip(p, q, strict=True)]

    def kl(x: list[float]) -> float:
        return sum(a * math.log2(a / c) for a, c in zip(x, m, strict=True) if a > 0)

    return math.sqrt(max((kl(p) + kl(q)) / 2, 0.0))


@PROPS
@given(ref=samples(), cur=samples(), bins=st.integers(2, 12))
def test_psi_and_js_on_quantile_bins_equal_slow_code(ref: Array, cur: Array, bins: int) -> None:
    cuts = quantile_cuts(np.sort(ref), bins)
    ref_counts = bin_counts(cuts, np.sort(ref), presorted=True)
    cur_counts = bin_counts(cuts, cur)
    slow_ref, slow_cur = _slow_psi_bins(ref, cur, bins)
    assert ref_counts.tolist() == slow_ref
    assert cur_counts.tolist() == slow_cur
    assert bin_counts(cuts, ref).tolist() == slow_ref
    assert len(cuts) <= bins
    assert psi(ref_counts, cur_counts).statistic == pytest.approx(
        _slow_psi(slow_ref, slow_cur), rel=1e-9, abs=1e-12
    )
    js = js_distance(ref_counts, cur_counts)
    assert js.statistic == pytest.approx(_slow_js(slow_ref, slow_cur), abs=1e-9)
    assert js.statistic == pytest.approx(
        float(jensenshannon(ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum(), base=2)),
        abs=1e-12,
    )


def test_psi_of_identical_and_of_disjoint_shares() -> None:
    assert psi([10, 20, 30], [1, 2, 3]).statistic == pytest.approx(0.0, abs=1e-15)
    far = psi([100, 0], [0, 50])
    expected = 2 * (1 - PSI_EPSILON) * math.log(1 / PSI_EPSILON)
    assert far.statistic == pytest.approx(expected) and far.effect_name == "psi"
    assert js_distance([100, 0], [0, 50]).statistic == pytest.approx(1.0)


def test_quantile_cuts_merge_duplicate_edges() -> None:
    x = np.sort(np.array([0.0] * 70 + [1.0] * 30))
    cuts = quantile_cuts(x, 10)
    below = np.nextafter(0.0, -1.0)
    assert np.array_equal(cuts, np.r_[below, np.unique(np.quantile(x, np.arange(1, 10) / 10))])
    assert bin_counts(cuts, x, presorted=True).tolist()[:2] == [0, 70]
    assert cuts.tolist()[1:] == [0.0, pytest.approx(0.3), 1.0]
    assert bin_counts(cuts, [-0.5, 0.0, 1.0, 2.0]).tolist() == [1, 1, 0, 1, 1]
    assert quantile_cuts([], 10).size == 0
    assert quantile_cuts(np.full(5, 3.0), 10).tolist() == [np.nextafter(3.0, 0.0), 3.0]
    assert quantile_cuts(np.arange(100.0), 4).tolist() == [24.75, 49.5, 74.25]
    with pytest.raises(ValueError, match="at least 2 bins"):
        quantile_cuts(x, 1)


# --- chi-square -------------------------------------------------------------------------

counts = st.lists(st.integers(0, 40), min_size=1, max_size=8)


@PROPS
@given(data=st.data())
def test_chi2_equals_scipy_contingency(data: st.DataObject) -> None:
    k = data.draw(st.integers(1, 8))
    ref = np.array(data.draw(st.lists(st.integers(0, 40), min_size=k, max_size=k)))
    cur = np.array(data.draw(st.lists(st.integers(0, 40), min_size=k, max_size=k)))
    if ref.sum() == 0 or cur.sum() == 0:
        with pytest.raises(ValueError):
            chi2_test(ref, cur)
        return
    res = chi2_test(ref, cur)
    keep = (ref + cur) > 0
    table = np.vstack([ref[keep], cur[keep]])
    theirs = sst.chi2_contingency(table)
    assert res.method == "chi2" and res.effect_name == "cramers_v"
    assert res.statistic == pytest.approx(float(theirs.statistic), rel=1e-9, abs=1e-9)
    assert res.p_value == pytest.approx(float(theirs.pvalue), abs=1e-9)
    if table.shape[1] >= 2:
        v = float(sst.contingency.association(table, method="cramer"))
        assert res.effect == pytest.approx(v, abs=1e-9)
    else:
        assert res.effect == 0.0


def test_chi2_two_categories_uses_yates_like_scipy() -> None:
    table = np.array([[30, 10], [18, 22]])
    res = chi2_test(table[0], table[1])
    assert res.statistic == pytest.approx(float(sst.chi2_contingency(table).statistic))
    assert res.statistic < float(sst.chi2_contingency(table, correction=False).statistic)


def test_unseen_categories_and_alignment() -> None:
    labels, ref, cur = align_categories(["a", "b"], [5, 3], {"b": 2, "z": 4, "c": 2})
    assert labels == ["a", "b", "c", "z"]
    assert ref.tolist() == [5, 3, 0, 0] and cur.tolist() == [0, 2, 2, 4]
    assert unseen_share(ref, cur) == pytest.approx(6 / 8)
    only_unseen = chi2_test([10, 10, 0], [0, 0, 30])
    assert only_unseen.effect == pytest.approx(1.0)
    assert only_unseen.p_value is not None and only_unseen.p_value < 1e-6


# --- multiple testing -------------------------------------------------------------------


@PROPS
@given(p=st.lists(st.floats(0, 1), min_size=0, max_size=30))
def test_corrections_against_scipy_and_hand(p: list[float]) -> None:
    arr = np.array(p, dtype=float)
    assert np.array_equal(correct_pvalues(arr, "none"), arr)
    assert np.allclose(correct_pvalues(arr, "bonferroni"), np.minimum(arr * len(p), 1.0))
    if p:
        assert np.allclose(correct_pvalues(arr, "bh"), sst.false_discovery_control(arr))


def test_benjamini_hochberg_by_hand() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: 0.005, 0.01, 0.03, 0.04 -> *4/rank: 0.02, 0.02, 0.04, 0.04 (running min from top)
    assert correct_pvalues(p, "bh").tolist() == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert correct_pvalues(p, "bonferroni").tolist() == pytest.approx([0.04, 0.16, 0.12, 0.02])
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        correct_pvalues([0.5, 1.5])
    with pytest.raises(ValueError, match="expected correction"):
        correct_pvalues([0.5], "holm")  # type: ignore[arg-type]
