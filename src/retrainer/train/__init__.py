"""Train: trainers (an estimator class or the user's function), windows, environment capture."""

from retrainer.train.environment import capture_environment
from retrainer.train.trainers import EntrypointTrainer, EstimatorTrainer, Trainer, build_trainer
from retrainer.train.windows import select_window, split_holdout

__all__ = [
    "EntrypointTrainer",
    "EstimatorTrainer",
    "Trainer",
    "build_trainer",
    "capture_environment",
    "select_window",
    "split_holdout",
]
