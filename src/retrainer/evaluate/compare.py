"""Champion versus candidate on the same holdout rows, judged by the spec's gates.

:func:`evaluate_candidate` is the one entry point: it scores both models once per kind
of output, runs every configured gate in order (``scores``, ``min_metric``,
``vs_champion``, ``secondary:<metric>``, ``slices``, ``fairness``, ``robustness``,
``servability``) and returns the :class:`DecisionRecord`, with what the report plots in
``extra`` (``curves``, ``champion_holdouts``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from retrainer.evaluate.bootstrap import paired_bootstrap
from retrainer.evaluate.curves import classifier_curves, residual_sample
from retrainer.evaluate.decision import DecisionRecord, GateResult
from retrainer.evaluate.fairness import fairness_gate
from retrainer.evaluate.holdout import champion_on_holdouts, check_holdout
from retrainer.evaluate.mcnemar import mcnemar_from_predictions
from retrainer.evaluate.metrics import METRICS
from retrainer.evaluate.outputs import Outputs, model_output, positive_label, safe_score
from retrainer.evaluate.robustness import robustness_gate
from retrainer.evaluate.secondary import secondary_gate
from retrainer.evaluate.servability import StoredArtifact, servability_gate
from retrainer.evaluate.slices import slices_gate

if TYPE_CHECKING:
    from retrainer.spec import EvaluateSection, ModelSection

__all__ = ["evaluate_candidate", "model_output"]

Array = np.ndarray[Any, Any]


def evaluate_candidate(
    candidate: Any,
    champion: Any | None,
    holdout: pd.DataFrame,
    *,
    model: ModelSection,
    evaluate: EvaluateSection,
    champion_version: int | None,
    rng: np.random.Generator,
    champion_holdout: pd.DataFrame | None = None,
    artifact: StoredArtifact | None = None,
) -> DecisionRecord:
    """Score both on ``holdout`` and apply the gates; the champion may be None (first version).

    ``champion_holdout`` is the holdout the champion was judged on when it was trained
    (to tell "the world changed" from "the candidate is bad"); ``artifact`` is the
    candidate's stored artifact, for the servability gate (skipped without it).
    Raises EvaluationError when the holdout is too small for ``evaluate.confidence``;
    prediction errors of either model propagate.
    """
    name, feats = evaluate.metric, list(model.features.all)
    y = holdout[model.target].to_numpy()
    check_holdout(y, model.task, evaluate.confidence)
    cand = Outputs(candidate, holdout, feats)
    champ = None if champion is None else Outputs(champion, holdout, feats)
    cand_out = cand.for_metric(name)
    cand_value = safe_score(name, y, cand_out)
    gates = [_finite_gate(name, cand_value)]
    if evaluate.min_metric is not None:
        gates.append(_floor_gate(name, cand_value, evaluate.min_metric))
    extra: dict[str, Any] = {}
    champ_value: float | None = None
    if champ is None:
        gates.append(
            GateResult(
                "vs_champion", "skipped", "no champion yet: the first version is judged on its own"
            )
        )
    else:
        champ_out = champ.for_metric(name)
        champ_value = safe_score(name, y, champ_out)
        gates.append(
            _vs_champion(
                evaluate, model, y, cand, champ, cand_value, champ_value, champion_version, rng
            )
        )
        if champion_holdout is not None:
            extra["champion_holdouts"] = _world(
                evaluate, model, champion, champion_holdout, y, champ_out, rng
            )
            gates[-1] = _with_world(gates[-1], extra["champion_holdouts"])
    for sname, limits in evaluate.secondary.items():
        gates.append(
            secondary_gate(
                sname,
                limits,
                y,
                cand,
                champ,
                resamples=evaluate.bootstrap_resamples,
                confidence=evaluate.confidence,
                rng=rng,
            )
        )
    if evaluate.slices is not None:
        gates.append(
            slices_gate(
                evaluate.slices,
                name,
                holdout,
                y,
                cand_out,
                None if champ is None else champ.for_metric(name),
                resamples=evaluate.bootstrap_resamples,
                confidence=evaluate.confidence,
                rng=rng,
            )
        )
    if evaluate.fairness is not None:
        labels = cand.get("label") if model.task == "classification" else None
        champ_pair = None
        if champ is not None:
            champ_pair = (
                champ.get("label") if model.task == "classification" else None,
                champ.for_metric(name),
            )
        gates.append(
            fairness_gate(
                evaluate.fairness, name, holdout, y, labels, cand_out, champion=champ_pair
            )
        )
    if evaluate.robustness is not None:
        gates.append(
            robustness_gate(
                evaluate.robustness,
                name,
                candidate,
                holdout,
                y,
                cand_value,
                model.features,
                rng,
                champion=champion,
            )
        )
    if evaluate.servability is not None:
        gates.append(servability_gate(evaluate.servability, artifact, candidate, holdout[feats]))
    extra.update(_plots(model, y, cand, champ, rng))
    return DecisionRecord(
        name,
        cand_value,
        champ_value,
        champion_version,
        len(holdout),
        tuple(gates),
        extra=extra,
    )


def _finite_gate(name: str, value: float) -> GateResult:
    if np.isfinite(value):
        return GateResult("scores", "pass", f"{name} on the holdout is {value:.4f}", value=value)
    return GateResult(
        "scores", "not_evaluable", f"{name} could not be computed on the holdout ({value})"
    )


def _floor_gate(name: str, value: float, floor: float) -> GateResult:
    higher = METRICS[name].higher_is_better
    ok = bool(value >= floor if higher else value <= floor)
    word = "at least" if higher else "at most"
    return GateResult(
        "min_metric",
        "pass" if ok else "fail",
        f"{name} {value:.4f} is {'' if ok else 'not '}{word} the floor {floor}",
        value=value,
        threshold=floor,
    )


def _vs_champion(
    evaluate: EvaluateSection,
    model: ModelSection,
    y: Array,
    cand: Outputs,
    champ: Outputs,
    cand_value: float,
    champ_value: float,
    version: int | None,
    rng: np.random.Generator,
) -> GateResult:
    name = evaluate.metric
    if not (np.isfinite(cand_value) and np.isfinite(champ_value)):
        who = "the candidate" if not np.isfinite(cand_value) else "the champion"
        return GateResult(
            "vs_champion",
            "not_evaluable",
            f"{name} of {who} could not be computed on the holdout: the two cannot be compared",
        )
    observed, lo, hi = paired_bootstrap(
        name,
        y,
        champ.for_metric(name),
        cand.for_metric(name),
        resamples=evaluate.bootstrap_resamples,
        confidence=evaluate.confidence,
        rng=rng,
    )
    gate = _champion_gate(evaluate, name, cand_value, champ_value, observed, lo, hi, version)
    if model.task == "classification":
        test = mcnemar_from_predictions(y, champ.get("label"), cand.get("label"))
        gate = GateResult(**{**gate.__dict__, "numbers": {**gate.numbers, "mcnemar": test}})
    return gate


def _world(
    evaluate: EvaluateSection,
    model: ModelSection,
    champion: Any,
    original: pd.DataFrame,
    y: Array,
    champ_out: Array,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """The champion on its own holdout vs on the new one (see holdout.champion_on_holdouts)."""
    feats = list(model.features.all)
    lacking = [c for c in [*feats, model.target] if c not in original.columns]
    if lacking:
        return {"verdict": "unknown", "reason": f"its holdout lacks {', '.join(lacking)}"}
    y0 = original[model.target].to_numpy()
    try:
        o0 = Outputs(champion, original, feats).for_metric(evaluate.metric)
    except Exception as exc:  # noqa: BLE001 - a diagnosis only: it must not fail the candidate
        return {"verdict": "unknown", "reason": f"the champion could not score its holdout: {exc}"}
    return champion_on_holdouts(
        evaluate.metric,
        (y0, o0),
        (y, champ_out),
        resamples=evaluate.bootstrap_resamples,
        confidence=evaluate.confidence,
        rng=rng,
    )


def _with_world(gate: GateResult, world: dict[str, Any]) -> GateResult:
    """Add to a blocking vs_champion gate whether the world or the candidate is to blame."""
    numbers = {**gate.numbers, "champion_holdouts": world["verdict"]}
    reason = gate.reason
    if gate.status == "fail" and world["verdict"] == "world_changed":
        reason += f"; {world['reason']}, so both may be out of date"
    elif gate.status == "fail" and world["verdict"] == "stable":
        reason += f"; {world['reason']}, so the candidate is the problem"
    return GateResult(**{**gate.__dict__, "numbers": numbers, "reason": reason})


def _plots(
    model: ModelSection, y: Array, cand: Outputs, champ: Outputs | None, rng: np.random.Generator
) -> dict[str, Any]:
    """``curves`` (ROC/PR of binary classifiers with predict_proba) or ``residuals``."""
    who = {"candidate": cand} if champ is None else {"candidate": cand, "champion": champ}
    if model.task == "regression":
        return {"residuals": residual_sample(y, {k: o.get("value") for k, o in who.items()}, rng)}
    if not all(hasattr(o.model, "predict_proba") for o in who.values()):
        return {}
    try:
        scores = {k: o.get("proba") for k, o in who.items()}
    except (AttributeError, ValueError, NotImplementedError):  # e.g. SVC(probability=False)
        return {}
    curves = classifier_curves(y, scores, positive_label(y))
    return {"curves": curves} if curves else {}


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
