"""Spec sections of governance: ``approval``, ``audit`` and ``retention``."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from retrainer.spec_base import Duration, Section

__all__ = ["ApprovalSection", "AuditSection", "AutoIfSpec", "RetentionSection"]


class AutoIfSpec(Section):
    """The change envelope inside which ``approval: auto_if`` approves without a person.

    A candidate outside any bound (another estimator family, other features, a metric
    change outside ``metric_change``) waits for a person, with the reasons recorded.
    """

    same_estimator: bool = Field(
        default=True, description="the candidate's estimator class equals the champion's"
    )
    same_features: bool = Field(
        default=True, description="the candidate was trained on the champion's features"
    )
    metric_change: tuple[float, float] = Field(
        default=(-0.005, 0.05),
        description="[low, high]: candidate metric minus champion metric (higher-is-better "
        "sign) must lie in this band",
    )

    @model_validator(mode="after")
    def _band(self) -> AutoIfSpec:
        low, high = self.metric_change
        if low > high:
            raise ValueError(
                f"metric_change: expected [low, high] with low <= high, got {low}, {high}"
            )
        return self


class ApprovalSection(Section):
    """Who lets a candidate whose gates passed become champion.

    ``auto`` promotes at once; ``manual`` waits for ``quorum`` approvals by actors with
    ``approvers_role`` (or admin) who neither triggered nor trained the version;
    ``auto_if`` approves by itself inside the ``auto_if`` envelope and waits for a person
    outside it.
    """

    mode: Literal["auto", "manual", "auto_if"] = "auto"
    quorum: int = Field(default=1, ge=1, le=10, description="distinct approvers needed")
    expires: Duration | None = Field(
        default=timedelta(days=7), description="an approval older than this no longer counts"
    )
    approvers_role: Literal["approver", "admin"] = "approver"
    auto_if: AutoIfSpec | None = None

    @model_validator(mode="after")
    def _envelope(self) -> ApprovalSection:
        if self.mode == "auto_if" and self.auto_if is None:
            raise ValueError("mode 'auto_if' needs an 'auto_if' envelope (e.g. auto_if: {})")
        if self.mode != "auto_if" and self.auto_if is not None:
            raise ValueError(f"'auto_if' is only read with mode 'auto_if', not {self.mode!r}")
        return self


class AuditSection(Section):
    """Where the audit chain's head is anchored outside the store."""

    anchor: str | None = Field(
        default=None,
        min_length=1,
        description="file path or fsspec URI; the chain's head is appended after every "
        "champion move, and `retrainer audit verify` checks against it",
    )


class RetentionSection(Section):
    """How long stored data is kept; ``retrainer retention plan|apply`` enforces it.

    A period left out keeps that kind forever. The champion, the previous champion,
    every version holding an alias and every version in ``legal_hold`` are never
    deleted, nor the snapshots they were trained and evaluated on. Two windows refuse
    shorter periods: prediction logs are kept at least ``log_window`` (six months or
    more), and a version that served keeps its artifacts for ``documentation_window``
    after it stopped serving. Deleted things leave their hash and size in the audit
    log; the audit log itself is never deleted.
    """

    raw_batches: Duration | None = Field(
        default=None, description="rows of accepted or released batches, from their arrival"
    )
    quarantine: Duration | None = Field(
        default=None, description="rows of quarantined or discarded batches, from their arrival"
    )
    predictions: Duration | None = Field(
        default=None,
        description="logged predictions and their labels (store and Parquet log), whole "
        "UTC days; at least log_window",
    )
    artifacts: Duration | None = Field(
        default=None,
        description="artifacts of versions that are no longer served, from when they "
        "stopped serving (or were created, if they never served)",
    )
    keep_versions: int | None = Field(
        default=None, ge=1, description="keep at least the newest N READY versions' artifacts"
    )
    legal_hold: list[int] = Field(
        default_factory=list, description="versions never deleted, whatever their age"
    )
    LOG_WINDOW_FLOOR: ClassVar[timedelta] = timedelta(days=183)
    """Automatically generated logs (the prediction log) are kept at least six months."""

    log_window: Duration = Field(
        default=timedelta(days=183),
        description="prediction logs younger than this are never deleted; at least 183d",
    )
    documentation_window: Duration = Field(
        default=timedelta(days=3650),
        description="a version that served keeps its artifacts and training data this "
        "long after it stopped serving (default 10 years)",
    )

    @model_validator(mode="after")
    def _windows(self) -> RetentionSection:
        if self.log_window < self.LOG_WINDOW_FLOOR:
            raise ValueError(
                f"log_window: expected at least {self.LOG_WINDOW_FLOOR.days}d (six months), "
                f"got {_days(self.log_window)}"
            )
        if self.predictions is not None and self.predictions < self.log_window:
            raise ValueError(
                f"predictions: {_days(self.predictions)} is inside the log window "
                f"({_days(self.log_window)}); a purge of prediction logs that young is "
                f"refused: expected at least {_days(self.log_window)}, or leave it out"
            )
        bad = [v for v in self.legal_hold if v < 1]
        if bad:
            raise ValueError(f"legal_hold: expected version numbers (1 or more), got {bad[0]}")
        if len(set(self.legal_hold)) != len(self.legal_hold):
            raise ValueError(f"legal_hold: a version is listed twice in {self.legal_hold}")
        return self


def _days(value: timedelta) -> str:
    """A period as the spec writes it: ``183d``, ``36h``, ``90m`` or ``45s``."""
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
