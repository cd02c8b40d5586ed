"""The slices gate: the candidate may not be worse than the champion on any slice.

A slice is the holdout rows with one value of a listed column (numeric columns are cut
into quantile bins). On each slice with at least ``min_size`` rows and a defined metric,
a paired bootstrap of the improvement (candidate over champion, positive = better)
tests "worse by more than ``margin``": its one-sided p-value is the share of resampled
improvements at or above ``-margin`` (the inversion of the percentile interval). The
p-values of all judged slices are corrected together (Holm by default), and a slice
whose corrected p-value is below ``1 - confidence`` fails the gate, by name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from retrainer.evaluate.bootstrap import resampled
from retrainer.evaluate.decision import GateResult
from retrainer.evaluate.metrics import METRICS
from retrainer.evaluate.outputs import safe_score

if TYPE_CHECKING:
    from retrainer.spec import SlicesSpec

__all__ = ["adjust_pvalues", "slice_labels", "slices_gate"]

Array = np.ndarray[Any, Any]
MISSING = "(missing)"


def slice_labels(column: pd.Series, bins: int) -> pd.Series:
    """One label per row: the value, or for a numeric column with more than ``bins``
    distinct values its quantile bin (``"(0.25, 1.7]"``); missing values are ``(missing)``."""
    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    if numeric and column.nunique() > bins:
        cut = pd.qcut(column, q=bins, duplicates="drop")
        labels = cut.map(lambda iv: f"({iv.left:.4g}, {iv.right:.4g}]", na_action="ignore")
        return labels.astype(object).where(column.notna(), MISSING)
    return column.astype(object).map(str).where(column.notna(), MISSING)


def adjust_pvalues(p: Array, method: str) -> Array:
    """Holm, Bonferroni or Benjamini-Hochberg adjusted p-values (``none``: unchanged)."""
    p = np.asarray(p, dtype=float)
    m = len(p)
    if m == 0 or method == "none":
        return np.asarray(p)
    if method == "bonferroni":
        return np.asarray(np.minimum(1.0, p * m))
    order = np.argsort(p)
    ranked = p[order]
    if method == "holm":
        adj = np.maximum.accumulate((m - np.arange(m)) * ranked)
    elif method == "bh":
        adj = np.minimum.accumulate(m / np.arange(m, 0, -1) * ranked[::-1])[::-1]
    else:
        raise ValueError(f"correction: expected holm, bonferroni, bh or none, got {method!r}")
    out = np.empty(m)
    out[order] = np.minimum(1.0, adj)
    return out


def slices_gate(
    spec: SlicesSpec,
    metric: str,
    holdout: pd.DataFrame,
    y: Array,
    candidate: Array,
    champion: Array | None,
    *,
    resamples: int,
    confidence: float,
    rng: np.random.Generator,
) -> GateResult:
    """Judge every slice of ``spec.columns``; ``champion`` None means no champion yet."""
    missing = [c for c in spec.columns if c not in holdout.columns]
    if missing:
        return GateResult(
            "slices",
            "not_evaluable",
            f"slice column(s) not in the holdout: {', '.join(missing)}",
        )
    sign = 1.0 if METRICS[metric].higher_is_better else -1.0
    alpha = 1.0 - confidence
    rows: list[dict[str, Any]] = []
    for column in spec.columns:
        labels = slice_labels(holdout[column].reset_index(drop=True), spec.bins)
        for value in sorted(labels.unique(), key=str):
            idx = np.flatnonzero((labels == value).to_numpy())
            rows.append(
                _slice_row(
                    spec,
                    metric,
                    sign,
                    alpha,
                    column,
                    value,
                    idx,
                    y,
                    candidate,
                    champion,
                    resamples=resamples,
                    rng=rng,
                )
            )
    judged = [r for r in rows if r["p_value"] is not None]
    for r, p in zip(
        judged,
        adjust_pvalues(np.array([r["p_value"] for r in judged]), spec.correction),
        strict=True,
    ):
        r["p_adjusted"] = float(p)
        r["status"] = "fail" if p < alpha else "pass"
    numbers = {
        "margin": spec.margin,
        "min_size": spec.min_size,
        "bins": spec.bins,
        "correction": spec.correction,
        "alpha": alpha,
        "judged": len(judged),
        "slices": len(rows),
    }
    not_judged = len(rows) - len(judged)
    aside = (
        f"; {not_judged} slice(s) not judged (too small or metric undefined)" if not_judged else ""
    )
    if champion is None:
        return GateResult(
            "slices",
            "skipped",
            "no champion to compare slices with",
            numbers=numbers,
            details=tuple(rows),
        )
    empty = [
        c
        for c in spec.columns
        if not any(r["column"] == c and r["p_value"] is not None for r in rows)
    ]
    failed = [r for r in judged if r["status"] == "fail"]
    if failed:
        named = "; ".join(
            f"{r['slice']} ({metric} {r['candidate']:.4f} vs champion "
            f"{r['champion']:.4f}, {r['rows']} rows, adjusted p={r['p_adjusted']:.3g})"
            for r in failed
        )
        return GateResult(
            "slices",
            "fail",
            f"worse than the champion by more than {spec.margin} on {len(failed)} "
            f"slice(s): {named}{aside}",
            value=float(len(failed)),
            threshold=0.0,
            numbers=numbers,
            details=tuple(rows),
        )
    if empty:
        return GateResult(
            "slices",
            "not_evaluable",
            f"no slice of {', '.join(empty)} has at least {spec.min_size} rows with a defined "
            f"{metric}: the slices could not be judged",
            numbers=numbers,
            details=tuple(rows),
        )
    return GateResult(
        "slices",
        "pass",
        f"not worse than the champion by more than {spec.margin} on any of {len(judged)} "
        f"slices ({spec.correction} correction){aside}",
        value=0.0,
        threshold=0.0,
        numbers=numbers,
        details=tuple(rows),
    )


def _slice_row(
    spec: SlicesSpec,
    metric: str,
    sign: float,
    alpha: float,
    column: str,
    value: Any,
    idx: Array,
    y: Array,
    candidate: Array,
    champion: Array | None,
    *,
    resamples: int,
    rng: np.random.Generator,
) -> dict[str, Any]:
    ys, cs = y[idx], candidate[idx]
    cand = safe_score(metric, ys, cs)
    row: dict[str, Any] = {
        "column": column,
        "slice": f"{column}={value}",
        "value": str(value),
        "rows": len(idx),
        "candidate": _num(cand),
        "champion": None,
        "improvement": None,
        "ci_low": None,
        "ci_high": None,
        "p_value": None,
        "p_adjusted": None,
        "status": "not_judged",
    }
    if champion is None:
        return row
    hs = champion[idx]
    champ = safe_score(metric, ys, hs)
    row["champion"] = _num(champ)
    if len(idx) < spec.min_size:
        row["status"] = "too_small"
        return row
    if not (np.isfinite(cand) and np.isfinite(champ)):
        row["status"] = "undefined"
        return row
    cand_r, champ_r = resampled(metric, ys, [cs, hs], resamples=resamples, rng=rng)
    diffs = sign * (cand_r - champ_r)
    diffs = diffs[np.isfinite(diffs)]
    if len(diffs) == 0:
        row["status"] = "undefined"
        return row
    lo, hi = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    row.update(
        improvement=float(sign * (cand - champ)),
        ci_low=float(lo),
        ci_high=float(hi),
        p_value=float((1 + np.count_nonzero(diffs >= -spec.margin)) / (len(diffs) + 1)),
    )
    return row


def _num(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None
