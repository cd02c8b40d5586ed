"""The spec's ``monitor`` section: how drift is judged on each new batch
(docs/spec.md#monitor, docs/monitoring.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from retrainer.spec_base import Section

__all__ = ["DriftSection", "EffectSpec", "MonitorSection"]


class EffectSpec(Section):
    effect: str
    min_effect: float = Field(ge=0.0)


class DriftSection(Section):
    """How drift is judged: a feature drifts only when its effect size reaches
    ``min_effect`` *and* its test (``numeric_test`` or chi-square) is significant at
    ``alpha`` after correction across features, with at least ``min_samples`` rows on
    each side."""

    alpha: float = Field(default=0.01, gt=0.0, lt=1.0)
    correction: Literal["bh", "bonferroni", "none"] = "bh"
    min_samples: int = Field(default=200, ge=1)
    numeric_test: Literal["ks", "t", "ks+t"] = Field(
        default="ks+t",
        description="ks, t (Welch) or ks+t (Bonferroni: min(1, 2*min(p_ks, p_t)))",
    )
    numeric: EffectSpec = Field(default_factory=lambda: EffectSpec(effect="psi", min_effect=0.2))
    categorical: EffectSpec = Field(
        default_factory=lambda: EffectSpec(effect="cramers_v", min_effect=0.1)
    )
    domain_classifier: bool = False
    profile_rows: int = Field(
        default=250_000,
        ge=1_000,
        description="numeric values a reference profile keeps per column; a larger "
        "training set keeps those of a uniform sample of rows (counts and moments stay exact)",
    )

    @model_validator(mode="after")
    def _effects(self) -> DriftSection:
        for where, value, known in (
            ("numeric", self.numeric.effect, ("ks", "psi", "js", "wasserstein")),
            ("categorical", self.categorical.effect, ("cramers_v", "psi", "js")),
        ):
            if value not in known:
                raise ValueError(
                    f"{where}.effect: expected one of {', '.join(known)}, got {value!r}"
                )
        return self


class MonitorSection(Section):
    """What the monitor measures on each new batch."""

    drift: DriftSection = Field(default_factory=DriftSection)
