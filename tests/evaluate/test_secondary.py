"""Secondary metrics: floors, ceilings and a bootstrap non-inferiority test each."""

from __future__ import annotations

from typing import Any

import numpy as np
from evalkit import Reads, classifier, scored_frame, settings

from retrainer.evaluate import evaluate_candidate


def gates(holdout: Any, champion: bool = True, **secondary: Any) -> dict[str, Any]:
    rec = evaluate_candidate(
        Reads("b"),
        Reads("a") if champion else None,
        holdout,
        model=classifier("a", "b"),
        evaluate=settings(secondary=secondary),
        champion_version=1 if champion else None,
        rng=np.random.default_rng(0),
    )
    return {g.name: g for g in rec.gates if g.name.startswith("secondary:")}


def test_floor_and_ceiling() -> None:
    holdout = scored_frame(0, 500)
    acc = float(((holdout["b"] >= 0.5) == holdout["y"]).mean())
    out = gates(holdout, accuracy={"min": acc - 0.01}, log_loss={"max": 0.01})
    assert out["secondary:accuracy"].status == "pass" and out["secondary:accuracy"].value == acc
    assert out["secondary:log_loss"].status == "fail"
    assert "is above the maximum 0.01" in out["secondary:log_loss"].reason
    out = gates(holdout, accuracy={"min": acc + 0.01})
    assert f"accuracy {acc:.4f} is below the minimum" in out["secondary:accuracy"].reason


def test_max_drop_against_the_champion() -> None:
    holdout = scored_frame(0, 800)
    same = gates(holdout, accuracy={"max_drop": 0.0})["secondary:accuracy"]
    assert same.status == "fail"  # equal: the lower bound 0 is not above -0
    assert gates(holdout, accuracy={"max_drop": 0.01})["secondary:accuracy"].status == "pass"
    worse = holdout.copy()
    worse.loc[worse.index[:200], "b"] = 1 - worse.loc[worse.index[:200], "b"]
    g = gates(worse, f1={"max_drop": 0.05})["secondary:f1"]
    assert g.status == "fail" and "may be worse than the champion by more than 0.05" in g.reason
    assert g.ci_high is not None and g.ci_high < -0.05


def test_max_drop_without_a_champion_checks_only_the_bounds() -> None:
    g = gates(scored_frame(0, 300), champion=False, accuracy={"max_drop": 0.0})
    assert g["secondary:accuracy"].status == "pass"
