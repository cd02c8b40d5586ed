"""Reference profiles: what they hold, their bytes (deterministic, no pickle), and that
checking a batch against a profile gives what scipy gives on the raw reference frame."""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sst

from retrainer.errors import DataSourceError
from retrainer.monitor.drift import DriftConfig, ReferenceProfile, drift_report
from retrainer.monitor.drift.columns import category_keys, column_counts, numeric_values

Array = np.ndarray[Any, Any]


def reference_frame(n: int = 3_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(10, 2, n)
    x[rng.random(n) < 0.02] = np.nan
    x[:3] = [np.inf, -np.inf, np.inf]
    return pd.DataFrame(
        {
            "x": x,
            "count": rng.poisson(3, n),  # ties
            "city": rng.choice(["paris", "rome", "oslo", None], n, p=[0.5, 0.3, 0.15, 0.05]),
            "code": rng.integers(1, 4, n),  # integer category codes
        }
    )


def current_frame(n: int = 2_000, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    code = rng.integers(1, 5, n).astype(float)
    code[:5] = np.nan  # float codes with a NaN must still match the integer codes
    return pd.DataFrame(
        {
            "x": rng.normal(10.4, 2.2, n),
            "count": rng.poisson(3.3, n),
            "city": rng.choice(["paris", "rome", "lima"], n, p=[0.4, 0.4, 0.2]),
            "code": code,
        }
    )


def build(frame: pd.DataFrame, **kwargs: Any) -> ReferenceProfile:
    return ReferenceProfile.build(frame, ["x", "count"], ["city", "code"], **kwargs)


def test_profile_holds_sorted_values_counts_and_bins() -> None:
    frame = reference_frame()
    profile = build(frame)
    x = profile.numeric["x"]
    raw = frame["x"].to_numpy()
    finite = np.sort(raw[np.isfinite(raw)])
    assert np.array_equal(x.sample.values, finite)
    assert x.sample.prefix_hi[-1] + x.sample.prefix_lo[-1] == pytest.approx(math.fsum(finite))
    assert (x.n_missing, x.n_posinf, x.n_neginf) == (int(np.isnan(raw).sum()), 2, 1)
    assert x.n_rows == len(frame) == profile.n_rows
    assert x.mean == pytest.approx(finite.mean()) and x.std == pytest.approx(finite.std())
    q1, q3 = np.quantile(finite, [0.25, 0.75])
    assert x.iqr == pytest.approx(q3 - q1)
    assert np.array_equal(x.cuts, np.unique(np.quantile(finite, np.arange(1, 10) / 10)))
    assert x.bin_counts.sum() == finite.size and x.bin_counts.size == x.cuts.size + 1
    cuts5, counts5 = x.bins(5)
    assert cuts5.size == 4 and counts5.sum() == finite.size

    city = profile.categorical["city"]
    assert city.n_missing == int(frame["city"].isna().sum())
    assert dict(zip(city.categories, city.counts.tolist(), strict=True)) == (
        frame["city"].value_counts().to_dict()
    )
    assert list(city.counts) == sorted(city.counts, reverse=True)
    assert set(profile.categorical["code"].categories) == {"1", "2", "3"}
    assert profile.features == ["x", "count", "city", "code"]
    assert len(profile.sample) == len(frame)  # fewer rows than sample_rows: all of them


def test_bytes_round_trip_is_exact_and_deterministic() -> None:
    frame = reference_frame()
    profile = build(frame, sample_rows=500, seed=3)
    data = profile.to_bytes()
    assert data == build(frame, sample_rows=500, seed=3).to_bytes()  # content-addressable
    again = ReferenceProfile.from_bytes(data)
    assert again.to_bytes() == data
    for name, p in profile.numeric.items():
        q = again.numeric[name]
        assert np.array_equal(p.sample.values, q.sample.values)
        assert np.array_equal(p.sample.prefix_hi, q.sample.prefix_hi)
        assert np.array_equal(p.sample.prefix_lo, q.sample.prefix_lo)
        assert np.array_equal(p.cuts, q.cuts) and np.array_equal(p.bin_counts, q.bin_counts)
        assert (p.n_missing, p.n_posinf, p.n_neginf, p.mean, p.std, p.iqr, p.var) == (
            q.n_missing,
            q.n_posinf,
            q.n_neginf,
            q.mean,
            q.std,
            q.iqr,
            q.var,
        )
    for name, c in profile.categorical.items():
        d = again.categorical[name]
        assert (c.categories, c.counts.tolist(), c.n_missing) == (
            d.categories,
            d.counts.tolist(),
            d.n_missing,
        )
    pd.testing.assert_frame_equal(profile.sample, again.sample)
    assert abs(len(again.sample) - 500) < 100 and again.seed == 3  # about 500: Bernoulli
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())


def test_version_1_profiles_are_read_with_the_variance_from_their_std() -> None:
    """v1 stored no sample variance: it is derived from the std (ddof=0)."""
    profile = build(reference_frame())
    with np.load(io.BytesIO(profile.to_bytes()), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(bytes(arrays["header"]).decode("utf-8"))
    assert header["version"] == 3
    header["version"] = 1
    for h in header["numeric"]:
        del h["var"], h["n_finite"]
    arrays["header"] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    old = ReferenceProfile.from_bytes(buf.getvalue())
    for name, p in profile.numeric.items():
        q = old.numeric[name]
        assert p.var is not None and q.var == pytest.approx(p.var, rel=1e-12)
    cur = current_frame()
    new_x = drift_report(profile, cur).feature("x").metrics
    old_x = drift_report(old, cur).feature("x").metrics
    assert old_x["t_p_value"] == pytest.approx(new_x["t_p_value"], rel=1e-9)


def test_report_from_bytes_equals_report_from_the_profile() -> None:
    profile = build(reference_frame())
    again = ReferenceProfile.from_bytes(profile.to_bytes())
    cur = current_frame()
    assert drift_report(profile, cur).to_dict() == drift_report(again, cur).to_dict()


def test_checking_a_batch_equals_scipy_on_the_raw_reference_frame() -> None:
    ref, cur = reference_frame(), current_frame()
    profile = ReferenceProfile.from_bytes(build(ref).to_bytes())
    report = drift_report(profile, cur, DriftConfig(min_samples=50))
    for name in ("x", "count"):
        a = ref[name].to_numpy(dtype=float)
        b = cur[name].to_numpy(dtype=float)
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        m = report.feature(name).metrics
        ks = sst.ks_2samp(a, b)
        assert m["ks"] == pytest.approx(float(ks.statistic), abs=1e-12)
        assert m["ks_p_value"] == pytest.approx(float(ks.pvalue), abs=1e-12)
        welch = sst.ttest_ind(a, b, equal_var=False)
        assert m["t_statistic"] == pytest.approx(float(welch.statistic), rel=1e-9)
        assert m["t_p_value"] == pytest.approx(float(welch.pvalue), rel=1e-9, abs=1e-15)
        f = report.feature(name)
        assert f.test == "ks+t"
        assert f.p_value == min(1.0, 2 * min(m["ks_p_value"], m["t_p_value"]))
        assert m["wasserstein"] == pytest.approx(float(sst.wasserstein_distance(a, b)), rel=1e-9)
        assert m["wasserstein_norm"] == pytest.approx(m["wasserstein"] / a.std(), rel=1e-12)
        cuts = np.unique(np.quantile(a, np.arange(1, 10) / 10))
        p = np.bincount(np.searchsorted(cuts, a), minlength=cuts.size + 1) / a.size
        q = np.bincount(np.searchsorted(cuts, b), minlength=cuts.size + 1) / b.size
        p, q = np.where(p == 0, 1e-4, p), np.where(q == 0, 1e-4, q)
        assert m["psi"] == pytest.approx(float(np.sum((q - p) * np.log(q / p))), rel=1e-12)
    for name in ("city", "code"):
        keys_ref = pd.Series(category_keys(ref[name])).dropna()
        keys_cur = pd.Series(category_keys(cur[name])).dropna()
        table = pd.crosstab(
            np.r_[np.zeros(len(keys_ref)), np.ones(len(keys_cur))],
            np.r_[keys_ref.to_numpy(), keys_cur.to_numpy()],
        ).to_numpy()
        chi2 = sst.chi2_contingency(table)
        m = report.feature(name).metrics
        assert m["chi2"] == pytest.approx(float(chi2.statistic), rel=1e-12)
        assert m["chi2_p_value"] == pytest.approx(float(chi2.pvalue), abs=1e-12)
        assert m["cramers_v"] == pytest.approx(
            float(sst.contingency.association(table, method="cramer")), rel=1e-12
        )
    assert report.feature("city").metrics["unseen_share"] == pytest.approx(
        (cur["city"] == "lima").mean()
    )
    assert report.feature("code").metrics["unseen_share"] == pytest.approx(
        (cur["code"] == 4).sum() / cur["code"].notna().sum()
    )


def test_pickle_is_never_loaded(tmp_path: Path) -> None:
    canary = tmp_path / "canary"

    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (Path.touch, (canary,))

    data = build(reference_frame(200)).to_bytes()
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(buf, "w") as dst:
        for info in src.infolist():
            if info.filename == "n0_values.npy":
                with dst.open(info.filename, "w") as f:
                    np.lib.format.write_array(
                        f, np.array([Evil()], dtype=object), allow_pickle=True
                    )
            else:
                dst.writestr(info, src.read(info))
    with pytest.raises(DataSourceError, match="not a valid reference profile"):
        ReferenceProfile.from_bytes(buf.getvalue())
    assert not canary.exists()


@pytest.mark.parametrize("garbage", [b"", b"not a zip", b"PK\x03\x04" + b"\x00" * 40])
def test_garbage_bytes_are_refused(garbage: bytes) -> None:
    with pytest.raises(DataSourceError, match="not a valid reference profile"):
        ReferenceProfile.from_bytes(garbage)


def test_tampered_profile_is_refused() -> None:
    data = build(reference_frame(300)).to_bytes()
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(buf, "w") as dst:
        for info in src.infolist():
            if info.filename == "n0_values.npy":  # unsorted values
                with dst.open(info.filename, "w") as f:
                    np.lib.format.write_array(f, np.arange(300.0)[::-1])
            else:
                dst.writestr(info, src.read(info))
    with pytest.raises(DataSourceError, match="not a valid reference profile"):
        ReferenceProfile.from_bytes(buf.getvalue())


def test_build_refuses_bad_reference_columns() -> None:
    frame = pd.DataFrame({"s": ["a", "b"], "x": [1.0, 2.0]})
    with pytest.raises(DataSourceError, match="'s' should be numeric"):
        ReferenceProfile.build(frame, ["s"])
    with pytest.raises(DataSourceError, match="no column 'y'"):
        ReferenceProfile.build(frame, ["y"])
    with pytest.raises(ValueError, match="'x' twice"):
        ReferenceProfile.build(frame, ["x"], ["x"])


def test_numeric_and_category_normalisation() -> None:
    mixed = pd.Series([1, 2.5, None, np.nan], dtype=object)
    assert np.array_equal(numeric_values(mixed), [1.0, 2.5, np.nan, np.nan], equal_nan=True)
    assert numeric_values(pd.Series(["1", "2"])) is None
    assert numeric_values(pd.Series(pd.to_datetime(["2024-01-01"]))) is None
    assert numeric_values(pd.Series([1, None], dtype="Int64")).tolist()[0] == 1.0
    assert numeric_values(pd.Series([True, False])).tolist() == [1.0, 0.0]
    keys = category_keys(pd.Series([3, 3.0, "3", 0.5, True, None, np.nan], dtype=object))
    assert keys.tolist() == ["3", "3", "3", "0.5", "True", None, None]
    assert category_keys(pd.Series([1, 2])).tolist() == ["1", "2"]
    assert category_keys(pd.Series(["a", None], dtype="string")).tolist() == ["a", None]
    assert category_keys(pd.Series(["a", "b"], dtype="category")).tolist() == ["a", "b"]


@pytest.mark.parametrize(
    "values",
    [
        [True, 1, 1.0, "1", None, math.nan, 3, 3.0, "3", pd.NA, False, 0],
        [1, 2.5, "x", None, [1], [1]],
        ["b", "a", None, "b"],
    ],
)
def test_category_keys_and_counts_follow_the_documented_keys(values: list[Any]) -> None:
    """Factorized keys equal keying each value on its own; bools never merge with 1/0."""
    series = pd.Series(values, dtype=object)
    expected = [_slow_key(v) for v in values]
    assert list(category_keys(series)) == expected
    counts, missing = column_counts(series)
    assert missing == expected.count(None)
    assert counts == pd.Series([k for k in expected if k is not None]).value_counts().to_dict()
    as_str = pd.Series([v for v in values if isinstance(v, str) or v is None], dtype="str")
    assert list(category_keys(as_str)) == [_slow_key(v) for v in as_str.tolist()]


def _slow_key(v: Any) -> str | None:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int | float) and float(v).is_integer():
        return str(int(v))
    return repr(v) if isinstance(v, float) else str(v)
