"""Spec sections of governance: ``approval``, ``audit`` and ``retention``."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

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

    A period left out keeps that kind forever. The champion, the previous champion and
    every version in ``legal_hold`` are never deleted, nor is data they were trained on.
    """

    raw_batches: Duration | None = Field(default=None, description="accepted batch snapshots")
    quarantine: Duration | None = Field(default=None, description="quarantined batches")
    predictions: Duration | None = Field(default=None, description="logged predictions, labels")
    artifacts: Duration | None = Field(
        default=None, description="artifacts of versions that are no longer served"
    )
    keep_versions: int | None = Field(
        default=None, ge=1, description="keep at least the newest N versions' artifacts"
    )
    legal_hold: list[int] = Field(
        default_factory=list, description="versions never deleted, whatever their age"
    )
