"""Monitor: the prediction log and its labels, realised and label-free (CBPE) performance,
and the triggers that decide when to retrain."""

from retrainer.monitor.estimate import CBPE, CBPE_METRICS, Estimate
from retrainer.monitor.performance import realised_metric
from retrainer.monitor.predictions import (
    InvalidRecordsError,
    LabelReport,
    add_labels,
    log_predictions,
)
from retrainer.monitor.realised import realised_performance
from retrainer.monitor.triggers import DriftEvidence, TriggerContext, TriggerDecision, decide

__all__ = [
    "CBPE",
    "CBPE_METRICS",
    "DriftEvidence",
    "Estimate",
    "InvalidRecordsError",
    "LabelReport",
    "TriggerContext",
    "TriggerDecision",
    "add_labels",
    "decide",
    "log_predictions",
    "realised_metric",
    "realised_performance",
]
