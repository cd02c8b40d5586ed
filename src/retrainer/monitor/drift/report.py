"""Drift of a batch against a reference profile: per-feature verdicts, one report.

The rule (:func:`drift_report`): a feature **drifts** only when

1. both sides have at least ``min_samples`` usable values (finite numbers, non-missing
   categories),
2. its effect size (``numeric_effect`` / ``categorical_effect``) reaches the
   ``*_min_effect`` threshold, and
3. its test (KS for numeric, chi-square for categorical) is significant: the p-value,
   corrected across the family of tests in the report (``correction``), is below
   ``alpha``.

A large batch makes tiny, harmless shifts significant; the effect threshold keeps them
from counting as drift. **Missing and infinite values** are compared too: when either
side has any, the counts of [finite, NaN, -inf, +inf] values (numeric) or [present,
missing] (categorical) form a second chi-square test in the same corrected family; it
marks the feature drifted when its Cramér's V reaches ``categorical_min_effect`` and its
corrected p-value is below ``alpha`` (with ``min_samples`` rows on each side). The KS,
Wasserstein, PSI and JS statistics use the finite values only.

Every feature gets one status; bad input never raises and never reads as ``no_drift``:

===================== ========================================================
``drift``             the rule above holds
``no_drift``          tested, and the rule does not hold
``insufficient_data`` fewer than ``min_samples`` usable values on a side (an empty
                      batch or reference)
``type_mismatch``     a numeric feature whose batch column holds non-numbers
                      (strings, dates): never coerced to NaN
``all_missing``       no usable value at all on one side (all NaN/inf, or all null)
``missing_column``    the batch has no such column
===================== ========================================================

A **constant reference** has three PSI bins: below, at and above its value. A batch
at another constant puts all its mass in a bin the reference left empty: PSI =
2·(1-1e-4)·ln(1e4) ≈ 18.4, JS = 1, KS = 1, and the normalised Wasserstein distance is
infinite (the reference has no spread); the same constant is PSI = KS = 0, no drift.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from retrainer.monitor.drift.checks import FeatureCheck, check_categorical, check_numeric, decide
from retrainer.monitor.drift.columns import category_keys, numeric_values
from retrainer.monitor.drift.config import (
    STATUSES,
    CategoricalEffect,
    DriftConfig,
    NumericEffect,
    Status,
)
from retrainer.monitor.drift.domain import DomainClassifierResult, domain_classifier
from retrainer.monitor.drift.profile import ReferenceProfile
from retrainer.monitor.drift.stats import correct_pvalues

__all__ = [
    "STATUSES",
    "CategoricalEffect",
    "DriftConfig",
    "DriftReport",
    "FeatureDrift",
    "NumericEffect",
    "Status",
    "drift_report",
]


def _clean(value: Any) -> Any:
    """JSON-ready: NaN and ±inf become None, numpy scalars Python ones, recursively."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class FeatureDrift:
    """The verdict on one feature, with the numbers behind it.

    Attributes:
        reason: Why the status, in plain words with the numbers behind it.
        test / statistic / p_value: The main test (``ks`` or ``chi2``) on usable values.
        p_value_corrected: Its p-value after the correction; None when not judged.
        effect_name / effect / min_effect: The effect size compared with its threshold.
        n_reference / n_current: Usable values on each side.
        note: What else is worth knowing (unseen categories, a constant reference).
        metrics: Every statistic computed (KS, Wasserstein, normalised Wasserstein,
            PSI, JS; chi-square, Cramér's V, PSI, JS, unseen share; missing and inf
            shares and their test), None where not computable.
    """

    feature: str
    kind: Literal["numeric", "categorical"]
    status: Status
    reason: str
    test: str
    statistic: float | None
    p_value: float | None
    p_value_corrected: float | None
    effect_name: str
    effect: float | None
    min_effect: float
    n_reference: int
    n_current: int
    note: str = ""
    metrics: dict[str, float | None] = field(default_factory=dict)

    @property
    def drifted(self) -> bool:
        """Whether the status is ``drift``."""
        return self.status == "drift"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN and ±inf as None)."""
        out: dict[str, Any] = _clean(asdict(self))
        return out


@dataclass(frozen=True)
class DriftReport:
    """Per-feature drift verdicts of one batch, and the domain classifier's AUC.

    ``share_drifted`` is the drifted share of *all* features checked (a feature that
    could not be judged counts as not drifted); ``n_evaluated`` says how many were
    judged (status ``drift`` or ``no_drift``).
    """

    features: tuple[FeatureDrift, ...]
    config: DriftConfig
    n_reference_rows: int
    n_current_rows: int
    domain: DomainClassifierResult | None = None
    domain_note: str | None = None

    @property
    def drifted(self) -> list[str]:
        """Names of the features with status ``drift``, in report order."""
        return [f.feature for f in self.features if f.drifted]

    @property
    def share_drifted(self) -> float:
        """Drifted features / features checked (0 with no features)."""
        return len(self.drifted) / len(self.features) if self.features else 0.0

    @property
    def n_evaluated(self) -> int:
        """Features judged: status ``drift`` or ``no_drift``."""
        return sum(f.status in ("drift", "no_drift") for f in self.features)

    @property
    def problems(self) -> dict[str, Status]:
        """Features that could not be judged, with their status."""
        return {f.feature: f.status for f in self.features if f.status not in ("drift", "no_drift")}

    @property
    def domain_auc(self) -> float | None:
        """The domain classifier's cross-validated ROC AUC, when it ran."""
        return None if self.domain is None else self.domain.auc

    def feature(self, name: str) -> FeatureDrift:
        """The verdict on ``name`` (KeyError if it was not checked)."""
        for f in self.features:
            if f.feature == name:
                return f
        raise KeyError(name)

    def summary(self) -> str:
        """One line: how many features drifted."""
        n = len(self.features)
        line = f"{len(self.drifted)} of {n} features drifted ({self.share_drifted:.0%})"
        if self.problems:
            line += f"; {len(self.problems)} not judged"
        return line

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN and ±inf as None)."""
        domain = None if self.domain is None else asdict(self.domain)
        out: dict[str, Any] = _clean(
            {
                "drifted": self.drifted,
                "share_drifted": self.share_drifted,
                "n_features": len(self.features),
                "n_evaluated": self.n_evaluated,
                "summary": self.summary(),
                "n_reference_rows": self.n_reference_rows,
                "n_current_rows": self.n_current_rows,
                "domain_auc": self.domain_auc,
                "domain": domain,
                "domain_note": self.domain_note,
                "config": asdict(self.config),
                "features": [f.to_dict() for f in self.features],
            }
        )
        return out

    def to_frame(self) -> pd.DataFrame:
        """One row per feature: the verdict columns, then every metric."""
        rows = []
        for f in self.features:
            row = {k: v for k, v in asdict(f).items() if k != "metrics"}
            row.update(f.metrics)
            rows.append(row)
        columns = [k for k in FeatureDrift.__dataclass_fields__ if k != "metrics"]
        frame = pd.DataFrame(rows)
        if frame.empty:
            return pd.DataFrame(columns=columns)
        return frame


def _finish(c: FeatureCheck, p_main: float | None, p_special: float | None) -> FeatureDrift:
    c.metrics["special_p_value_corrected"] = p_special
    return FeatureDrift(
        feature=c.feature,
        kind=c.kind,
        status=c.status or "no_drift",
        reason=c.reason,
        test=c.test,
        statistic=None if c.main is None else c.main.statistic,
        p_value=None if c.main is None else c.main.p_value,
        p_value_corrected=p_main,
        effect_name=c.effect_name,
        effect=c.effect,
        min_effect=c.min_effect,
        n_reference=c.n_reference,
        n_current=c.n_current,
        note=c.note,
        metrics=c.metrics,
    )


def _domain(
    profile: ReferenceProfile,
    current: pd.DataFrame,
    checks: Iterable[FeatureCheck],
    config: DriftConfig,
    reference_frame: pd.DataFrame | None,
) -> tuple[DomainClassifierResult | None, str | None]:
    usable = [c for c in checks if c.status not in ("missing_column", "type_mismatch")]
    numeric = [c.feature for c in usable if c.kind == "numeric"]
    categorical = [c.feature for c in usable if c.kind == "categorical"]
    if not numeric and not categorical:
        return None, "no usable columns for the domain classifier"
    if reference_frame is not None:
        missing = [n for n in [*numeric, *categorical] if n not in reference_frame.columns]
        if missing:
            return None, f"the reference frame lacks {', '.join(map(repr, missing))}"
        reference = _normalised(reference_frame, numeric, categorical)
        if reference is None:
            return None, "the reference frame holds non-numbers in a numeric column"
    elif len(profile.sample):
        reference = profile.sample[[*numeric, *categorical]]
    else:
        return None, "no reference rows: the profile keeps no sample and no frame was given"
    batch = _normalised(current, numeric, categorical)
    assert batch is not None  # numeric columns were checked above
    if min(len(reference), len(batch)) < max(config.min_samples, config.folds):
        return None, (
            f"too few rows for the domain classifier ({len(reference)} reference, "
            f"{len(batch)} current; min_samples {config.min_samples})"
        )
    result = domain_classifier(
        reference,
        batch,
        numeric=numeric,
        categorical=categorical,
        max_rows=config.domain_max_rows,
        folds=config.folds,
        seed=config.seed,
    )
    return result, None


def _normalised(
    frame: pd.DataFrame, numeric: list[str], categorical: list[str]
) -> pd.DataFrame | None:
    cols: dict[str, Any] = {}
    for name in numeric:
        values = numeric_values(frame[name])
        if values is None:
            return None
        cols[name] = values
    for name in categorical:
        cols[name] = pd.Series(category_keys(frame[name]), dtype=object)
    return pd.DataFrame(cols, index=pd.RangeIndex(len(frame)))


def drift_report(
    profile: ReferenceProfile,
    current: pd.DataFrame,
    config: DriftConfig | None = None,
    *,
    reference_frame: pd.DataFrame | None = None,
) -> DriftReport:
    """Judge every feature of ``profile`` on the batch ``current``.

    Costs ``O(batch · log reference)`` (the reference is only read through the
    profile). With ``config.domain_classifier`` the classifier uses ``reference_frame``
    when given, else the profile's row sample. Never raises on bad batch data: each
    problem becomes the feature's status (see the module docstring).
    """
    config = config or DriftConfig()
    checks = [check_numeric(p, current, config) for p in profile.numeric.values()]
    checks += [check_categorical(p, current, config) for p in profile.categorical.values()]
    family: list[tuple[int, str, float]] = []
    for i, c in enumerate(checks):
        if c.status is None and c.main_judged and c.main is not None and c.main.p_value is not None:
            family.append((i, "main", c.main.p_value))
        if c.status is None and c.special is not None and c.special_judged:
            assert c.special.p_value is not None
            family.append((i, "special", c.special.p_value))
    corrected = correct_pvalues([p for _, _, p in family], config.correction)
    adjusted: dict[tuple[int, str], float] = {
        (i, kind): float(q) for (i, kind, _), q in zip(family, corrected, strict=True)
    }
    features = []
    for i, c in enumerate(checks):
        p_main, p_special = adjusted.get((i, "main")), adjusted.get((i, "special"))
        decide(c, p_main, p_special, config)
        features.append(_finish(c, p_main, p_special))
    domain, note = None, None
    if config.domain_classifier:
        domain, note = _domain(profile, current, checks, config, reference_frame)
    return DriftReport(
        features=tuple(features),
        config=config,
        n_reference_rows=profile.n_rows,
        n_current_rows=len(current),
        domain=domain,
        domain_note=note,
    )
