"""Welch's t-test, the batch's placement in the reference, and the two Wasserstein paths,
against scipy.

Property tests (hypothesis) draw ties, tiny samples, continuous, heavy-tailed
(Cauchy, Pareto) and timestamp-like data, as in ``test_drift_stats``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats as sst

from retrainer.monitor.drift import sample as sample_module
from retrainer.monitor.drift.sample import FENCE_MIN, MERGE_RATIO, upper_counts
from retrainer.monitor.drift.stats import (
    LocationStats,
    SortedSample,
    combined_p_value,
    ks_statistic,
    place,
    wasserstein,
    welch_t_test,
)
from retrainer.monitor.drift.wasserstein import wasserstein_w1

Array = np.ndarray[Any, Any]
PROPS = settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@st.composite
def samples(draw: st.DrawFn, min_size: int = 1, max_size: int = 80) -> Array:
    kind = draw(st.sampled_from(["ties", "floats", "cauchy", "pareto", "timestamps", "tiny"]))
    size = draw(st.integers(min_size, max(min_size, 5 if kind == "tiny" else max_size)))
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
    return math.isclose(ours, theirs, rel_tol=1e-9, abs_tol=1e-12 * max(scale, 1.0))


# --- Welch's t-test ---------------------------------------------------------------------


def _welch(ref: Array, cur: Array) -> Any:
    return welch_t_test(LocationStats.from_values(ref), cur)


@PROPS
@given(ref=samples(min_size=2), cur=samples(min_size=2))
def test_welch_equals_scipy(ref: Array, cur: Array) -> None:
    with np.errstate(all="ignore"):
        theirs = sst.ttest_ind(ref, cur, equal_var=False)
    t_s, p_s = float(theirs.statistic), float(theirs.pvalue)
    both_constant = np.ptp(ref) == 0 and np.ptp(cur) == 0
    ours = _welch(ref, cur)
    assert ours.method == "t" and ours.effect_name == "mean_shift"
    if both_constant:  # scipy: NaN; ours: defined
        assert math.isnan(p_s)
        same = ref[0] == cur[0]
        assert (ours.statistic, ours.p_value) == ((0.0, 1.0) if same else (ours.statistic, 0.0))
        assert same or math.isinf(ours.statistic)
        return
    # t is a difference of means over its standard error: scipy's means carry rounding
    # of order eps·|mean|, so compare on that scale too.
    se = math.sqrt(np.var(ref, ddof=1) / ref.size + np.var(cur, ddof=1) / cur.size)
    slack = 1e-13 * (abs(np.mean(ref)) + abs(np.mean(cur))) / se
    assert ours.statistic == pytest.approx(t_s, rel=1e-9, abs=1e-12 + slack)
    assert ours.p_value == pytest.approx(p_s, rel=1e-9, abs=1e-12 + slack)


def test_welch_from_a_profile_equals_scipy_on_the_raw_reference() -> None:
    rng = np.random.default_rng(3)
    ref, cur = rng.standard_t(2.5, 200_000), rng.standard_t(2.5, 50_000) + 0.01
    ours = welch_t_test(LocationStats.from_values(np.sort(ref)), cur)
    theirs = sst.ttest_ind(ref, cur, equal_var=False)
    assert ours.statistic == pytest.approx(float(theirs.statistic), rel=1e-9)
    assert ours.p_value == pytest.approx(float(theirs.pvalue), rel=1e-9)


@pytest.mark.filterwarnings("ignore:Precision loss occurred:RuntimeWarning")
def test_welch_constant_samples_and_refusals() -> None:
    const = LocationStats.from_values([2.0, 2.0, 2.0])
    same = welch_t_test(const, [2.0, 2.0])
    assert (same.statistic, same.p_value, same.effect) == (0.0, 1.0, 0.0)
    apart = welch_t_test(const, [3.0, 3.0])
    assert (apart.statistic, apart.p_value, apart.effect) == (-math.inf, 0.0, math.inf)
    one_varies = welch_t_test(const, [1.0, 3.0, 2.5])
    theirs = sst.ttest_ind([2.0, 2.0, 2.0], [1.0, 3.0, 2.5], equal_var=False)
    assert one_varies.p_value == pytest.approx(float(theirs.pvalue), rel=1e-9)
    with pytest.raises(ValueError, match="at least two values"):
        welch_t_test(const, [1.0])
    with pytest.raises(ValueError, match="at least two values"):
        welch_t_test(LocationStats.from_values([1.0]), [1.0, 2.0])
    with pytest.raises(ValueError, match="finite mean and variance"):
        welch_t_test(LocationStats.from_values([-1e200, 1e200]), [1.0, 2.0])


def test_bonferroni_combination() -> None:
    assert combined_p_value([0.2, 0.01]) == 0.02
    assert combined_p_value([0.7, 0.9]) == 1.0
    assert combined_p_value([0.03]) == 0.03
    with pytest.raises(ValueError):
        combined_p_value([])


# --- placement and the two Wasserstein paths --------------------------------------------


@PROPS
@given(ref=samples(), cur=samples())
def test_placement_counts_equal_searchsorted(ref: Array, cur: Array) -> None:
    sample = SortedSample.from_values(ref)
    pl = place(sample, cur)
    u = np.unique(cur)
    assert np.array_equal(pl.distinct, u) and np.array_equal(pl.values, np.sort(cur))
    assert np.array_equal(pl.le, np.searchsorted(np.sort(cur), u, side="right"))
    assert np.array_equal(pl.upto, np.searchsorted(sample.values, u, side="right"))
    assert np.array_equal(pl.below, np.searchsorted(sample.values, u, side="left"))
    assert place(sample, pl) is pl  # reused for the same reference
    other = SortedSample.from_values(ref + 1.0)
    assert np.array_equal(place(other, pl).upto, np.searchsorted(other.values, u, "right"))


@PROPS
@given(ref=samples(), cur=samples())
def test_both_wasserstein_paths_equal_scipy(ref: Array, cur: Array) -> None:
    pl = place(SortedSample.from_values(ref), cur)
    theirs = float(sst.wasserstein_distance(ref, cur))
    scale = float(max(np.abs(ref).max(), np.abs(cur).max()))
    assert wasserstein_w1(pl, path="merge") == theirs  # the same arithmetic as scipy
    assert close(wasserstein_w1(pl, path="prefix"), theirs, scale=scale)


@pytest.mark.parametrize("extra", [0, 1])
def test_wasserstein_switches_paths_at_the_ratio_and_agrees_on_both_sides(extra: int) -> None:
    rng = np.random.default_rng(extra)
    m = 1_500
    ref = np.round(rng.normal(size=MERGE_RATIO * m + extra), 3)  # ties across the sides
    cur = np.round(rng.normal(0.05, 1.1, m), 3)
    pl = place(SortedSample.from_values(ref), cur)
    theirs = float(sst.wasserstein_distance(ref, cur))
    auto = wasserstein(SortedSample.from_values(ref), cur).statistic
    assert auto == wasserstein_w1(pl, path="merge" if extra == 0 else "prefix")
    assert close(auto, theirs)
    assert ks_statistic(pl.reference, pl) == float(sst.ks_2samp(ref, cur, method="asymp").statistic)


def test_prefix_path_on_large_timestamps_keeps_precision() -> None:
    rng = np.random.default_rng(11)
    ref = 1.7e9 + rng.normal(0, 30, 400_000)
    cur = 1.7e9 + rng.normal(0.5, 30, 2_000)
    pl = place(SortedSample.from_values(ref), cur)
    assert close(wasserstein_w1(pl), float(sst.wasserstein_distance(ref, cur)))
    with pytest.raises(ValueError, match="path"):
        wasserstein_w1(pl, path="fast")


@PROPS
@given(ref=samples(max_size=400), x=samples(max_size=60))
def test_fenced_search_equals_searchsorted(ref: Array, x: Array) -> None:
    """The fence (used from FENCE_MIN reference values on) is forced here on small ones."""
    sample = SortedSample.from_values(ref)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sample_module, "FENCE_MIN", 1)
        got = upper_counts(sample, x)
    assert np.array_equal(got, np.searchsorted(sample.values, x, side="right"))


def test_fenced_search_on_a_large_reference_with_ties() -> None:
    rng = np.random.default_rng(5)
    ref = np.round(rng.standard_t(2, FENCE_MIN + 1_000), 2)  # many ties, heavy tails
    cur = np.concatenate([np.round(rng.standard_t(2, 3_000), 2), [-1e9, 1e9, ref.min()]])
    sample = SortedSample.from_values(ref)
    assert sample.n >= FENCE_MIN
    pl = place(sample, cur)
    assert np.array_equal(pl.upto, np.searchsorted(sample.values, pl.distinct, "right"))
    assert np.array_equal(pl.below, np.searchsorted(sample.values, pl.distinct, "left"))
    assert ks_statistic(sample, pl) == float(sst.ks_2samp(ref, cur, method="asymp").statistic)
    assert close(wasserstein_w1(pl), float(sst.wasserstein_distance(ref, cur)), scale=1e9)
