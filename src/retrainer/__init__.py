"""retrainer: an automated retraining pipeline.

Monitor live data and the model, trigger retraining, prepare data under a contract,
retrain reproducibly, validate against the champion with real statistics, promote
safely, and govern every step. See ``retrainer --help`` and docs/architecture.md.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
