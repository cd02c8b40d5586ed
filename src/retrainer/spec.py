"""The pipeline spec: ``retrainer.yaml`` parsed into one validated :class:`PipelineSpec`.

The spec is validated once, at load, before anything has a side effect. Errors name the
file, the key path (``evaluate.metric``), the line, what was expected and what was given;
an unknown key is an error with a did-you-mean. YAML is read with a safe loader only
(``!!python/...`` tags are refused) and duplicate keys are refused too.

Example::

    spec = load_spec(Path("retrainer.yaml"))
    spec.model.name, spec.evaluate.metric
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    model_validator,
)

from retrainer.errors import SpecError
from retrainer.evaluate.holdout import min_resamples
from retrainer.evaluate.metrics import METRICS
from retrainer.spec_errors import explain, kind_of, read_yaml

__all__ = [
    "AlertSpec",
    "ApprovalSection",
    "CanarySpec",
    "ColumnRule",
    "ContractSection",
    "DataSection",
    "DeploySection",
    "DriftSection",
    "DuplicatesRule",
    "EvaluateSection",
    "FairnessSpec",
    "Features",
    "GuardrailSpec",
    "HoldoutSpec",
    "LeakageSpec",
    "ModelSection",
    "MonitorSection",
    "PipelineSpec",
    "RetrainPolicy",
    "RobustnessSpec",
    "SecondaryMetric",
    "ServabilitySpec",
    "ShadowSpec",
    "SlicesSpec",
    "TrainSection",
    "TriggerSpec",
    "VolumeRule",
    "WindowSpec",
    "load_spec",
    "parse_duration",
    "parse_spec",
    "spec_hash",
]

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_NAME = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
_DOTTED = r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+$"
_ENTRYPOINT = r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$"


def parse_duration(value: object) -> timedelta:
    """Parse ``"90d"``, ``"12h"``, ``"2w"``, ``"30m"`` or ``"45s"`` into a timedelta."""
    if isinstance(value, timedelta):
        return value
    match = _DURATION.match(str(value)) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"expected a duration such as '90d', '12h', '2w' or '30m', got {value!r}")
    if int(match.group(1)) == 0:
        raise ValueError(f"expected a positive duration such as '90d', got {value!r}")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def _format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if seconds and seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds // _UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"


Duration = Annotated[
    timedelta, BeforeValidator(parse_duration), PlainSerializer(_format_duration, return_type=str)
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Features(_Section):
    """Model inputs by kind. Every feature must be a column of the data."""

    numeric: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> Features:
        names = [*self.numeric, *self.categorical]
        if not names:
            raise ValueError("expected at least one numeric or categorical feature, got none")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"expected each feature once, got duplicates: {', '.join(dupes)}")
        return self

    @property
    def all(self) -> list[str]:
        """Numeric then categorical feature names."""
        return [*self.numeric, *self.categorical]


class ModelSection(_Section):
    """What is predicted, from what."""

    name: str = Field(pattern=_NAME, description="lower-case name: letters, digits, _ . -")
    task: Literal["classification", "regression"]
    target: str = Field(min_length=1)
    features: Features

    @model_validator(mode="after")
    def _target_not_feature(self) -> ModelSection:
        if self.target in self.features.all:
            raise ValueError(f"the target {self.target!r} must not also be a feature")
        return self


class WindowSpec(_Section):
    """Which accepted data a retrain uses: the newest ``last`` period and/or ``rows``."""

    last: Duration | None = None
    rows: int | None = Field(default=None, ge=1)


class HoldoutSpec(_Section):
    """The rows held out to compare candidate and champion (the same rows for both)."""

    fraction: float = Field(default=0.2, gt=0.0, le=0.5)
    by: Literal["time", "random"] = "time"


class DataSection(_Section):
    """Where fresh batches come from and how training data is cut from them."""

    source: str = Field(min_length=1, description="folder path/URI or SQLAlchemy URL")
    query: str | None = Field(default=None, description="table or SELECT, for SQL sources")
    time_column: str | None = None
    window: WindowSpec = Field(default_factory=WindowSpec)
    holdout: HoldoutSpec = Field(default_factory=HoldoutSpec)


class ColumnRule(_Section):
    """Rules for one column of every batch; a column listed here is required.

    Numbers are judged without conversion: ``dtype: integer`` accepts whole numbers
    (a float column of whole numbers too, as CSV files with gaps give), never ``"12"``.
    """

    dtype: Literal["numeric", "integer", "float", "string", "boolean", "datetime"] | None = Field(
        default=None, description="the kind of values the column must hold"
    )
    min: float | None = Field(default=None, description="smallest allowed value (inclusive)")
    max: float | None = Field(default=None, description="largest allowed value (inclusive)")
    allowed: list[str | int | float | bool] | None = Field(
        default=None, min_length=1, description="the known categories"
    )
    max_unseen_share: float = Field(
        default=0.01,
        ge=0.0,
        le=1.0,
        description="share of non-null values outside 'allowed' tolerated before UNSEEN_CATEGORY",
    )
    nullable: bool = Field(default=True, description="false: any null fails (NULL_STORM)")
    max_null_share: float | None = Field(
        default=None, ge=0.0, le=1.0, description="largest share of nulls (NULL_STORM above)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> ColumnRule:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"expected min <= max, got min {self.min} and max {self.max}")
        if not self.nullable and self.max_null_share:
            raise ValueError("'nullable: false' allows no nulls; drop 'max_null_share'")
        bounded = self.min is not None or self.max is not None
        if bounded and self.dtype in ("string", "boolean", "datetime"):
            raise ValueError(f"'min'/'max' need a numeric dtype, got dtype {self.dtype!r}")
        return self


class DuplicatesRule(_Section):
    """Exact duplicate rows, and rows sharing a key: ``allow`` (count them), ``drop`` (keep
    one: the first duplicate row, the last row of a key) or ``reject`` the batch."""

    rows: Literal["allow", "drop", "reject"] = "drop"
    key: list[str] | None = Field(
        default=None, min_length=1, description="columns that identify a row"
    )
    keys: Literal["allow", "drop", "reject"] = Field(
        default="reject", description="policy for rows sharing a key"
    )


class VolumeRule(_Section):
    """Flag (``VOLUME_ANOMALY``) a batch this many times larger or smaller than the
    previous accepted batch; a flagged batch is used, but a candidate trained on it is
    not promoted automatically."""

    max_ratio: float = Field(default=10.0, gt=1.0, description="flag at >= this many times")
    min_ratio: float = Field(default=0.1, gt=0.0, lt=1.0, description="flag at <= this share")


class ContractSection(_Section):
    """What every batch must satisfy before it is used; failing batches are quarantined.

    Reference (codes, examples, the quarantine workflow): docs/contracts.md.
    """

    required_columns: list[str] | None = Field(
        default=None, description="default: features, target and time column"
    )
    min_rows: int = Field(default=1, ge=1)
    max_rows: int | None = Field(default=None, ge=1, description="larger batches fail")
    extra_columns: Literal["allow", "reject"] = Field(
        default="allow", description="allow: ignored and recorded (EXTRA_COLUMN warning)"
    )
    columns: dict[str, ColumnRule] = Field(
        default_factory=dict, description="per-column rules ('retrainer contract infer')"
    )
    null_tolerance: float = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description="a feature's null share may exceed the champion's training data by this",
    )
    unseen_categories: Literal["flag", "reject"] = Field(
        default="flag", description="what UNSEEN_CATEGORY does to a batch"
    )
    duplicates: DuplicatesRule = Field(default_factory=DuplicatesRule)
    volume: VolumeRule = Field(default_factory=VolumeRule)
    time_order: Literal["none", "batch", "watermark"] = Field(
        default="none",
        description="batch: time never goes backwards within a batch; watermark: also no "
        "row older than the newest accepted row",
    )
    examples: int = Field(default=5, ge=1, le=100, description="failing rows shown per failure")

    @model_validator(mode="after")
    def _bounds(self) -> ContractSection:
        if self.max_rows is not None and self.max_rows < self.min_rows:
            raise ValueError(
                f"expected max_rows >= min_rows, got max_rows {self.max_rows} and "
                f"min_rows {self.min_rows}"
            )
        return self


class DataVolumeTrigger(_Section):
    rows: int = Field(ge=1, description="accepted rows since the champion's training data")


class PerformanceTrigger(_Section):
    """Retrain when the champion's metric on the newest batch crosses a bound.

    The metric is the realised one (labels in the batch); with ``estimated: true`` and no
    labels, it is estimated from the champion's calibrated probabilities (CBPE).
    """

    below: float | None = Field(default=None, description="fire when the metric is below")
    above: float | None = Field(default=None, description="fire when the metric is above")
    drop: float | None = Field(
        default=None, gt=0.0, description="fire when worse than the champion's holdout by more"
    )
    metric: str | None = Field(default=None, description="default: evaluate.metric")
    min_rows: int = Field(default=100, ge=1, description="labelled rows needed to judge")
    estimated: bool = Field(default=False, description="use the CBPE estimate without labels")

    @model_validator(mode="after")
    def _bound(self) -> PerformanceTrigger:
        if self.below is None and self.above is None and self.drop is None:
            raise ValueError(
                "expected 'below' (e.g. for roc_auc), 'above' (e.g. for rmse) or 'drop' "
                "(worse than the champion's holdout by more than this)"
            )
        return self


class DriftTrigger(_Section):
    """Retrain when the newest batch drifted from the champion's training data.

    Fires when any given condition holds: the share of drifted features reaches
    ``share``, any feature of ``features`` drifted, or the domain classifier's AUC
    reaches ``domain_auc``.
    """

    share: float | None = Field(default=None, gt=0.0, le=1.0)
    features: list[str] | None = Field(default=None, min_length=1)
    domain_auc: float | None = Field(default=None, gt=0.5, le=1.0)

    @model_validator(mode="after")
    def _condition(self) -> DriftTrigger:
        if self.share is None and self.features is None and self.domain_auc is None:
            raise ValueError("expected 'share' (e.g. 0.3), 'features' or 'domain_auc' (e.g. 0.7)")
        return self


class ScheduleTrigger(_Section):
    """Retrain on a cron schedule, in ``timezone``; after downtime, once (no backlog)."""

    cron: str = Field(description="five fields, e.g. '0 3 * * 1' (Mondays 03:00)")
    timezone: str = "UTC"

    @model_validator(mode="after")
    def _valid(self) -> ScheduleTrigger:
        if not croniter.is_valid(self.cron) or len(self.cron.split()) != 5:
            raise ValueError(
                f"expected a five-field cron expression such as '0 3 * * 1', got {self.cron!r}"
            )
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"expected an IANA time zone such as 'Europe/Berlin', got {self.timezone!r}"
            ) from exc
        return self


class ManualTrigger(_Section):
    require_reason: bool = True


TRIGGER_KINDS = ("data_volume", "performance", "drift", "schedule", "manual")


class TriggerSpec(_Section):
    """One trigger: exactly one of data_volume, performance, drift, schedule or manual."""

    data_volume: DataVolumeTrigger | None = None
    performance: PerformanceTrigger | None = None
    drift: DriftTrigger | None = None
    schedule: ScheduleTrigger | None = None
    manual: ManualTrigger | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> TriggerSpec:
        given = [k for k in TRIGGER_KINDS if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(
                f"expected exactly one of {', '.join(TRIGGER_KINDS)} in a trigger, "
                f"got {', '.join(given) or 'none'}"
            )
        return self

    @property
    def kind(self) -> str:
        """The trigger's kind: one of :data:`TRIGGER_KINDS`."""
        return next(k for k in TRIGGER_KINDS if getattr(self, k))


class RetrainPolicy(_Section):
    """How triggers combine, and how often retraining may happen at most."""

    combine: Literal["any", "all"] = Field(
        default="any", description="'all': every automatic trigger must fire together"
    )
    cooldown: Duration | None = Field(default=None, description="quiet time after a retrain")
    max_retrains: int | None = Field(default=None, ge=1, description="at most this many ...")
    per: Duration = Field(default=timedelta(days=7), description="... per this period")


class EffectSpec(_Section):
    effect: str
    min_effect: float = Field(ge=0.0)


class DriftSection(_Section):
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


class MonitorSection(_Section):
    """What the monitor measures on each new batch."""

    drift: DriftSection = Field(default_factory=DriftSection)


class LeakageSpec(_Section):
    """Checks that refuse to train on data that leaks the target (LEAKAGE_SUSPECTED)."""

    enabled: bool = True
    max_feature_auc: float = Field(
        default=0.99, gt=0.5, le=1.0, description="a single feature's AUC above this blocks"
    )
    max_feature_r2: float = Field(
        default=0.99, gt=0.0, le=1.0, description="a single feature's R^2 above this blocks"
    )
    exempt: list[str] = Field(
        default_factory=list, description="features known to be legitimately that strong"
    )
    holdout_overlap: Literal["drop", "block"] = Field(
        default="drop",
        description="training rows identical to a holdout row: drop them, or block the run",
    )
    label_time_column: str | None = Field(default=None, description="when the label became known")
    feature_time_columns: list[str] = Field(
        default_factory=list, description="when features were observed: never after the label"
    )
    max_rows: int = Field(default=200_000, ge=100, description="rows sampled for the checks")

    @model_validator(mode="after")
    def _times(self) -> LeakageSpec:
        if self.feature_time_columns and self.label_time_column is None:
            raise ValueError("'feature_time_columns' need 'label_time_column' to compare with")
        return self


class TrainSection(_Section):
    """How a candidate is trained: an estimator class, or the user's own function."""

    estimator: str | None = Field(default=None, pattern=_DOTTED)
    params: dict[str, Any] = Field(default_factory=dict)
    entrypoint: str | None = Field(default=None, pattern=_ENTRYPOINT)
    seed: int = 0
    trusted_types: list[str] = Field(
        default_factory=list, description="extra types (or 'pkg.*') the model artifact may hold"
    )
    leakage: LeakageSpec = Field(default_factory=LeakageSpec)

    @model_validator(mode="after")
    def _one_way(self) -> TrainSection:
        if (self.estimator is None) == (self.entrypoint is None):
            raise ValueError(
                "expected exactly one of 'estimator' (a dotted class path) or "
                "'entrypoint' ('module:function')"
            )
        if self.entrypoint is not None and self.params:
            raise ValueError("'params' go with 'estimator'; an entrypoint reads its own config")
        return self


class SecondaryMetric(_Section):
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


class SlicesSpec(_Section):
    """The primary metric per value of some holdout columns (numeric ones binned)."""

    columns: list[str] = Field(min_length=1, description="holdout columns, features or not")
    bins: int = Field(default=4, ge=2, le=20, description="quantile bins of a numeric column")
    min_size: int = Field(default=50, ge=1, description="smaller slices are listed, not judged")
    margin: float = Field(default=0.02, ge=0.0, description="tolerated loss on a slice")
    correction: Literal["holm", "bonferroni", "bh", "none"] = "holm"


def _columns_shorthand(value: object) -> object:
    """``slices: [region, age]`` means ``slices: {columns: [region, age]}``."""
    return {"columns": value} if isinstance(value, list) else value


class FairnessSpec(_Section):
    """Group fairness of the candidate over sensitive columns (fairlearn)."""

    sensitive: list[str] = Field(min_length=1, description="holdout columns, features or not")
    demographic_parity_max: float | None = Field(default=0.1, ge=0.0, le=1.0)
    equalized_odds_max: float | None = Field(default=0.1, ge=0.0, le=1.0)
    metric_difference_max: float | None = Field(
        default=None, ge=0.0, description="largest gap of evaluate.metric between groups"
    )
    min_group_size: int = Field(default=30, ge=1, description="smaller groups are not judged")


class RobustnessSpec(_Section):
    """The metric's drop under perturbed inputs; a share of 0 turns that perturbation off."""

    noise_sd: float = Field(default=0.1, ge=0.0, description="in standard deviations")
    missing_share: float = Field(default=0.05, ge=0.0, lt=1.0)
    swap_share: float = Field(default=0.05, ge=0.0, lt=1.0)
    max_drop: float = Field(default=0.05, ge=0.0)


class ServabilitySpec(_Section):
    """The stored artifact loads in a fresh process and predicts within the budget."""

    latency_ms: float = Field(default=200.0, gt=0.0, description="median predict of the sample")
    sample_rows: int = Field(default=100, ge=1, le=100_000)
    timeout_s: float = Field(default=120.0, gt=0.0, description="the whole check, load included")


class EvaluateSection(_Section):
    """How a candidate is judged against the champion on the same holdout rows."""

    metric: str = "roc_auc"
    min_improvement: float | None = Field(default=None, ge=0.0)
    non_inferiority_margin: float | None = Field(default=None, ge=0.0)
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    bootstrap_resamples: int = Field(default=1000, ge=100, le=100_000)
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


class ApprovalSection(_Section):
    """``auto`` promotes a candidate whose gates pass; ``manual`` waits for a person."""

    mode: Literal["auto", "manual"] = "auto"


def _webhook_url(value: object) -> object:
    """An alert webhook: ``https://...``, or ``http://`` to a loopback host only."""
    if value is None:
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(str(value))
    host = (parts.hostname or "").lower()
    loopback = host in ("localhost", "::1") or host.startswith("127.")
    if parts.scheme == "https" and host:
        return value
    if parts.scheme == "http" and loopback:
        return value
    raise ValueError(
        "expected an https:// URL, or http:// to a loopback host (127.0.0.1, ::1, "
        f"localhost), got {value!r}"
    )


class CanarySpec(_Section):
    """Traffic to the candidate in steps; each step needs ``min_requests`` and ``dwell``."""

    steps: list[float] = Field(
        default_factory=lambda: [10.0, 50.0, 100.0],
        min_length=1,
        description="percentages of traffic, increasing, the last one 100",
    )
    min_requests: int = Field(default=500, ge=1, description="candidate requests per step")
    dwell: Duration = Field(default=timedelta(minutes=10), description="least time per step")
    sticky_key: str | None = Field(
        default=None, min_length=1, description="request field whose value pins the route"
    )

    @model_validator(mode="after")
    def _increasing(self) -> CanarySpec:
        steps = self.steps
        if any(not 0 < p <= 100 for p in steps):
            raise ValueError(f"steps: expected percentages in (0, 100], got {steps}")
        if any(b <= a for a, b in itertools.pairwise(steps)) or steps[-1] != 100:
            raise ValueError(f"steps: expected increasing percentages ending at 100, got {steps}")
        return self


class ShadowSpec(_Section):
    """The candidate scores every request beside the champion; its answers are discarded."""

    min_requests: int = Field(default=500, ge=1, description="shadow-scored requests needed")
    dwell: Duration = Field(default=timedelta(hours=1), description="least time in shadow")


class GuardrailSpec(_Section):
    """What rolls a rollout back; ``null`` turns a guardrail off."""

    error_rate: float | None = Field(default=0.02, ge=0.0, le=1.0, description="of requests")
    latency_p99_ms: float | None = Field(default=None, gt=0.0)
    prediction_drift: float | None = Field(
        default=0.2, gt=0.0, description="PSI of the candidate's predictions vs the champion's"
    )
    metric_drop: float | None = Field(
        default=None, ge=0.0, description="realised metric below the champion's by more"
    )
    min_samples: int = Field(
        default=100, ge=1, description="candidate requests before rates, p99, drift are judged"
    )
    min_labels: int = Field(default=100, ge=1, description="labels before the metric is judged")


class AlertSpec(_Section):
    """Where rollbacks and aborts are announced, beside the log."""

    webhook: Annotated[str | None, BeforeValidator(_webhook_url)] = None
    timeout_s: float = Field(default=2.0, gt=0.0, le=30.0)


class DeploySection(_Section):
    """How a promoted candidate reaches traffic; the default promotes directly."""

    target: Literal["server"] = "server"
    strategy: Literal["direct", "shadow", "canary"] = "direct"
    canary: CanarySpec = Field(default_factory=CanarySpec)
    shadow: ShadowSpec = Field(default_factory=ShadowSpec)
    rollback: GuardrailSpec = Field(default_factory=GuardrailSpec)
    alert: AlertSpec = Field(default_factory=AlertSpec)

    @model_validator(mode="after")
    def _drift_needs_champion_traffic(self) -> DeploySection:
        if (
            self.strategy == "canary"
            and self.rollback.prediction_drift is not None
            and self.canary.steps[0] >= 100
        ):
            raise ValueError(
                "canary.steps: a first step of 100% leaves the champion no traffic to compare "
                "predictions with; start lower (e.g. [10, 100]) or set "
                "rollback.prediction_drift: null"
            )
        return self


class PipelineSpec(_Section):
    """The whole of ``retrainer.yaml``."""

    model: ModelSection
    data: DataSection
    contract: ContractSection = Field(default_factory=ContractSection)
    triggers: list[TriggerSpec] = Field(default_factory=list)
    retrain_policy: RetrainPolicy = Field(default_factory=RetrainPolicy)
    monitor: MonitorSection = Field(default_factory=MonitorSection)
    train: TrainSection
    evaluate: EvaluateSection = Field(default_factory=EvaluateSection)
    approval: ApprovalSection = Field(default_factory=ApprovalSection)
    deploy: DeploySection = Field(default_factory=DeploySection)
    store: str = "sqlite:///.retrainer/retrainer.db"
    artifacts: str = "file://.retrainer/artifacts"

    @model_validator(mode="after")
    def _cross_checks(self) -> PipelineSpec:
        info = METRICS.get(self.evaluate.metric)
        if info is None or info.task != self.model.task:
            known = sorted(n for n, m in METRICS.items() if m.task == self.model.task)
            raise ValueError(
                f"evaluate.metric: expected one of {', '.join(known)} for a "
                f"{self.model.task} model, got {self.evaluate.metric!r}"
            )
        for trig in self.triggers:
            name = trig.performance.metric if trig.performance else None
            if name is not None and (name not in METRICS or METRICS[name].task != self.model.task):
                known = sorted(n for n, m in METRICS.items() if m.task == self.model.task)
                raise ValueError(
                    f"triggers.{self.triggers.index(trig)}.performance.metric: expected one of "
                    f"{', '.join(known)} for a {self.model.task} model, got {name!r}"
                )
        for name in self.evaluate.secondary:
            if name not in METRICS or METRICS[name].task != self.model.task:
                known = sorted(n for n, m in METRICS.items() if m.task == self.model.task)
                raise ValueError(
                    f"evaluate.secondary.{name}: expected one of {', '.join(known)} for a "
                    f"{self.model.task} model"
                )
        fair = self.evaluate.fairness
        if fair and self.model.task == "regression" and fair.metric_difference_max is None:
            raise ValueError(
                "evaluate.fairness: a regression model is judged by 'metric_difference_max' "
                "(demographic parity and equalized odds are for classifiers); set it"
            )
        if self.data.holdout.by == "time" and self.data.time_column is None:
            raise ValueError(
                "data.holdout.by: 'time' needs data.time_column (set it, or use 'by: random')"
            )
        if self.data.window.last is not None and self.data.time_column is None:
            raise ValueError("data.window.last: a time window needs data.time_column")
        if self.contract.time_order != "none" and self.data.time_column is None:
            raise ValueError("contract.time_order: checking time order needs data.time_column")
        features = set(self.model.features.all)
        for i, trig in enumerate(self.triggers):
            unknown = (
                [f for f in (trig.drift.features or []) if f not in features] if trig.drift else []
            )
            if unknown:
                raise ValueError(
                    f"triggers.{i}.drift.features: expected model features, got "
                    f"{', '.join(map(repr, unknown))} (features: {', '.join(sorted(features))})"
                )
        return self

    @property
    def required_columns(self) -> list[str]:
        """Columns every batch must have: the contract's list, or features+target+time."""
        if self.contract.required_columns is not None:
            return list(self.contract.required_columns)
        cols = [*self.model.features.all, self.model.target]
        return cols + ([self.data.time_column] if self.data.time_column else [])


def spec_hash(spec: PipelineSpec) -> str:
    """The sha256 of the spec's canonical JSON: equal specs hash equal, whatever the YAML."""
    canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def load_spec(path: Path) -> PipelineSpec:
    """Read and validate a spec file. Raises SpecError naming the file, key and line."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise SpecError(f"{path}: no such spec file (run 'retrainer init' to create one)") from exc
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the spec: {exc.strerror}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not valid UTF-8 at byte offset {exc.start}") from exc
    return parse_spec(text, source=str(path))


def parse_spec(text: str, *, source: str = "<spec>") -> PipelineSpec:
    """Validate spec text; ``source`` names it in errors."""
    node, data = read_yaml(text, source)
    if not isinstance(data, dict):
        given = "an empty file" if data is None else f"a {kind_of(data)}"
        raise SpecError(
            f"{source}: expected a mapping of sections at the top level (model:, data:, ...), "
            f"got {given}"
        )
    try:
        return PipelineSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(explain(exc, source, node, PipelineSpec)) from exc
