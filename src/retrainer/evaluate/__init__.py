"""Evaluate: metrics, champion-vs-candidate statistics, gates and the decision record."""

from retrainer.evaluate.bootstrap import batch_metric, paired_bootstrap
from retrainer.evaluate.compare import evaluate_candidate, model_output
from retrainer.evaluate.decision import DecisionRecord, GateResult
from retrainer.evaluate.metrics import METRICS, MetricInfo, score

__all__ = [
    "METRICS",
    "DecisionRecord",
    "GateResult",
    "MetricInfo",
    "batch_metric",
    "evaluate_candidate",
    "model_output",
    "paired_bootstrap",
    "score",
]
