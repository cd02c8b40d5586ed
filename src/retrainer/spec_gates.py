"""The spec's ``evaluate`` section: the gates a candidate must pass (docs/evaluation.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BeforeValidator,
    Field,
    model_validator,
)

from retrainer.evaluate.holdout import min_resamples
from retrainer.spec_base import Section

__all__ = [
    "EvaluateSection",
    "FairnessSpec",
    "RobustnessSpec",
    "SecondaryMetric",
    "ServabilitySpec",
    "SlicesSpec",
]


class SecondaryMetric(Section):
    """Thresholds of a secondary metric: an absolute floor/ceiling, and a drop vs the champion."""

    min: float | None = Field(default=None, description="the candidate's value must be >= this")
    max: float | None = Field(default=None, description="the candidate's value must be <= this")
    max_drop: float | None = Field(
        default=None, ge=0.0, description="may be worse than the champion by at most this"
    )

    @model_validator(mode="after")
    def _some(self) -> SecondaryMetric:
        if self.min is None and self.max is None and self.max_drop is None:
            raise ValueError("expected at least one of 'min', 'max' or 'max_drop'")
        return self


class SlicesSpec(Section):
    """The primary metric per value of some holdout columns (numeric ones binned)."""

    columns: list[str] = Field(min_length=1, description="holdout columns, features or not")
    bins: int = Field(default=4, ge=2, le=20, description="quantile bins of a numeric column")
    min_size: int = Field(default=50, ge=1, description="smaller slices are listed, not judged")
    margin: float = Field(default=0.02, ge=0.0, description="tolerated loss on a slice")
    correction: Literal["holm", "bonferroni", "bh", "none"] = "holm"


def _columns_shorthand(value: object) -> object:
    """``slices: [region, age]`` means ``slices: {columns: [region, age]}``."""
    return {"columns": value} if isinstance(value, list) else value


class FairnessSpec(Section):
    """Group fairness of the candidate over sensitive columns (fairlearn)."""

    sensitive: list[str] = Field(min_length=1, description="holdout columns, features or not")
    demographic_parity_max: float | None = Field(default=0.1, ge=0.0, le=1.0)
    equalized_odds_max: float | None = Field(default=0.1, ge=0.0, le=1.0)
    metric_difference_max: float | None = Field(
        default=None, ge=0.0, description="largest gap of evaluate.metric between groups"
    )
    min_group_size: int = Field(default=30, ge=1, description="smaller groups are not judged")


class RobustnessSpec(Section):
    """The metric's drop under perturbed inputs; a share of 0 turns that perturbation off."""

    noise_sd: float = Field(default=0.1, ge=0.0, description="in standard deviations")
    missing_share: float = Field(default=0.05, ge=0.0, lt=1.0)
    swap_share: float = Field(default=0.05, ge=0.0, lt=1.0)
    max_drop: float = Field(default=0.05, ge=0.0)


class ServabilitySpec(Section):
    """The stored artifact loads in a fresh process and predicts within the budget."""

    latency_ms: float = Field(default=200.0, gt=0.0, description="median predict of the sample")
    sample_rows: int = Field(default=100, ge=1, le=100_000)
    timeout_s: float = Field(default=120.0, gt=0.0, description="the whole check, load included")


class EvaluateSection(Section):
    """How a candidate is judged against the champion on the same holdout rows."""

    metric: str = "roc_auc"
    min_improvement: float | None = Field(default=None, ge=0.0)
    non_inferiority_margin: float | None = Field(default=None, ge=0.0)
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    bootstrap_resamples: int = Field(default=1000, ge=100, le=100_000)
    max_holdout_rows: int = Field(
        default=1_000_000,
        ge=1_000,
        description="on a Dask executor, a larger holdout is judged on a uniform sample "
        "of about this many rows, gathered from the workers",
    )
    min_metric: float | None = Field(default=None, description="absolute floor for any candidate")
    secondary: dict[str, SecondaryMetric] = Field(default_factory=dict)
    slices: Annotated[SlicesSpec | None, BeforeValidator(_columns_shorthand)] = None
    fairness: FairnessSpec | None = None
    robustness: RobustnessSpec | None = None
    servability: ServabilitySpec | None = None

    @model_validator(mode="after")
    def _one_gate(self) -> EvaluateSection:
        if self.min_improvement is not None and self.non_inferiority_margin is not None:
            raise ValueError("expected one of 'min_improvement' or 'non_inferiority_margin'")
        needed = min_resamples(self.confidence)
        if self.bootstrap_resamples < needed:
            raise ValueError(
                f"bootstrap_resamples: a {self.confidence:.0%} interval needs at least {needed} "
                f"resamples (5 in each tail), got {self.bootstrap_resamples}"
            )
        return self

    @property
    def mode(self) -> Literal["superiority", "non_inferiority"]:
        """``superiority`` when ``min_improvement`` is set, else ``non_inferiority``."""
        return "superiority" if self.min_improvement is not None else "non_inferiority"

    @property
    def margin(self) -> float:
        """The improvement required (superiority) or the loss tolerated (non-inferiority)."""
        if self.min_improvement is not None:
            return self.min_improvement
        return 0.005 if self.non_inferiority_margin is None else self.non_inferiority_margin
