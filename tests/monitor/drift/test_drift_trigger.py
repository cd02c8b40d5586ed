"""From statistics to a retrain: significance alone never triggers, a harmful shift does.

The done-when, to the letter: 200,000 rows a side, every feature shifted by 0.01
standard deviations. With the default numeric test ``ks+t`` the shift is significant
(Welch's t, Bonferroni-combined with KS, then Benjamini-Hochberg across the three
features, below alpha 0.05) yet its effect (PSI ~ 0.0002) is far below ``min_effect``
0.2: every feature is ``no_drift`` and the drift trigger stays quiet. A shift of 0.5
standard deviations (PSI ~ 0.24) drifts every feature and fires it.

Power, honestly: the observed mean difference has a standard error of
sqrt(2/200,000) = 0.00316 sd, so at 0.01 sd t ~ N(3.16, 1); one feature's combined
p-value ``2·p_t`` is below 0.05 when |t| > 2.24, probability ~0.82 (KS alone: D ~ 0.004
against a 5% critical value of ~0.0043, power about one half). All three features at once, after
BH, hold for roughly 0.6 of the seeds; these seeds (reference 0, batch 2) are one such
draw, fixed, so the test is deterministic. No timing is asserted.
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

    assert config.numeric_test == "ks+t" and config.alpha == 0.05

    tiny = drift_report(profile, frame(0.01, seed=2), config)
    for f in tiny.features:
        assert f.test == "ks+t"
        p_ks, p_t = f.metrics["ks_p_value"], f.metrics["t_p_value"]
        assert p_ks is not None and p_t is not None
        assert f.p_value == min(1.0, 2 * min(p_ks, p_t)), f
        assert f.p_value_corrected is not None and f.p_value_corrected < config.alpha, f
        assert f.effect_name == "psi" and f.effect is not None and f.effect < 0.01, f
        assert f.status == "no_drift", f
        assert "but too small to matter" in f.reason
    quiet = decide(SPEC, TriggerContext(**base, drift=drift_evidence(tiny.to_dict())))
    assert not quiet.fire
    assert quiet.reason == "no trigger fired: drift: 0 of 3 features drifted"

    harmful = drift_report(profile, frame(0.5, seed=1), config)
    assert harmful.drifted == FEATURES
    fired = decide(SPEC, TriggerContext(**base, drift=drift_evidence(harmful.to_dict())))
    assert fired.fire and fired.kind == "drift"
    assert fired.reason == "drift: 3 of 3 features drifted (100% >= 30%)"
