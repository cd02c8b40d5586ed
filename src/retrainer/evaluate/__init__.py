"""Evaluate: metrics, champion-vs-candidate statistics, gates and the decision record."""

from retrainer.evaluate.bootstrap import batch_metric, paired_bootstrap
from retrainer.evaluate.compare import evaluate_candidate, model_output
from retrainer.evaluate.decision import DecisionRecord, GateResult
from retrainer.evaluate.holdout import check_holdout, min_holdout_rows, min_resamples
from retrainer.evaluate.mcnemar import mcnemar
from retrainer.evaluate.metrics import METRICS, MetricInfo, score
from retrainer.evaluate.servability import StoredArtifact

__all__ = [
    "METRICS",
    "DecisionRecord",
    "GateResult",
    "MetricInfo",
    "StoredArtifact",
    "batch_metric",
    "check_holdout",
    "evaluate_candidate",
    "mcnemar",
    "min_holdout_rows",
    "min_resamples",
    "model_output",
    "paired_bootstrap",
    "score",
]
