"""Distributed training: LightGBM and XGBoost estimators train on the Dask cluster.

The Dask executor calls :func:`fit_distributed` with the spec's trainer, a Dask
dataframe and its client. When ``train.estimator`` is one of

* ``lightgbm.LGBMClassifier`` / ``lightgbm.LGBMRegressor`` (trained with
  ``lightgbm.DaskLGBMClassifier`` / ``DaskLGBMRegressor``),
* ``xgboost.XGBClassifier`` / ``XGBRegressor`` / ``XGBRFClassifier`` / ``XGBRFRegressor``
  (trained with their ``xgboost.dask`` counterparts),

or a subclass of one, the model trains on the workers: the distinct values of the
categorical features and the partition lengths are computed on the cluster, the
partitions are encoded on the workers, and only the fitted booster comes back. For
LightGBM each categorical feature becomes one column of codes (its levels in sorted
order; an unknown level or a missing value is NaN) declared categorical to the booster,
so the training matrix has one column per feature, not one per level; XGBoost gets
them one-hot encoded. The matrix is float32 when every numeric feature is stored so.
Any other trainer gives None, and the caller trains on the client as before.

The result has the contract of :meth:`EstimatorTrainer.fit
<retrainer.train.trainers.EstimatorTrainer.fit>`: a scikit-learn ``Pipeline`` of a
fitted ``ColumnTransformer`` ("features": numeric passthrough, categorical
``OrdinalEncoder`` for LightGBM or ``OneHotEncoder(handle_unknown="ignore")`` for
XGBoost) and the library's *local* estimator
("estimator": ``LGBMClassifier``, ``XGBClassifier``...; a subclass named in the spec is
stored as its library class). It predicts on a pandas frame of the feature columns.

Training is seeded (``random_state`` is the cycle's seed unless ``train.params`` sets
one), but the model is not bit-identical to training the same rows locally: LightGBM
and XGBoost build their histograms per worker and merge them, so split points, and
with them scores, differ slightly from local training and with the partitioning.

LightGBM's Dask classifier encodes the labels on each worker from the rows it holds, so
a worker lacking a class would silently learn wrong labels: a LightGBM classifier is
refused (TrainingError) unless every non-empty partition holds every class. XGBoost
encodes the labels once for the whole data and has no such limit.

The stored model holds LightGBM's or XGBoost's own types, which skops does not trust by
default. List them under ``train.trusted_types``::

    # lightgbm.LGBMClassifier
    trusted_types: [collections.OrderedDict, lightgbm.basic.Booster,
                    lightgbm.sklearn.LGBMClassifier]
    # xgboost.XGBClassifier
    trusted_types: [xgboost.core.Booster, xgboost.sklearn.XGBClassifier]

(``LGBMRegressor`` / ``XGBRegressor`` in place of the classifier for regressors; all
listed in :data:`TRUSTED_TYPES`.) These are the same types as for the model trained on
the client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

from retrainer.errors import TrainingError
from retrainer.train.trainers import EstimatorTrainer, Trainer

if TYPE_CHECKING:
    import dask.dataframe as dd
    from distributed import Client

__all__ = ["TRUSTED_TYPES", "fit_distributed"]

log = logging.getLogger(__name__)

_LGBM = ("collections.OrderedDict", "lightgbm.basic.Booster")

TRUSTED_TYPES: dict[str, tuple[str, ...]] = {
    "lightgbm.LGBMClassifier": (*_LGBM, "lightgbm.sklearn.LGBMClassifier"),
    "lightgbm.LGBMRegressor": (*_LGBM, "lightgbm.sklearn.LGBMRegressor"),
    "xgboost.XGBClassifier": ("xgboost.core.Booster", "xgboost.sklearn.XGBClassifier"),
    "xgboost.XGBRegressor": ("xgboost.core.Booster", "xgboost.sklearn.XGBRegressor"),
    "xgboost.XGBRFClassifier": ("xgboost.core.Booster", "xgboost.sklearn.XGBRFClassifier"),
    "xgboost.XGBRFRegressor": ("xgboost.core.Booster", "xgboost.sklearn.XGBRFRegressor"),
}
"""The ``train.trusted_types`` that let skops load the model a Dask-trained estimator
stores, by the estimator's library class (the Pipeline, ColumnTransformer and
OneHotEncoder around it are trusted by default)."""


@dataclass(frozen=True)
class _Backend:
    """How one library class trains on Dask and comes back as a local model."""

    dask_cls: type[Any]
    to_local: Callable[[Any, dict[str, Any]], Any]
    every_class_per_worker: bool = False
    """LightGBM's classifier encodes labels on each worker from the classes it sees, so a
    worker whose rows lack a class silently trains on wrong labels."""
    ordinal: bool = False
    """Categorical features as one column of codes each, declared to the library as
    categorical (LightGBM), instead of one-hot columns: one column instead of one per
    level in the workers' training matrix."""


def fit_distributed(
    trainer: Trainer, data: dd.DataFrame, client: Client, *, seed: int
) -> Any | None:
    """Train ``trainer`` on the Dask cluster behind ``client``, if its estimator can.

    Blocking. Only small results (partition lengths, distinct categories, the booster)
    come back to this process; the frame itself is never computed here.

    Args:
        trainer: The spec's trainer.
        data: The training rows, with the feature and target columns.
        client: The Dask client of the cluster that trains.
        seed: The cycle's seed (``random_state`` unless ``train.params`` sets it).

    Returns:
        The fitted local Pipeline (see the module docstring), or None when the trainer
        is not an :class:`EstimatorTrainer` of a LightGBM or XGBoost estimator: the
        caller then trains on the client.

    Raises:
        TrainingError: a feature or target column is missing; a LightGBM classifier's
            data has a partition that lacks a class; or fitting failed (the message
            names the estimator).
    """
    if not isinstance(trainer, EstimatorTrainer):
        return None
    backend = _backend(trainer.cls)
    if backend is None:
        return None
    feats, target = trainer.model.features, trainer.model.target
    missing = [c for c in [*feats.all, target] if c not in data.columns]
    if missing:
        raise TrainingError(f"training data lacks column(s): {', '.join(missing)}")
    params = dict(trainer.train.params)
    params.setdefault("random_state", seed)
    name = trainer.train.estimator
    try:
        rows = data[[*feats.all, target]]
        labels = target if backend.every_class_per_worker else None
        lengths, classes, categories = _scan(rows, feats.categorical, labels, client)
        if labels is not None:
            _require_every_class(name, classes)
        if 0 in lengths:  # a worker given only empty partitions would fail to train
            rows = rows.partitions[[i for i, n in enumerate(lengths) if n > 0]]
            lengths = [n for n in lengths if n > 0]
        features = _fitted_features(
            feats.numeric, feats.categorical, categories, ordinal=backend.ordinal
        )
        dtype = _matrix_dtype(rows, feats.numeric)
        names = features.get_feature_names_out()
        meta = pd.DataFrame({c: np.zeros(0, dtype=dtype) for c in names})
        encoded = rows[feats.all].map_partitions(
            _encode, features, feats.categorical, dtype, meta=meta
        )
        X = encoded.to_dask_array(lengths=lengths)
        y = rows[target].to_dask_array(lengths=lengths)
        distributed_model = backend.dask_cls(**params)
        distributed_model.client = client
        if backend.ordinal and feats.categorical:
            codes = list(range(len(feats.numeric), len(feats.all)))
            distributed_model.fit(X, y, categorical_feature=codes)
        else:
            distributed_model.fit(X, y)
        local = backend.to_local(distributed_model, params)
    except TrainingError:
        raise
    except Exception as exc:
        reason = str(exc)
        if "'Future' object" in reason:  # LightGBM hands back a failed partition's future
            reason = "computing a partition of the training data failed on a worker"
        raise TrainingError(f"{name}.fit failed: {reason}") from exc
    log.info("%s trained on Dask (%d partitions, %d rows)", name, len(lengths), sum(lengths))
    return Pipeline([("features", features), ("estimator", local)])


def _backend(cls: type[Any]) -> _Backend | None:
    """The Dask trainer of ``cls``, or None (not LightGBM/XGBoost, or not installed)."""
    libraries = {base.__module__.partition(".")[0] for base in cls.__mro__}
    for library, candidates in (("lightgbm", _lightgbm_backends), ("xgboost", _xgboost_backends)):
        if library not in libraries:  # neither library is imported for other estimators
            continue
        for base, backend in candidates():
            if issubclass(cls, base):
                return backend
    return None


def _lightgbm_backends() -> list[tuple[type[Any], _Backend]]:
    try:
        import lightgbm
    except ImportError:
        return []

    def to_local(model: Any, _params: dict[str, Any]) -> Any:
        return model.to_local()

    return [
        (
            lightgbm.LGBMClassifier,
            _Backend(
                lightgbm.DaskLGBMClassifier, to_local, every_class_per_worker=True, ordinal=True
            ),
        ),
        (lightgbm.LGBMRegressor, _Backend(lightgbm.DaskLGBMRegressor, to_local, ordinal=True)),
    ]


def _xgboost_backends() -> list[tuple[type[Any], _Backend]]:
    try:
        import xgboost
        import xgboost.dask
    except ImportError:
        return []

    def local(cls: type[Any]) -> Callable[[Any, dict[str, Any]], Any]:
        def to_local(model: Any, params: dict[str, Any]) -> Any:
            fitted = cls(**params)
            # The raw booster carries num_class; load_model sets n_classes_ from it, and
            # XGBClassifier's classes_ is arange(n_classes_), as after a local fit.
            fitted.load_model(bytearray(model.get_booster().save_raw(raw_format="ubj")))
            return fitted

        return to_local

    # The random-forest classes subclass the boosting ones: they must match first.
    pairs = [
        (xgboost.XGBRFClassifier, xgboost.dask.DaskXGBRFClassifier),
        (xgboost.XGBRFRegressor, xgboost.dask.DaskXGBRFRegressor),
        (xgboost.XGBClassifier, xgboost.dask.DaskXGBClassifier),
        (xgboost.XGBRegressor, xgboost.dask.DaskXGBRegressor),
    ]
    return [(cls, _Backend(dask_cls, local(cls))) for cls, dask_cls in pairs]


def _scan(
    rows: dd.DataFrame, categorical: list[str], target: str | None, client: Client
) -> tuple[list[int], list[set[Any]], dict[str, pd.Series]]:
    """Per partition its length and (if ``target``) its classes; each categorical
    column's distinct values. One pass on the cluster; only these come back."""
    from dask.delayed import delayed

    parts = [delayed(_summarise)(part, target, categorical) for part in rows.to_delayed()]
    summaries: list[_Summary] = client.compute(parts, sync=True)
    categories = {
        column: _sorted_categories(pd.concat([s.distinct[column] for s in summaries]))
        for column in categorical
    }
    return [s.rows for s in summaries], [s.classes for s in summaries], categories


@dataclass(frozen=True)
class _Summary:
    """What one partition tells the client before training."""

    rows: int
    classes: set[Any]
    distinct: dict[str, pd.Series]


def _summarise(part: pd.DataFrame, target: str | None, categorical: list[str]) -> _Summary:
    """A partition's rows, labels (if ``target``) and categories (runs on a worker)."""
    classes = set(part[target].dropna().unique().tolist()) if target is not None else set()
    distinct = {column: _as_local(part[column]).drop_duplicates() for column in categorical}
    return _Summary(len(part), classes, distinct)


def _require_every_class(name: str | None, classes: list[set[Any]]) -> None:
    """Raise TrainingError unless every non-empty partition holds every class."""
    every = set().union(*classes)
    lacking = [i for i, found in enumerate(classes) if found and found != every]
    if lacking:
        raise TrainingError(
            f"{name} cannot train on Dask: LightGBM needs every class in each worker's "
            f"rows, but partition(s) {', '.join(map(str, lacking[:10]))} lack some of "
            f"{sorted(every, key=str)}; shuffle the rows across partitions, or use "
            "xgboost.XGBClassifier or executor: local"
        )


def _as_local(values: pd.Series) -> pd.Series:
    """A categorical column as a local pandas frame gives it to the encoder.

    Dask turns text into ``string[pyarrow]`` (missing: ``pd.NA``); the encoder of a
    local fit sees objects with NaN for missing, so partitions are converted back.
    Numeric and boolean columns are left as they are.
    """
    if pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
        return values
    return values.astype(object).where(values.notna(), np.nan)


def _sorted_categories(values: pd.Series) -> pd.Series:
    """Distinct values sorted as OneHotEncoder sorts them, missing (NaN) last."""
    values = _as_local(values)
    present = sorted(values[values.notna()].drop_duplicates().tolist())
    missing = [np.nan] if values.isna().any() else []
    return pd.Series([*present, *missing], dtype=values.dtype)


def _fitted_features(
    numeric: list[str],
    categorical: list[str],
    categories: dict[str, pd.Series],
    *,
    ordinal: bool = False,
) -> ColumnTransformer:
    """The trainer's ColumnTransformer, fitted on a tiny frame of exactly ``categories``:
    categorical features one-hot encoded, or (``ordinal``) as codes in the sorted order
    of their levels, an unknown level or a missing value as NaN."""
    steps: list[tuple[str, Any, list[str]]] = []
    if numeric:
        steps.append(("numeric", "passthrough", list(numeric)))
    if categorical:
        encoder: Any = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        if ordinal:
            encoder = OrdinalEncoder(
                handle_unknown="use_encoded_value",
                unknown_value=np.nan,
                encoded_missing_value=np.nan,
            )
        steps.append(("categorical", encoder, list(categorical)))
    size = max([1, *(len(v) for v in categories.values())])
    tiny: dict[str, pd.Series] = {c: pd.Series(np.zeros(size)) for c in numeric}
    for column in categorical:
        values = categories[column]
        if values.empty:
            raise TrainingError(f"categorical feature {column!r} has no values in the data")
        padding = values.iloc[[-1] * (size - len(values))]  # repeats change no category
        tiny[column] = pd.concat([values, padding], ignore_index=True)
    return ColumnTransformer(steps).fit(pd.DataFrame(tiny, columns=[*numeric, *categorical]))


def _matrix_dtype(rows: dd.DataFrame, numeric: list[str]) -> str:
    """float32 when every numeric feature is stored as float32 (no value changes, half
    the memory of the workers' training matrix; one-hot columns are 0 and 1), else
    float64."""
    stored = [str(rows.dtypes[c]) for c in numeric]
    return "float32" if stored and all(t == "float32" for t in stored) else "float64"


def _encode(
    part: pd.DataFrame, features: ColumnTransformer, categorical: list[str], dtype: str
) -> pd.DataFrame:
    """One partition through the fitted ColumnTransformer (runs on a worker)."""
    part = part.assign(**{column: _as_local(part[column]) for column in categorical})
    encoded = np.asarray(features.transform(part), dtype=dtype)
    return pd.DataFrame(encoded, columns=features.get_feature_names_out(), index=part.index)
