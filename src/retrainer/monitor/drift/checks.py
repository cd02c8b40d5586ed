"""One feature's tests, before the correction across features decides its status.

:func:`check_numeric` and :func:`check_categorical` run every statistic on a batch
column against its profile (or settle the status early: missing column, type mismatch,
nothing usable); :func:`decide` applies the rule of :mod:`retrainer.monitor.drift.report`
once the corrected p-values are known.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from retrainer.monitor.drift.columns import (
    column_counts,
    numeric_values,
    split_special,
)
from retrainer.monitor.drift.config import DriftConfig, Status
from retrainer.monitor.drift.profile import CategoricalProfile, NumericProfile
from retrainer.monitor.drift.stats import (
    TestResult,
    align_categories,
    bin_counts,
    chi2_test,
    combined_p_value,
    js_distance,
    ks_test,
    place,
    psi,
    unseen_share,
    wasserstein,
    welch_t_test,
)

__all__ = ["FeatureCheck", "check_categorical", "check_numeric", "decide"]


@dataclass
class FeatureCheck:
    """A feature on its way to a verdict: tests done, correction pending."""

    feature: str
    kind: Literal["numeric", "categorical"]
    test: str
    effect_name: str
    min_effect: float
    status: Status | None = None  # decided before any test
    reason: str = ""
    n_reference: int = 0
    n_current: int = 0
    main: TestResult | None = None
    effect: float | None = None
    main_judged: bool = False
    special: TestResult | None = None
    special_judged: bool = False
    special_text: str = ""
    note: str = ""
    metrics: dict[str, float | None] = field(default_factory=dict)


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.3g}" if x != 0 else "0"


def _batch_column(frame: pd.DataFrame, name: str) -> pd.Series[Any] | str:
    if name not in frame.columns:
        return "the batch has no such column"
    col = frame[name]
    if isinstance(col, pd.DataFrame):
        return "the batch has more than one column of this name"
    return col


def _non_number(col: pd.Series[Any]) -> Any:
    """The first value of ``col`` that is neither missing nor a real number."""
    for v in col:
        if isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_):
            continue
        if v is None or v is pd.NA or v is pd.NaT:
            continue
        return v
    return None


def _special(
    ref: list[int], cur: list[int], labels: list[str], c: FeatureCheck, config: DriftConfig
) -> None:
    """The missing/inf test, when either side has such values."""
    for key in ("special_chi2", "special_p_value", "special_cramers_v"):
        c.metrics[key] = None
    if sum(ref[1:]) + sum(cur[1:]) == 0 or sum(ref) == 0 or sum(cur) == 0:
        return
    c.special = chi2_test(ref, cur)
    c.special_judged = min(sum(ref), sum(cur)) >= config.min_samples
    c.metrics["special_chi2"] = c.special.statistic
    c.metrics["special_p_value"] = c.special.p_value
    c.metrics["special_cramers_v"] = c.special.effect
    shares = [
        f"{label} {r / sum(ref):.1%} -> {k / sum(cur):.1%}"
        for label, r, k in zip(labels, ref[1:], cur[1:], strict=True)
        if r or k
    ]
    c.special_text = ", ".join(shares)


def check_numeric(p: NumericProfile, frame: pd.DataFrame, config: DriftConfig) -> FeatureCheck:
    effect = config.numeric_effect
    effect_name = "wasserstein_norm" if effect == "wasserstein" else effect
    c = FeatureCheck(p.name, "numeric", config.numeric_test, effect_name, config.numeric_min_effect)
    c.n_reference = p.count
    col = _batch_column(frame, p.name)
    if isinstance(col, str):
        c.status, c.reason = "missing_column", col
        return c
    values = numeric_values(col)
    if values is None:
        example = _non_number(col)
        c.status = "type_mismatch"
        c.reason = f"expected numbers, got {col.dtype} values (e.g. {example!r})"
        return c
    finite, nan, posinf, neginf = split_special(values)
    c.n_current = int(finite.size)
    ref_special = [p.count, p.n_missing, p.n_neginf, p.n_posinf]
    cur_special = [c.n_current, nan, neginf, posinf]
    for side, counts in (("reference", ref_special), ("current", cur_special)):
        rows = sum(counts)
        c.metrics[f"missing_share_{side}"] = counts[1] / rows if rows else None
        c.metrics[f"inf_share_{side}"] = (counts[2] + counts[3]) / rows if rows else None
    _special(ref_special, cur_special, ["NaN", "-inf", "+inf"], c, config)
    if len(frame) == 0 or p.n_rows == 0:
        side = "batch" if len(frame) == 0 else "reference"
        c.status, c.reason = "insufficient_data", f"the {side} is empty"
        return c
    if p.count == 0:
        c.status, c.reason = "all_missing", "the reference has no finite values"
        return c
    if finite.size == 0:
        c.status = "all_missing"
        c.reason = f"no finite values in the batch ({nan} NaN, {posinf + neginf} inf)"
        return c
    placed = place(p.sample, finite)  # sorted and searched once, for KS, W1 and PSI
    ks = ks_test(p.sample, placed)
    t = _t_test(p, finite)
    w = wasserstein(p.sample, placed, scale=p.spread)
    cuts, ref_bins = p.bins(config.psi_bins)
    cur_bins = bin_counts(cuts, placed.values, presorted=True)
    psi_r, js_r = psi(ref_bins, cur_bins), js_distance(ref_bins, cur_bins)
    c.main = _main_test(config.numeric_test, ks, t)
    if c.main is not None:
        c.test = c.main.method  # 'ks' where 'ks+t' had no computable t-test
    c.metrics.update(
        ks=ks.statistic,
        ks_p_value=ks.p_value,
        t_statistic=None if t is None else t.statistic,
        t_p_value=None if t is None else t.p_value,
        wasserstein=w.statistic,
        wasserstein_norm=w.effect,
        psi=psi_r.statistic,
        js=js_r.statistic,
    )
    by_effect = {"ks": ks, "psi": psi_r, "js": js_r, "wasserstein": w}
    c.effect = by_effect[config.numeric_effect].effect
    c.main_judged = min(p.count, c.n_current) >= config.min_samples
    if c.main is None:
        c.status = "insufficient_data"
        c.reason = "the t-test needs two values on each side and a finite variance"
    if p.constant:
        value = p.sample.values[0]
        same = bool((finite == value).all())
        c.note = f"the reference is constant ({value:g})" + (
            "; so is the batch" if same else "; the batch is not"
        )
    return c


def _t_test(p: NumericProfile, finite: Any) -> TestResult | None:
    """Welch's t-test of the batch against the profile, None where not computable."""
    location = p.location
    if location is None or finite.size < 2:
        return None
    try:
        return welch_t_test(location, finite)
    except ValueError:  # a variance that overflows
        return None


def _main_test(which: str, ks: TestResult, t: TestResult | None) -> TestResult | None:
    """The feature's test: KS, t, or both with a Bonferroni-combined p-value (D as
    the statistic and effect; t is in the metrics). None when ``t`` is asked for and
    cannot be computed."""
    if which == "ks" or (which == "ks+t" and t is None):
        return ks
    if which == "t":
        return t
    assert t is not None and ks.p_value is not None and t.p_value is not None
    p = combined_p_value([ks.p_value, t.p_value])
    return TestResult("ks+t", ks.statistic, p, ks.effect, ks.effect_name)


def check_categorical(
    p: CategoricalProfile, frame: pd.DataFrame, config: DriftConfig
) -> FeatureCheck:
    c = FeatureCheck(
        p.name, "categorical", "chi2", config.categorical_effect, config.categorical_min_effect
    )
    c.n_reference = p.count
    col = _batch_column(frame, p.name)
    if isinstance(col, str):
        c.status, c.reason = "missing_column", col
        return c
    counts, missing = column_counts(col)
    c.n_current = sum(counts.values())
    ref_special, cur_special = [p.count, p.n_missing], [c.n_current, missing]
    for side, pair in (("reference", ref_special), ("current", cur_special)):
        c.metrics[f"missing_share_{side}"] = pair[1] / sum(pair) if sum(pair) else None
    _special(ref_special, cur_special, ["missing"], c, config)
    if len(frame) == 0 or p.n_rows == 0:
        side = "batch" if len(frame) == 0 else "reference"
        c.status, c.reason = "insufficient_data", f"the {side} is empty"
        return c
    if p.count == 0:
        c.status, c.reason = "all_missing", "the reference has no non-missing values"
        return c
    if c.n_current == 0:
        c.status, c.reason = "all_missing", f"all {missing} values in the batch are missing"
        return c
    _, ref, cur = align_categories(p.categories, p.counts, counts)
    chi2 = chi2_test(ref, cur)
    psi_r, js_r = psi(ref, cur), js_distance(ref, cur)
    unseen = unseen_share(ref, cur)
    c.main = chi2
    c.metrics.update(
        chi2=chi2.statistic,
        chi2_p_value=chi2.p_value,
        cramers_v=chi2.effect,
        psi=psi_r.statistic,
        js=js_r.statistic,
        unseen_share=unseen,
    )
    c.effect = {"cramers_v": chi2, "psi": psi_r, "js": js_r}[config.categorical_effect].effect
    c.main_judged = min(p.count, c.n_current) >= config.min_samples
    if unseen > 0:
        c.note = f"{unseen:.1%} of the batch is in categories the reference never saw"
    return c


def decide(
    c: FeatureCheck, p_main: float | None, p_special: float | None, config: DriftConfig
) -> None:
    """Set ``c.status`` and ``c.reason`` from the corrected p-values."""
    if c.status is not None:
        return
    how = f"{config.correction}-corrected" if config.correction != "none" else "uncorrected"
    hits = []
    main_hit = (
        c.main_judged
        and c.effect is not None
        and p_main is not None
        and c.effect >= c.min_effect
        and p_main < config.alpha
    )
    if main_hit:
        hits.append(
            f"{c.effect_name} {_fmt(c.effect)} >= {_fmt(c.min_effect)} and {how} "
            f"p {_fmt(p_main)} < {_fmt(config.alpha)}"
        )
    if (
        c.special is not None
        and c.special_judged
        and p_special is not None
        and c.special.effect >= config.categorical_min_effect
        and p_special < config.alpha
    ):
        hits.append(
            f"missing/inf shares changed ({c.special_text}; Cramér's V "
            f"{_fmt(c.special.effect)}, {how} p {_fmt(p_special)})"
        )
    if hits:
        c.status, c.reason = "drift", "; ".join(hits)
    elif not c.main_judged:
        c.status = "insufficient_data"
        c.reason = (
            f"{min(c.n_reference, c.n_current)} usable values on a side, "
            f"fewer than min_samples {config.min_samples}"
        )
    else:
        small = c.effect is None or c.effect < c.min_effect
        why = (
            f"{c.effect_name} {_fmt(c.effect)} < {_fmt(c.min_effect)}"
            if small
            else f"{how} p {_fmt(p_main)} >= {_fmt(config.alpha)}"
        )
        if small and p_main is not None and p_main < config.alpha:
            why += f" (significant, {how} p {_fmt(p_main)}, but too small to matter)"
        c.status, c.reason = "no_drift", why
