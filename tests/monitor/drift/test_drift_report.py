"""The drift rule and every bad-input status: never a crash, never a false ``no_drift``."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sst

from retrainer.monitor.drift import (
    STATUSES,
    DriftConfig,
    DriftReport,
    ReferenceProfile,
    drift_report,
)
from retrainer.monitor.drift.stats import PSI_EPSILON


def normal_frame(n: int, *, shift: float = 0.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(shift, 1.0, n),
            "color": rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2]),
        }
    )


def check(
    ref: pd.DataFrame,
    cur: pd.DataFrame,
    numeric: list[str] = ["x"],  # noqa: B006
    categorical: list[str] = [],  # noqa: B006
    **config: Any,
) -> DriftReport:
    profile = ReferenceProfile.build(ref, numeric, categorical)
    return drift_report(profile, cur, DriftConfig(**config))


# --- the rule ---------------------------------------------------------------------------


def test_same_distribution_does_not_drift() -> None:
    report = check(normal_frame(3000), normal_frame(2000, seed=1), ["x"], ["color"])
    assert report.drifted == [] and report.share_drifted == 0.0
    assert [f.status for f in report.features] == ["no_drift", "no_drift"]
    assert report.n_evaluated == 2 and report.problems == {}


def test_significant_but_tiny_shift_is_not_drift_and_a_large_one_is() -> None:
    """200,000 rows a side. A 0.02 sd shift is highly significant (KS+t) yet PSI ~ 0.0003
    is far below 0.2: no drift; so is 0.01 sd, significant or not. A 0.5 sd shift is
    drift (PSI ~ 0.24). ``test_drift_trigger`` holds the 0.01 sd case to the letter."""
    n = 200_000
    profile = ReferenceProfile.build(normal_frame(n, seed=0), ["x"])
    config = DriftConfig()
    for shift in (0.01, 0.02):
        f = drift_report(profile, normal_frame(n, shift=shift, seed=1), config).feature("x")
        assert f.status == "no_drift"
        assert f.effect is not None and f.effect < config.numeric_min_effect
    small = drift_report(profile, normal_frame(n, shift=0.02, seed=1), config).feature("x")
    assert small.p_value_corrected is not None and small.p_value_corrected < config.alpha
    assert "too small to matter" in small.reason
    big = drift_report(profile, normal_frame(n, shift=0.5, seed=1), config).feature("x")
    assert big.status == "drift"
    assert big.effect is not None and big.effect > 0.2
    assert big.p_value_corrected is not None and big.p_value_corrected < 1e-100


def test_large_effect_that_is_not_significant_is_not_drift() -> None:
    ref = pd.DataFrame({"x": np.arange(12.0)})
    cur = pd.DataFrame({"x": np.arange(12.0) + 2})
    f = check(ref, cur, min_samples=10).feature("x")
    assert f.effect is not None and f.effect > 0.2  # PSI
    assert f.p_value_corrected is not None and f.p_value_corrected > 0.01
    assert f.status == "no_drift"
    assert "p" in f.reason and ">=" in f.reason


@pytest.mark.parametrize(
    ("effect", "name"),
    [("ks", "ks"), ("psi", "psi"), ("js", "js"), ("wasserstein", "wasserstein_norm")],
)
def test_numeric_effect_choice(effect: str, name: str) -> None:
    f = check(normal_frame(2000), normal_frame(2000, shift=1.0, seed=1), numeric_effect=effect)
    x = f.feature("x")
    assert x.effect_name == name
    assert x.effect == x.metrics[name]
    assert x.status == "drift"


@pytest.mark.parametrize("test", ["ks", "t", "ks+t"])
def test_numeric_test_choice(test: str) -> None:
    """The feature's p-value is KS's, t's, or their Bonferroni combination."""
    report = check(normal_frame(3000), normal_frame(2000, shift=0.08, seed=1), numeric_test=test)
    x = report.feature("x")
    m = x.metrics
    assert x.test == test and m["ks_p_value"] is not None and m["t_p_value"] is not None
    expected = {
        "ks": (m["ks"], m["ks_p_value"]),
        "t": (m["t_statistic"], m["t_p_value"]),
        "ks+t": (m["ks"], min(1.0, 2 * min(m["ks_p_value"], m["t_p_value"]))),
    }[test]
    assert (x.statistic, x.p_value) == expected
    assert report.config.numeric_test == test


def test_a_location_shift_ks_hardly_sees_is_clearly_significant_with_t() -> None:
    """The reference's own 200,000 values moved by exactly 0.01 sd: t = -3.16 (p 0.0016),
    while KS's D = 0.0043 gives p 0.046, not significant at the default alpha 0.01."""
    ref = normal_frame(200_000)[["x"]]
    cur = ref + 0.01
    ks_only = check(ref, cur, numeric_test="ks").feature("x")
    both = check(ref, cur).feature("x")
    assert ks_only.p_value is not None and ks_only.p_value > 0.01
    t = both.metrics["t_statistic"]
    assert t is not None and t == pytest.approx(-0.01 / math.sqrt(2 / 200_000), rel=0.01)
    assert both.test == "ks+t" and both.p_value is not None and both.p_value < 0.01
    assert both.status == ks_only.status == "no_drift"  # PSI ~ 1e-4 either way


def test_without_a_computable_t_test_ks_decides_or_the_feature_is_not_judged() -> None:
    ref = pd.DataFrame({"x": np.arange(50.0)})
    one = pd.DataFrame({"x": [3.0]})
    fallback = check(ref, one, min_samples=1).feature("x")
    assert fallback.test == "ks" and fallback.metrics["t_p_value"] is None
    assert fallback.p_value == fallback.metrics["ks_p_value"]
    only_t = check(ref, one, min_samples=1, numeric_test="t").feature("x")
    assert only_t.status == "insufficient_data" and "t-test" in only_t.reason


@pytest.mark.parametrize("effect", ["cramers_v", "psi", "js"])
def test_categorical_effect_choice(effect: str) -> None:
    rng = np.random.default_rng(4)
    ref = pd.DataFrame({"c": rng.choice(["a", "b"], 3000, p=[0.8, 0.2])})
    cur = pd.DataFrame({"c": rng.choice(["a", "b"], 3000, p=[0.3, 0.7])})
    f = check(ref, cur, [], ["c"], categorical_effect=effect).feature("c")
    assert f.effect_name == effect and f.effect == f.metrics[effect]
    assert f.status == "drift"


def test_correction_is_applied_across_the_family() -> None:
    rng = np.random.default_rng(9)
    ref = pd.DataFrame({f"f{i}": rng.normal(size=400) for i in range(5)})
    cur = pd.DataFrame({f"f{i}": rng.normal(0.15 * i, 1, 400) for i in range(5)})
    names = list(ref.columns)
    raw = check(ref, cur, names, correction="none")
    bonf = check(ref, cur, names, correction="bonferroni")
    bh = check(ref, cur, names, correction="bh")
    p = np.array([f.p_value for f in raw.features], dtype=float)
    assert [f.p_value_corrected for f in raw.features] == pytest.approx(p.tolist())
    assert [f.p_value_corrected for f in bonf.features] == pytest.approx(
        np.minimum(p * 5, 1).tolist()
    )
    assert [f.p_value_corrected for f in bh.features] == pytest.approx(
        sst.false_discovery_control(p).tolist()
    )


# --- bad input --------------------------------------------------------------------------


def test_empty_batch_is_insufficient_data_for_every_feature() -> None:
    ref = normal_frame(1000)
    empty = ref.iloc[:0]
    report = check(ref, empty, ["x"], ["color"])
    assert [f.status for f in report.features] == ["insufficient_data"] * 2
    assert report.drifted == [] and report.n_evaluated == 0
    assert report.problems == {"x": "insufficient_data", "color": "insufficient_data"}
    assert all("empty" in f.reason for f in report.features)


def test_empty_reference_is_insufficient_data() -> None:
    empty = pd.DataFrame({"x": pd.Series([], dtype=float), "color": pd.Series([], dtype=object)})
    profile = ReferenceProfile.from_bytes(
        ReferenceProfile.build(empty, ["x"], ["color"]).to_bytes()
    )
    report = drift_report(profile, normal_frame(500), DriftConfig(domain_classifier=True))
    assert [f.status for f in report.features] == ["insufficient_data"] * 2
    assert report.feature("x").reason == "the reference is empty"
    assert report.domain is None and report.domain_note


def test_header_less_frame_is_missing_column() -> None:
    report = check(normal_frame(500), pd.DataFrame(), ["x"], ["color"])
    assert {f.status for f in report.features} == {"missing_column"}
    assert report.feature("x").reason == "the batch has no such column"


def test_small_batch_is_insufficient_data_even_if_it_looks_drifted() -> None:
    report = check(normal_frame(1000), normal_frame(199, shift=3.0, seed=1), ["x"], ["color"])
    x = report.feature("x")
    assert x.status == "insufficient_data"
    assert x.p_value_corrected is None and x.metrics["ks"] is not None  # shown, not judged
    assert "fewer than min_samples 200" in x.reason
    assert check(normal_frame(100), normal_frame(1000), ["x"]).feature("x").status == (
        "insufficient_data"
    )


def test_all_nan_column_is_all_missing() -> None:
    cur = normal_frame(500)
    cur["x"] = np.nan
    cur["color"] = None
    report = check(normal_frame(500), cur, ["x"], ["color"])
    assert report.feature("x").status == "all_missing"
    assert "500 NaN" in report.feature("x").reason
    assert report.feature("color").status == "all_missing"
    ref = normal_frame(500)
    ref["x"] = np.nan
    assert check(ref, normal_frame(500), ["x"]).feature("x").status == "all_missing"


def test_strings_in_a_numeric_column_are_a_type_mismatch() -> None:
    cur = normal_frame(500).astype({"x": object})
    cur.loc[3, "x"] = "12a"
    f = check(normal_frame(500), cur).feature("x")
    assert f.status == "type_mismatch"
    assert "'12a'" in f.reason
    as_text = normal_frame(500).assign(x=lambda d: d["x"].astype(str))
    assert check(normal_frame(500), as_text).feature("x").status == "type_mismatch"
    dates = normal_frame(500).assign(x=pd.Timestamp("2024-01-01"))
    assert check(normal_frame(500), dates).feature("x").status == "type_mismatch"
    numbers_as_objects = normal_frame(500).astype({"x": object})
    assert check(normal_frame(500), numbers_as_objects).feature("x").status == "no_drift"


def test_constant_reference() -> None:
    ref = pd.DataFrame({"x": np.full(500, 5.0)})
    same = check(ref, pd.DataFrame({"x": np.full(400, 5.0)})).feature("x")
    assert same.status == "no_drift" and same.effect == 0.0 and same.metrics["ks"] == 0.0
    moved = check(ref, pd.DataFrame({"x": np.full(400, 6.0)})).feature("x")
    assert moved.status == "drift"
    assert moved.effect == pytest.approx(2 * (1 - PSI_EPSILON) * math.log(1 / PSI_EPSILON))
    assert moved.metrics["ks"] == 1.0 and moved.metrics["js"] == pytest.approx(1.0)
    assert moved.metrics["wasserstein"] == 1.0 and moved.metrics["wasserstein_norm"] == math.inf
    assert "constant (5)" in moved.note
    assert moved.to_dict()["metrics"]["wasserstein_norm"] is None  # JSON has no infinity
    by_w = check(ref, pd.DataFrame({"x": np.full(400, 6.0)}), numeric_effect="wasserstein")
    assert by_w.feature("x").status == "drift"
    below = check(ref, pd.DataFrame({"x": np.full(400, 4.0)})).feature("x")
    assert below.status == "drift" and below.effect == moved.effect
    assert below.metrics["js"] == pytest.approx(1.0)


def test_constant_batch_against_a_varied_reference_drifts() -> None:
    f = check(normal_frame(1000), pd.DataFrame({"x": np.zeros(500)})).feature("x")
    assert f.status == "drift"


def test_only_unseen_categories() -> None:
    ref = pd.DataFrame({"c": ["a", "b"] * 300})
    cur = pd.DataFrame({"c": ["z"] * 300})
    f = check(ref, cur, [], ["c"]).feature("c")
    assert f.status == "drift"
    assert f.effect == pytest.approx(1.0) and f.metrics["unseen_share"] == 1.0
    assert "100.0% of the batch is in categories the reference never saw" in f.note
    few = check(ref, pd.DataFrame({"c": ["z"] * 50}), [], ["c"]).feature("c")
    assert few.status == "insufficient_data" and few.metrics["unseen_share"] == 1.0


def test_inf_values_are_counted_and_a_changed_share_is_drift() -> None:
    rng = np.random.default_rng(2)
    ref_x = rng.normal(size=2000)
    ref_x[:20] = np.inf  # 1% +inf
    cur_x = rng.normal(size=2000)
    cur_x[:20] = np.inf  # same share: not flagged
    ref = pd.DataFrame({"x": ref_x})
    same = check(ref, pd.DataFrame({"x": cur_x})).feature("x")
    assert same.status == "no_drift"
    finite_ref, finite_cur = ref_x[np.isfinite(ref_x)], cur_x[np.isfinite(cur_x)]
    assert same.metrics["ks"] == pytest.approx(
        float(sst.ks_2samp(finite_ref, finite_cur).statistic)
    )
    assert same.n_current == 1980
    assert same.metrics["inf_share_reference"] == same.metrics["inf_share_current"] == 0.01
    cur_x[:600] = -np.inf  # 30% -inf: the finite values are the same distribution
    more = check(ref, pd.DataFrame({"x": cur_x})).feature("x")
    assert more.status == "drift"
    assert "missing/inf shares changed" in more.reason and "-inf 0.0% -> 30.0%" in more.reason
    assert more.metrics["special_p_value_corrected"] is not None


def test_missing_share_jump_is_drift_even_when_values_look_alike() -> None:
    cur = normal_frame(2000, seed=1)
    cur.loc[cur.index[:1200], ["x", "color"]] = np.nan
    report = check(normal_frame(2000), cur, ["x"], ["color"])
    assert report.feature("x").status == "drift"
    assert report.feature("color").status == "drift"
    assert "NaN 0.0% -> 60.0%" in report.feature("x").reason


def test_integer_codes_match_float_codes_with_nan() -> None:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"code": rng.integers(1, 4, 1000)})
    codes = rng.integers(1, 4, 1000).astype(float)
    codes[0] = np.nan
    f = check(ref, pd.DataFrame({"code": codes}), [], ["code"]).feature("code")
    assert f.status == "no_drift" and f.metrics["unseen_share"] == 0.0


def test_statuses_are_the_documented_ones() -> None:
    ref = normal_frame(500)
    cases = [
        normal_frame(500),
        ref.iloc[:0],
        pd.DataFrame({"color": ["x"] * 500}),
        normal_frame(500).assign(x="a"),
        normal_frame(500).assign(x=np.nan),
    ]
    seen = {f.status for cur in cases for f in check(ref, cur, ["x"], ["color"]).features}
    assert seen <= set(STATUSES)
    assert {"no_drift", "insufficient_data", "missing_column", "type_mismatch", "all_missing"} <= (
        seen
    )


# --- output -----------------------------------------------------------------------------


def test_to_dict_is_strict_json_and_to_frame_has_one_row_per_feature() -> None:
    ref = pd.DataFrame({"x": np.full(500, 1.0), "c": ["a"] * 500})
    cur = pd.DataFrame({"x": np.full(500, 2.0), "c": ["b"] * 500})
    report = check(ref, cur, ["x"], ["c"])
    data = report.to_dict()
    json.dumps(data, allow_nan=False)
    assert data["drifted"] == ["x", "c"] and data["share_drifted"] == 1.0
    assert data["summary"] == "2 of 2 features drifted (100%)"
    assert data["config"]["alpha"] == 0.01
    frame = report.to_frame()
    assert list(frame["feature"]) == ["x", "c"]
    assert {"status", "p_value_corrected", "effect", "psi", "cramers_v"} <= set(frame.columns)
    empty = drift_report(ReferenceProfile.build(ref), cur)
    assert empty.share_drifted == 0.0 and empty.features == ()
    assert empty.to_frame().empty and "feature" in empty.to_frame().columns


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha": 0.0}, "alpha in \\(0, 1\\)"),
        ({"alpha": 1.5}, "alpha in \\(0, 1\\)"),
        ({"correction": "holm"}, "correction 'bh'"),
        ({"min_samples": 0}, "min_samples >= 1"),
        ({"numeric_effect": "auc"}, "numeric_effect in ks, psi, js, wasserstein"),
        ({"numeric_test": "mwu"}, "numeric_test in ks, t, ks\\+t"),
        ({"categorical_effect": "ks"}, "categorical_effect in cramers_v, psi, js"),
        ({"numeric_min_effect": -1.0}, "numeric_min_effect >= 0"),
        ({"categorical_min_effect": math.nan}, "categorical_min_effect >= 0"),
        ({"psi_bins": 1}, "psi_bins >= 2"),
        ({"folds": 1}, "folds >= 2"),
    ],
)
def test_config_is_validated(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DriftConfig(**kwargs)


# --- domain classifier ------------------------------------------------------------------


def correlated(n: int, rho: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = rho * a + math.sqrt(1 - rho**2) * rng.normal(size=n)
    g = np.where(rng.random(n) < 0.5, "u", "v")
    return pd.DataFrame({"a": a, "b": b, "g": g})


def test_domain_classifier_sees_a_flipped_correlation_the_marginals_miss() -> None:
    ref, cur = correlated(1500, 0.9, 0), correlated(1500, -0.9, 1)
    config = DriftConfig(domain_classifier=True, domain_max_rows=1000, folds=3)
    profile = ReferenceProfile.build(ref, ["a", "b"], ["g"], sample_rows=1000)
    report = drift_report(profile, cur, config)
    assert report.drifted == []  # each column alone looks the same
    assert report.domain is not None and report.domain_auc is not None
    assert report.domain_auc > 0.9
    assert report.domain.n_reference == 1000 and len(report.domain.fold_aucs) == 3
    again = drift_report(profile, cur, config)
    assert again.domain == report.domain  # seeded
    same = drift_report(profile, correlated(1500, 0.9, 2), config)
    assert same.domain_auc is not None and abs(same.domain_auc - 0.5) < 0.1
    with_frame = drift_report(profile, cur, config, reference_frame=ref)
    assert with_frame.domain_auc is not None and with_frame.domain_auc > 0.9


def test_domain_classifier_needs_reference_rows() -> None:
    ref = correlated(500, 0.5, 0)
    profile = ReferenceProfile.build(ref, ["a", "b"], ["g"], sample_rows=0)
    report = drift_report(profile, correlated(500, 0.5, 1), DriftConfig(domain_classifier=True))
    assert report.domain is None and report.domain_note is not None
    assert "no reference rows" in report.domain_note
    small = drift_report(
        ReferenceProfile.build(ref, ["a"], sample_rows=100),
        correlated(500, 0.5, 1),
        DriftConfig(domain_classifier=True),
    )
    assert small.domain is None and small.domain_note and "too few rows" in small.domain_note


# --- anything goes in -------------------------------------------------------------------

cells = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-5, 5),
    st.sampled_from(["a", "b", "12a", "", "[b]x[/b]"]),
    st.none(),
    st.booleans(),
)


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(
    ref_x=st.lists(st.floats(-10, 10) | st.sampled_from([math.nan, math.inf]), max_size=40),
    ref_c=st.lists(st.sampled_from(["a", "b", None]), min_size=0, max_size=40),
    cur_x=st.lists(cells, max_size=40),
    cur_c=st.lists(cells, max_size=40),
)
def test_any_batch_gets_a_documented_status_and_never_a_false_no_drift(
    ref_x: list[float], ref_c: list[str | None], cur_x: list[Any], cur_c: list[Any]
) -> None:
    n = min(len(ref_x), len(ref_c))
    ref = pd.DataFrame({"x": ref_x[:n], "c": pd.Series(ref_c[:n], dtype=object)})
    m = min(len(cur_x), len(cur_c))
    cur = pd.DataFrame(
        {"x": pd.Series(cur_x[:m], dtype=object), "c": pd.Series(cur_c[:m], dtype=object)}
    )
    config = DriftConfig(min_samples=3)
    report = drift_report(ReferenceProfile.build(ref, ["x"], ["c"]), cur, config)
    json.dumps(report.to_dict(), allow_nan=False)
    for f in report.features:
        assert f.status in STATUSES
        if f.status == "no_drift":
            assert min(f.n_reference, f.n_current) >= config.min_samples
            assert f.p_value_corrected is not None and f.effect is not None
