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
import json
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import (
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from retrainer.errors import SpecError
from retrainer.evaluate.metrics import METRICS
from retrainer.secrets import check_references
from retrainer.spec_base import Duration, Section, parse_duration, parse_executor
from retrainer.spec_contract import ColumnRule, ContractSection, DuplicatesRule, VolumeRule
from retrainer.spec_deploy import AlertSpec, CanarySpec, DeploySection, GuardrailSpec, ShadowSpec
from retrainer.spec_errors import explain, kind_of, read_yaml
from retrainer.spec_gates import (
    EvaluateSection,
    FairnessSpec,
    RobustnessSpec,
    SecondaryMetric,
    ServabilitySpec,
    SlicesSpec,
)
from retrainer.spec_governance import (
    ApprovalSection,
    AuditSection,
    AutoIfSpec,
    RetentionSection,
)
from retrainer.spec_monitor import DriftSection, MonitorSection

__all__ = [
    "AlertSpec",
    "ApprovalSection",
    "AuditSection",
    "AutoIfSpec",
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
    "RetentionSection",
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
    "parse_executor",
    "parse_spec",
    "spec_content",
    "spec_hash",
]
_NAME = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
_DOTTED = r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+$"
_ENTRYPOINT = r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$"


class Features(Section):
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


class ModelSection(Section):
    """What is predicted, from what."""

    name: str = Field(pattern=_NAME, description="lower-case name: letters, digits, _ . -")
    task: Literal["classification", "regression"]
    target: str = Field(min_length=1)
    features: Features
    owner: str | None = Field(default=None, description="who answers for the model (card)")
    intended_use: str | None = Field(
        default=None, description="what the model is for and not for (model card)"
    )

    @model_validator(mode="after")
    def _target_not_feature(self) -> ModelSection:
        if self.target in self.features.all:
            raise ValueError(f"the target {self.target!r} must not also be a feature")
        return self


class WindowSpec(Section):
    """Which accepted data a retrain uses: the newest ``last`` period and/or ``rows``."""

    last: Duration | None = None
    rows: int | None = Field(default=None, ge=1)


class HoldoutSpec(Section):
    """The rows held out to compare candidate and champion (the same rows for both)."""

    fraction: float = Field(default=0.2, gt=0.0, le=0.5)
    by: Literal["time", "random"] = "time"


class DataSection(Section):
    """Where fresh batches come from and how training data is cut from them."""

    source: str = Field(min_length=1, description="folder path/URI or SQLAlchemy URL")
    query: str | None = Field(default=None, description="table or SELECT, for SQL sources")
    time_column: str | None = None
    window: WindowSpec = Field(default_factory=WindowSpec)
    holdout: HoldoutSpec = Field(default_factory=HoldoutSpec)


class DataVolumeTrigger(Section):
    rows: int = Field(ge=1, description="accepted rows since the champion's training data")


class PerformanceTrigger(Section):
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


class DriftTrigger(Section):
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


class ScheduleTrigger(Section):
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


class ManualTrigger(Section):
    require_reason: bool = True


TRIGGER_KINDS = ("data_volume", "performance", "drift", "schedule", "manual")


class TriggerSpec(Section):
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


class RetrainPolicy(Section):
    """How triggers combine, and how often retraining may happen at most."""

    combine: Literal["any", "all"] = Field(
        default="any", description="'all': every automatic trigger must fire together"
    )
    cooldown: Duration | None = Field(default=None, description="quiet time after a retrain")
    max_retrains: int | None = Field(default=None, ge=1, description="at most this many ...")
    per: Duration = Field(default=timedelta(days=7), description="... per this period")


class LeakageSpec(Section):
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


class TrainSection(Section):
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


class PipelineSpec(Section):
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
    audit: AuditSection = Field(default_factory=AuditSection)
    retention: RetentionSection = Field(default_factory=RetentionSection)
    store: str = "sqlite:///.retrainer/retrainer.db"
    artifacts: str = "file://.retrainer/artifacts"
    executor: str = Field(
        default="local",
        description="where profiles, training and scoring run: local, dask-local or "
        "dask://HOST:PORT (needs the retrainer[dask] extra)",
    )

    @field_validator("executor")
    @classmethod
    def _executor(cls, value: str) -> str:
        parse_executor(value)
        return value

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


def spec_content(spec: PipelineSpec) -> dict[str, Any]:
    """The spec as JSON-ready data, without ``executor`` (where the work runs is not
    part of what is trained: see :func:`spec_hash`)."""
    return spec.model_dump(mode="json", exclude={"executor"})


def spec_hash(spec: PipelineSpec) -> str:
    """The sha256 of the spec's canonical JSON: equal specs hash equal, whatever the YAML.

    ``executor`` is left out: where the work runs does not change what is trained, so
    moving a workspace to Dask does not make old evidence new."""
    canonical = json.dumps(spec_content(spec), sort_keys=True, separators=(",", ":"))
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
    check_references(data, source)  # ${env:NAME} is kept as text, resolved where used
    try:
        return PipelineSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(explain(exc, source, node, PipelineSpec)) from exc
