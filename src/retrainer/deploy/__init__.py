"""Deploy: staged rollouts (shadow, canary), guardrails, automatic rollback, alerts."""

from retrainer.deploy.guardrails import TrafficStats, Verdict, evaluate_guardrails
from retrainer.deploy.rollout import (
    RolloutEngine,
    TickResult,
    abort,
    advance,
    rollout_status,
    start_rollout,
    tick,
)
from retrainer.deploy.router import RolloutSelector, Route, Router, StatsRecorder
from retrainer.deploy.store import RolloutInfo, RolloutStore

__all__ = [
    "RolloutEngine",
    "RolloutInfo",
    "RolloutSelector",
    "RolloutStore",
    "Route",
    "Router",
    "StatsRecorder",
    "TickResult",
    "TrafficStats",
    "Verdict",
    "abort",
    "advance",
    "evaluate_guardrails",
    "rollout_status",
    "start_rollout",
    "tick",
]
