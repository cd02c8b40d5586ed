"""The robustness gate: how much the metric drops when the inputs are perturbed.

Three perturbations of the holdout's features, each scored on its own (seeded):

- ``noise``: gaussian noise of ``noise_sd`` standard deviations (of the holdout
  column) added to every numeric feature;
- ``missing``: a ``missing_share`` of the cells of every feature set missing;
- ``swap``: a ``swap_share`` of the cells of every categorical feature replaced by
  another value seen in that column.

The drop is the metric on the clean holdout minus the metric on the perturbed one,
oriented so that positive is worse. A drop above ``max_drop`` fails the gate. A model
that raises on perturbed input (many scikit-learn estimators refuse missing values)
fails that perturbation with the model's error as the reason: set its share to 0 when
such input cannot reach the model (the contract refuses non-finite numeric features).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from retrainer.evaluate.decision import GateResult
from retrainer.evaluate.metrics import METRICS
from retrainer.evaluate.outputs import Outputs, safe_score

if TYPE_CHECKING:
    from retrainer.spec import Features, RobustnessSpec

__all__ = ["perturb", "robustness_gate"]


def perturb(
    frame: pd.DataFrame,
    kind: str,
    share: float,
    features: Features,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """A copy of ``frame`` with one perturbation (``noise``, ``missing`` or ``swap``)."""
    out = frame.copy()
    n = len(out)
    if kind == "noise":
        for col in features.numeric:
            values = out[col].to_numpy(dtype=float)
            sd = float(np.nanstd(values)) or 1.0
            out[col] = values + rng.normal(scale=share * sd, size=n)
    elif kind == "missing":
        for col in features.all:
            hit = rng.random(n) < share
            out[col] = out[col].astype(float if col in features.numeric else object).where(~hit)
    elif kind == "swap":
        for col in features.categorical:
            seen = out[col].dropna().unique()
            if len(seen) < 2:
                continue
            values = out[col].to_numpy(dtype=object).copy()
            for i in np.flatnonzero(rng.random(n) < share):  # another value than the row's own
                others = seen[seen != values[i]]
                values[i] = others[rng.integers(len(others))]
            out[col] = values
    else:
        raise ValueError(f"expected noise, missing or swap, got {kind!r}")
    return out


def robustness_gate(
    spec: RobustnessSpec,
    metric: str,
    model: Any,
    holdout: pd.DataFrame,
    y: np.ndarray[Any, Any],
    clean: float,
    features: Features,
    rng: np.random.Generator,
    *,
    champion: Any | None = None,
) -> GateResult:
    """Score ``model`` (and the champion, for context) on each configured perturbation."""
    sign = 1.0 if METRICS[metric].higher_is_better else -1.0
    plan = [
        ("noise", spec.noise_sd, bool(features.numeric)),
        ("missing", spec.missing_share, True),
        ("swap", spec.swap_share, bool(features.categorical)),
    ]
    rows: list[dict[str, Any]] = []
    champ_clean = None
    if champion is not None:
        champ_clean = safe_score(
            metric, y, Outputs(champion, holdout, features.all).for_metric(metric)
        )
    for kind, share, applies in plan:
        if share <= 0 or not applies:
            continue
        seed = int(rng.integers(2**32))
        noisy = perturb(holdout, kind, share, features, np.random.default_rng(seed))
        row: dict[str, Any] = {"perturbation": kind, "share": share, "clean": _num(clean)}
        try:
            value = safe_score(metric, y, Outputs(model, noisy, features.all).for_metric(metric))
        except Exception as exc:  # noqa: BLE001 - the model's own error is the finding
            row.update(status="fail", error=f"{type(exc).__name__}: {exc}"[:300])
            rows.append(row)
            continue
        drop = sign * (clean - value)
        row.update(perturbed=_num(value), drop=_num(drop))
        row["status"] = (
            "not_evaluable" if not np.isfinite(drop) else "fail" if drop > spec.max_drop else "pass"
        )
        if champion is not None and champ_clean is not None:
            try:
                cv = safe_score(
                    metric, y, Outputs(champion, noisy, features.all).for_metric(metric)
                )
                row["champion_drop"] = _num(sign * (champ_clean - cv))
            except Exception as exc:  # noqa: BLE001 - context only
                row["champion_error"] = f"{type(exc).__name__}: {exc}"[:300]
        rows.append(row)
    numbers = {"max_drop": spec.max_drop, "clean": _num(clean)}
    if not rows:
        return GateResult("robustness", "skipped", "no perturbation applies to these features")
    worst = max((r["drop"] for r in rows if r.get("drop") is not None), default=None)
    failed = [r for r in rows if r["status"] == "fail"]
    if failed:
        parts = [
            f"{r['perturbation']} ({r['share']}): "
            + (
                f"the model raised {r['error']}"
                if "error" in r
                else f"{metric} drops by {r['drop']:.4f} > {spec.max_drop}"
            )
            for r in failed
        ]
        return GateResult(
            "robustness",
            "fail",
            "not robust under " + "; ".join(parts),
            value=worst,
            threshold=spec.max_drop,
            numbers=numbers,
            details=tuple(rows),
        )
    if any(r["status"] == "not_evaluable" for r in rows):
        return GateResult(
            "robustness",
            "not_evaluable",
            f"{metric} could not be computed on a perturbed holdout",
            numbers=numbers,
            details=tuple(rows),
        )
    return GateResult(
        "robustness",
        "pass",
        f"{metric} drops by at most {worst:.4f} (bound {spec.max_drop}) under "
        + ", ".join(r["perturbation"] for r in rows),
        value=worst,
        threshold=spec.max_drop,
        numbers=numbers,
        details=tuple(rows),
    )


def _num(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None
