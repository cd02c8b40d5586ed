"""The spec's ``deploy`` section: rollout strategy, guardrails, alerts (docs/rollout.md)."""

from __future__ import annotations

import itertools
import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import (
    BeforeValidator,
    Field,
    model_validator,
)

from retrainer.secrets import REFERENCE
from retrainer.spec_base import Duration, Section

__all__ = [
    "AlertSpec",
    "CanarySpec",
    "DeploySection",
    "GuardrailSpec",
    "ShadowSpec",
    "check_webhook_url",
]


def check_webhook_url(url: str) -> str:
    """``url`` if it is ``https://HOST...`` or ``http://`` to a loopback host; else ValueError.

    The message never repeats ``url``: it may be a resolved secret.
    """
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    loopback = host in ("localhost", "::1") or host.startswith("127.")
    if (parts.scheme == "https" and host) or (parts.scheme == "http" and loopback):
        return url
    raise ValueError(
        "expected an https:// URL, or http:// to a loopback host (127.0.0.1, ::1, localhost)"
    )


def _webhook_url(value: object) -> object:
    """The spec's webhook: checked now, with any ``${env:NAME}`` standing for a plain
    word; a URL that starts with a reference is checked once resolved, when sent."""
    if value is None:
        return None
    text = str(value)
    if text.startswith("${env:"):
        return value
    try:
        check_webhook_url(REFERENCE.sub("x", text))
    except ValueError as exc:
        raise ValueError(f"{exc}, got {value!r}") from None
    return value


_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")


def _headers(value: object) -> object:
    """Header names are HTTP tokens; values hold no line breaks (no header injection)."""
    if not isinstance(value, dict):
        return value
    for name, text in value.items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise ValueError(f"expected HTTP header names (letters, digits, -), got {name!r}")
        if isinstance(text, str) and ("\r" in text or "\n" in text):
            raise ValueError(f"header {name!r}: a value must not hold a line break")
    return value


class CanarySpec(Section):
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


class ShadowSpec(Section):
    """The candidate scores every request beside the champion; its answers are discarded."""

    min_requests: int = Field(default=500, ge=1, description="shadow-scored requests needed")
    dwell: Duration = Field(default=timedelta(hours=1), description="least time in shadow")


class GuardrailSpec(Section):
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


class AlertSpec(Section):
    """Where rollbacks and aborts are announced, beside the log."""

    webhook: Annotated[str | None, BeforeValidator(_webhook_url)] = None
    headers: Annotated[dict[str, str], BeforeValidator(_headers)] = Field(
        default_factory=dict,
        description="extra HTTP headers, e.g. Authorization: 'Bearer ${env:HOOK_TOKEN}'",
    )
    timeout_s: float = Field(default=2.0, gt=0.0, le=30.0)


class DeploySection(Section):
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
