"""Orchestrate: the cycle runner and its journal, leases, the watch loop, the workspace status."""

from retrainer.orchestrate.cycle import STEPS, CycleResult, run_cycle
from retrainer.orchestrate.journal import Journal, RunState
from retrainer.orchestrate.lease import Leases, new_holder_id
from retrainer.orchestrate.status import workspace_status
from retrainer.orchestrate.watch import WatchEvent, watch

__all__ = [
    "STEPS",
    "CycleResult",
    "Journal",
    "Leases",
    "RunState",
    "WatchEvent",
    "new_holder_id",
    "run_cycle",
    "watch",
    "workspace_status",
]
