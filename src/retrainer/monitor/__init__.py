"""Monitor: realised performance and the triggers that decide when to retrain."""

from retrainer.monitor.performance import realised_metric
from retrainer.monitor.triggers import DriftEvidence, TriggerContext, TriggerDecision, decide

__all__ = ["DriftEvidence", "TriggerContext", "TriggerDecision", "decide", "realised_metric"]
