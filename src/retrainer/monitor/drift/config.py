"""How drift is judged: :class:`DriftConfig`, and the statuses a feature can get.

The rule itself is described in :mod:`retrainer.monitor.drift.report`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from retrainer.monitor.drift.stats import Correction

__all__ = [
    "STATUSES",
    "CategoricalEffect",
    "DriftConfig",
    "NumericEffect",
    "NumericTest",
    "Status",
]


Status = Literal[
    "drift", "no_drift", "insufficient_data", "type_mismatch", "all_missing", "missing_column"
]
STATUSES: tuple[Status, ...] = (
    "drift",
    "no_drift",
    "insufficient_data",
    "type_mismatch",
    "all_missing",
    "missing_column",
)
NumericEffect = Literal["ks", "psi", "js", "wasserstein"]
CategoricalEffect = Literal["cramers_v", "psi", "js"]
NumericTest = Literal["ks", "t", "ks+t"]
_NUMERIC_TESTS = ("ks", "t", "ks+t")
_NUMERIC_EFFECTS = ("ks", "psi", "js", "wasserstein")
_CATEGORICAL_EFFECTS = ("cramers_v", "psi", "js")


@dataclass(frozen=True)
class DriftConfig:
    """How drift is judged (see the module docstring for the rule).

    Attributes:
        alpha: Significance level for the corrected p-values, in (0, 1).
        correction: ``bh`` (Benjamini-Hochberg), ``bonferroni`` or ``none``.
        min_samples: Usable values needed on each side to judge a feature.
        numeric_test: The significance test of a numeric feature: ``ks``
            (Kolmogorov-Smirnov, any change of distribution), ``t`` (Welch's t-test, a
            change of mean) or ``ks+t`` (both; the feature's p-value is their Bonferroni
            combination ``min(1, 2·min(p_ks, p_t))``, valid under the null whatever their
            dependence). KS alone has little power against a small location shift in
            large samples; the t-test has little against a change of shape at the same
            mean. Where the t-test cannot be computed (fewer than two values on a side,
            an overflowing variance), ``ks+t`` uses KS alone and ``t`` leaves the
            feature unjudged.
        numeric_effect: ``psi``, ``ks`` (D), ``js`` or ``wasserstein`` (W1 / reference
            std; IQR if the std overflowed).
        numeric_min_effect: The numeric effect that counts as drift (PSI 0.2 is the
            customary "significant shift").
        categorical_effect: ``cramers_v``, ``psi`` or ``js``.
        categorical_min_effect: The categorical effect (and the missing/inf test's
            Cramér's V) that counts as drift.
        psi_bins: Quantile bins of the reference for PSI and JS on numeric features.
        domain_classifier: Also fit the reference-vs-current classifier.
        domain_max_rows: At most this many rows per side for it.
        folds: Its cross-validation folds.
        seed: Its sampling and model seed.
    """

    alpha: float = 0.01
    correction: Correction = "bh"
    min_samples: int = 200
    numeric_test: NumericTest = "ks+t"
    numeric_effect: NumericEffect = "psi"
    numeric_min_effect: float = 0.2
    categorical_effect: CategoricalEffect = "cramers_v"
    categorical_min_effect: float = 0.1
    psi_bins: int = 10
    domain_classifier: bool = False
    domain_max_rows: int = 20_000
    folds: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if not 0.0 < self.alpha < 1.0:
            problems.append(f"alpha in (0, 1), got {self.alpha!r}")
        if self.correction not in ("bh", "bonferroni", "none"):
            problems.append(f"correction 'bh', 'bonferroni' or 'none', got {self.correction!r}")
        if self.min_samples < 1:
            problems.append(f"min_samples >= 1, got {self.min_samples!r}")
        if self.numeric_test not in _NUMERIC_TESTS:
            problems.append(
                f"numeric_test in {', '.join(_NUMERIC_TESTS)}, got {self.numeric_test!r}"
            )
        if self.numeric_effect not in _NUMERIC_EFFECTS:
            problems.append(
                f"numeric_effect in {', '.join(_NUMERIC_EFFECTS)}, got {self.numeric_effect!r}"
            )
        if self.categorical_effect not in _CATEGORICAL_EFFECTS:
            problems.append(
                f"categorical_effect in {', '.join(_CATEGORICAL_EFFECTS)}, "
                f"got {self.categorical_effect!r}"
            )
        for name in ("numeric_min_effect", "categorical_min_effect"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                problems.append(f"{name} >= 0, got {value!r}")
        if self.psi_bins < 2:
            problems.append(f"psi_bins >= 2, got {self.psi_bins!r}")
        if self.domain_max_rows < 2 or self.folds < 2:
            problems.append(
                f"domain_max_rows >= 2 and folds >= 2, got {self.domain_max_rows!r}, {self.folds!r}"
            )
        if problems:
            raise ValueError("DriftConfig: expected " + "; ".join(problems))
