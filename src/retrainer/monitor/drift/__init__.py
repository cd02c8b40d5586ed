"""Drift of a batch against a reference: statistics, reference profiles, reports.

* :mod:`~retrainer.monitor.drift.stats`: two-sample tests and distances as pure
  functions, equal to scipy's (KS, Welch's t, chi-square, Wasserstein) and fast against
  a pre-sorted reference (the batch placed in it once, :mod:`~retrainer.monitor.drift.sample`;
  Wasserstein's two exact paths in :mod:`~retrainer.monitor.drift.wasserstein`); PSI,
  Jensen-Shannon; multiple-testing correction.
* :mod:`~retrainer.monitor.drift.profile`: :class:`ReferenceProfile`, built once from
  the reference frame, stored as bytes, enough to check any batch.
* :mod:`~retrainer.monitor.drift.report`: :func:`drift_report` and the rule that says
  which features drifted (:class:`DriftConfig` in ``config``, the per-feature tests in
  ``checks``).
* :mod:`~retrainer.monitor.drift.domain`: the multivariate reference-vs-current
  classifier.
* :mod:`~retrainer.monitor.drift.files` and :mod:`~retrainer.monitor.drift.html`
  (imported on demand: matplotlib): reading Parquet/CSV files and the self-contained
  HTML report, for ``retrainer drift``.
"""

from retrainer.monitor.drift.domain import DomainClassifierResult, domain_classifier
from retrainer.monitor.drift.profile import CategoricalProfile, NumericProfile, ReferenceProfile
from retrainer.monitor.drift.report import (
    STATUSES,
    DriftConfig,
    DriftReport,
    FeatureDrift,
    Status,
    drift_report,
)
from retrainer.monitor.drift.stats import (
    LocationStats,
    SortedSample,
    TestResult,
    chi2_test,
    combined_p_value,
    correct_pvalues,
    js_distance,
    ks_test,
    psi,
    wasserstein,
    welch_t_test,
)

__all__ = [
    "STATUSES",
    "CategoricalProfile",
    "DomainClassifierResult",
    "DriftConfig",
    "DriftReport",
    "FeatureDrift",
    "LocationStats",
    "NumericProfile",
    "ReferenceProfile",
    "SortedSample",
    "Status",
    "TestResult",
    "chi2_test",
    "combined_p_value",
    "correct_pvalues",
    "domain_classifier",
    "drift_report",
    "js_distance",
    "ks_test",
    "psi",
    "wasserstein",
    "welch_t_test",
]
