"""Champion versus candidate on the same holdout rows, judged by the spec's gates."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from retrainer.evaluate.bootstrap import paired_bootstrap
from retrainer.evaluate.decision import DecisionRecord, GateResult
from retrainer.evaluate.metrics import METRICS, score

if TYPE_CHECKING:
    from retrainer.spec import EvaluateSection, ModelSection

__all__ = ["evaluate_candidate", "model_output"]


def model_output(
    model: Any, frame: pd.DataFrame, metric: str, features: list[str]
) -> np.ndarray[Any, Any]:
    """What ``metric`` scores: positive-class probability, class label or value."""
    X = frame[features]
    if METRICS[metric].uses == "proba":
        proba = np.asarray(model.predict_proba(X))
        return proba[:, 1] if proba.shape[1] == 2 else proba
    return np.asarray(model.predict(X))


def evaluate_candidate(
    candidate: Any,
    champion: Any | None,
    holdout: pd.DataFrame,
    *,
    model: ModelSection,
    evaluate: EvaluateSection,
    champion_version: int | None,
    rng: np.random.Generator,
) -> DecisionRecord:
    """Score both on ``holdout`` and apply the gates; the champion may be None (first version)."""
    name = evaluate.metric
    info = METRICS[name]
    feats = list(model.features.all)
    y = holdout[model.target].to_numpy()
    cand_out = model_output(candidate, holdout, name, feats)
    cand = _score(name, y, cand_out)
    gates = [_finite_gate(name, cand)]
    if evaluate.min_metric is not None:
        ok = cand >= evaluate.min_metric if info.higher_is_better else cand <= evaluate.min_metric
        word = "at least" if info.higher_is_better else "at most"
        gates.append(
            GateResult(
                "min_metric",
                "pass" if ok else "fail",
                f"{name} {cand:.4f} is {'' if ok else 'not '}{word} "
                f"the floor {evaluate.min_metric}",
                value=cand,
                threshold=evaluate.min_metric,
            )
        )
    champ: float | None = None
    if champion is None:
        gates.append(
            GateResult(
                "vs_champion", "skipped", "no champion yet: the first version is judged on its own"
            )
        )
    else:
        champ_out = model_output(champion, holdout, name, feats)
        champ = _score(name, y, champ_out)
        observed, lo, hi = paired_bootstrap(
            name,
            y,
            champ_out,
            cand_out,
            resamples=evaluate.bootstrap_resamples,
            confidence=evaluate.confidence,
            rng=rng,
        )
        gates.append(
            _champion_gate(evaluate, name, cand, champ, observed, lo, hi, champion_version)
        )
    return DecisionRecord(name, cand, champ, champion_version, len(holdout), tuple(gates))


def _score(name: str, y: np.ndarray[Any, Any], out: np.ndarray[Any, Any]) -> float:
    """The metric, or NaN where it is undefined (e.g. log_loss on a one-class holdout)."""
    try:
        return score(name, y, out)
    except ValueError:
        return float("nan")


def _finite_gate(name: str, value: float) -> GateResult:
    if np.isfinite(value):
        return GateResult("scores", "pass", f"{name} on the holdout is {value:.4f}", value=value)
    return GateResult(
        "scores", "not_evaluable", f"{name} could not be computed on the holdout ({value})"
    )


def _champion_gate(
    evaluate: EvaluateSection,
    name: str,
    cand: float,
    champ: float,
    observed: float,
    lo: float,
    hi: float,
    version: int | None,
) -> GateResult:
    pct = f"{evaluate.confidence:.0%}"
    numbers = {
        "candidate": cand,
        "champion": champ,
        "improvement": observed,
        "ci_low": lo,
        "ci_high": hi,
        "confidence": evaluate.confidence,
        "mode": evaluate.mode,
        "margin": evaluate.margin,
        "resamples": evaluate.bootstrap_resamples,
    }
    base = (
        f"{name} {cand:.4f} vs champion v{version} {champ:.4f} "
        f"(improvement {observed:+.4f}, {pct} CI [{lo:+.4f}, {hi:+.4f}])"
    )
    if evaluate.mode == "superiority":
        ok = lo > evaluate.margin
        verdict = (
            "better than the champion" if ok else f"not shown better by more than {evaluate.margin}"
        )
    else:
        ok = lo > -evaluate.margin
        verdict = (
            "not worse than the champion beyond the margin"
            if ok
            else f"may be worse than the champion by more than {evaluate.margin}"
        )
    threshold = evaluate.margin if evaluate.mode == "superiority" else -evaluate.margin
    return GateResult(
        "vs_champion",
        "pass" if ok else "fail",
        f"{base}: {verdict}",
        value=observed,
        threshold=threshold,
        ci_low=lo,
        ci_high=hi,
        numbers=numbers,
    )
