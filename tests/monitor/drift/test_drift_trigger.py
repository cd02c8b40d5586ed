"""From statistics to a retrain: significance alone never triggers, a harmful shift does.

200,000 rows a side. A shift of 0.02 standard deviations in every feature is
significant by its KS p-value at alpha 0.05 (after Benjamini-Hochberg) yet its effect
(PSI ~ 0.0004) is far below ``min_effect``: the drift trigger stays quiet. A shift of
0.5 standard deviations (PSI ~ 0.24) drifts every feature and fires it. (At 0.01 sd the
KS test itself has too little power at this size: D ~ 0.004 against a 5% critical value
of ~0.0043, p ~ 0.1; the point, significance without harm, needs a significant shift.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from retrainer.monitor import decide
from retrainer.monitor.drift import ReferenceProfile, drift_report
from retrainer.monitor.triggers import TriggerContext
from retrainer.orchestrate.evidence import drift_config, drift_evidence
from retrainer.spec import PipelineSpec

N = 200_000
FEATURES = ["a", "b", "c"]
SPEC = PipelineSpec.model_validate(
    {
        "model": {
            "name": "toy",
            "task": "classification",
            "target": "y",
            "features": {"numeric": FEATURES},
        },
        "data": {"source": "data", "holdout": {"by": "random"}},
        "triggers": [{"drift": {"share": 0.3}}],
        "monitor": {"drift": {"alpha": 0.05, "numeric": {"effect": "psi", "min_effect": 0.2}}},
        "train": {"estimator": "sklearn.linear_model.LogisticRegression"},
    }
)


def frame(shift: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({f: rng.normal(shift, 1.0, N) for f in FEATURES})


def test_significant_but_harmless_shift_triggers_nothing_and_a_harmful_one_does() -> None:
    profile = ReferenceProfile.build(frame(0.0, seed=0), numeric=FEATURES)
    config = drift_config(SPEC)
    base = {"has_champion": True, "accepted_rows_total": N, "rows_since_last_training": N}

    tiny = drift_report(profile, frame(0.02, seed=1), config)
    for f in tiny.features:
        assert f.p_value_corrected is not None and f.p_value_corrected < config.alpha, f
        assert f.effect is not None and f.effect < 0.01, f
        assert f.status == "no_drift"
    quiet = decide(SPEC, TriggerContext(**base, drift=drift_evidence(tiny.to_dict())))
    assert not quiet.fire
    assert quiet.reason == "no trigger fired: drift: 0 of 3 features drifted"

    harmful = drift_report(profile, frame(0.5, seed=1), config)
    assert harmful.drifted == FEATURES
    fired = decide(SPEC, TriggerContext(**base, drift=drift_evidence(harmful.to_dict())))
    assert fired.fire and fired.kind == "drift"
    assert fired.reason == "drift: 3 of 3 features drifted (100% >= 30%)"
