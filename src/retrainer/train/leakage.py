"""Leakage checks: refuse to train on data that gives the answer away.

Three checks, run before a candidate is trained (``train.leakage`` in the spec):

* **Holdout rows in training** (:func:`holdout_overlap`): a training row identical to a
  holdout row (every shared column equal, found by 64-bit row hashes of
  :func:`pandas.util.hash_pandas_object`) would let the candidate be judged on rows it
  learnt. Policy ``drop`` removes such rows from training (the holdout stays whole)
  and records the count; ``block`` refuses the run.
* **A feature that predicts the target on its own** (:func:`feature_power`): on the
  training rows (at most ``max_rows``, sampled with the seed), each feature alone is
  turned into a score two ways: its raw value (monotone relations, numeric features
  only) and the target's mean per bin (``sqrt(rows)/2`` quantile bins, 10 to 100) or
  category computed *out of fold* (two folds,
  so that an identifier column with one row per value scores nothing, while any
  relation, monotone or not, does). Classification: the best one-vs-rest ROC AUC of
  the score (a raw value may point either way: ``max(auc, 1 - auc)``); regression:
  the R² of the out-of-fold bin means, or the squared correlation of the raw value.
  Above ``max_feature_auc`` / ``max_feature_r2`` the feature is suspected.
* **Features observed after their label** (``feature_time_columns`` later than
  ``label_time_column`` on any row).

Any suspicion raises :class:`~retrainer.errors.LeakageError` (``LEAKAGE_SUSPECTED``)
naming the features and numbers; the spec's ``exempt`` list lets a feature that is
legitimately that strong through. (A target listed among the features is refused
earlier, when the spec is read.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from retrainer.errors import DataSourceError, LeakageError
from retrainer.spec import LeakageSpec, ModelSection

__all__ = [
    "FeaturePower",
    "LeakageReport",
    "check_leakage",
    "drop_holdout_rows",
    "feature_power",
    "holdout_overlap",
    "overlap_error",
]


def _bins(rows: int) -> int:
    """Quantile bins for a numeric feature: more rows afford finer bins (10 to 100)."""
    return int(np.clip(round(np.sqrt(rows) / 2), 10, 100))


@dataclass(frozen=True)
class FeaturePower:
    """How well one feature alone predicts the target.

    Attributes:
        measure: ``auc`` (classification) or ``r2`` (regression).
        value: The best of the ways tried (see the module docstring).
        how: Which way gave it: ``raw`` value or out-of-fold ``binned`` means.
    """

    feature: str
    measure: str
    value: float
    how: str


@dataclass(frozen=True)
class LeakageReport:
    """What the checks measured (stored in the version's lineage)."""

    rows_checked: int
    features: tuple[FeaturePower, ...] = ()
    holdout_rows_dropped: int = 0
    late_features: dict[str, int] = field(default_factory=dict)
    suspects: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "rows_checked": self.rows_checked,
            "features": [
                {"feature": f.feature, "measure": f.measure, "value": f.value, "how": f.how}
                for f in self.features
            ],
            "holdout_rows_dropped": self.holdout_rows_dropped,
            "late_features": dict(self.late_features),
            "suspects": list(self.suspects),
        }


def _row_hashes(frame: pd.DataFrame, columns: list[str]) -> np.ndarray[Any, Any]:
    return pd.util.hash_pandas_object(frame[columns], index=False).to_numpy()


def holdout_overlap(train: pd.DataFrame, holdout: pd.DataFrame) -> np.ndarray[Any, Any]:
    """A boolean mask of the training rows identical to some holdout row, on the
    columns both share (64-bit row hashes: a false match needs a hash collision)."""
    columns = [c for c in train.columns if c in set(holdout.columns)]
    if not columns or len(train) == 0 or len(holdout) == 0:
        return np.zeros(len(train), dtype=bool)
    held = _row_hashes(holdout, columns)
    return np.isin(_row_hashes(train, columns), held)


def drop_holdout_rows(
    train: pd.DataFrame, holdout: pd.DataFrame, policy: str
) -> tuple[pd.DataFrame, int]:
    """``(train without rows that are also in the holdout, how many were dropped)``.

    Raises:
        LeakageError: policy ``block`` and some training row is a holdout row.
    """
    mask = holdout_overlap(train, holdout)
    count = int(mask.sum())
    if count == 0:
        return train, 0
    if policy == "block":
        raise overlap_error(count)
    return train.loc[~mask].reset_index(drop=True), count


def overlap_error(count: int) -> LeakageError:
    """The error of ``holdout_overlap: block`` when ``count`` training rows are holdout rows."""
    return LeakageError(
        f"{count} training row(s) also appear in the holdout (identical on every "
        "column): the candidate would be judged on rows it learnt. Deduplicate the "
        "source, or set train.leakage.holdout_overlap: drop"
    )


def _fold_codes(codes: np.ndarray[Any, Any], y: np.ndarray[Any, Any], rng: Any) -> Any:
    """Out-of-fold mean of each column of ``y`` (rows x k) per code, two folds."""
    fold = rng.integers(0, 2, size=codes.size)
    out = np.empty(y.shape, dtype=np.float64)
    n_codes = int(codes.max()) + 1 if codes.size else 0
    for f in (0, 1):
        fit, use = fold != f, fold == f
        counts = np.bincount(codes[fit], minlength=n_codes).astype(np.float64)
        prior = y[fit].mean(axis=0) if fit.any() else y.mean(axis=0)
        for j in range(y.shape[1]):
            sums = np.bincount(codes[fit], weights=y[fit, j], minlength=n_codes)
            with np.errstate(invalid="ignore", divide="ignore"):
                means = np.where(counts > 0, sums / np.maximum(counts, 1), prior[j])
            out[use, j] = means[codes[use]]
    return out


def _codes(values: pd.Series[Any], numeric: bool) -> np.ndarray[Any, Any]:
    """Integer codes: quantile bins for numbers, categories otherwise; missing is a code."""
    if numeric:
        x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
        finite = np.isfinite(x)
        if not finite.any():
            return np.zeros(x.size, dtype=np.int64)
        bins = _bins(int(finite.sum()))
        cuts = np.unique(np.quantile(x[finite], np.linspace(0, 1, bins + 1)[1:-1]))
        codes = np.searchsorted(cuts, np.where(finite, x, 0.0), side="left") + 1
        return np.where(finite, codes, 0).astype(np.int64)
    codes, _ = pd.factorize(values.astype(object), use_na_sentinel=True)
    return (np.asarray(codes, dtype=np.int64) + 1).astype(np.int64)  # missing -> 0


def _auc(truth: np.ndarray[Any, Any], score: np.ndarray[Any, Any]) -> float:
    if truth.all() or not truth.any():
        return 0.5
    return float(roc_auc_score(truth, score))


def _r2(y: np.ndarray[Any, Any], pred: np.ndarray[Any, Any]) -> float:
    total = float(((y - y.mean()) ** 2).sum())
    if total == 0:
        return 0.0
    return 1.0 - float(((y - pred) ** 2).sum()) / total


def _raw_rank(values: pd.Series[Any]) -> np.ndarray[Any, Any] | None:
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    finite = np.isfinite(x)
    if not finite.any():
        return None
    return np.where(finite, x, np.nanmin(np.where(finite, x, np.nan)) - 1.0)


def feature_power(
    frame: pd.DataFrame, model: ModelSection, *, max_rows: int = 200_000, seed: int = 0
) -> tuple[int, list[FeaturePower]]:
    """``(rows used, each feature's power alone)`` on ``frame`` (see the module docstring).

    Rows with a missing target are left out; a classification target with one class
    gives no measure (there is nothing to predict).
    """
    rng = np.random.default_rng(seed)
    data = frame.loc[frame[model.target].notna()]
    if len(data) > max_rows:
        data = data.iloc[np.sort(rng.choice(len(data), size=max_rows, replace=False))]
    target = data[model.target]
    classify = model.task == "classification"
    if classify:
        classes = pd.unique(target)
        if len(classes) < 2:
            return len(data), []
        if len(classes) == 2:
            classes = classes[1:]  # one column is enough: the other AUC is the same
        y = np.column_stack([(target == c).to_numpy() for c in classes]).astype(np.float64)
    else:
        y = pd.to_numeric(target, errors="coerce").to_numpy(dtype=np.float64)[:, None]
        if not np.isfinite(y).all():
            return len(data), []
    numeric = set(model.features.numeric)
    out: list[FeaturePower] = []
    for name in model.features.all:
        if name not in data.columns:
            continue
        col = data[name]
        binned = _fold_codes(_codes(col, name in numeric), y, rng)
        raw = _raw_rank(col) if name in numeric else None
        if classify:
            tries = {"binned": max(_auc(y[:, j] > 0, binned[:, j]) for j in range(y.shape[1]))}
            if raw is not None:
                aucs = [_auc(y[:, j] > 0, raw) for j in range(y.shape[1])]
                tries["raw"] = max(max(a, 1.0 - a) for a in aucs)
        else:
            tries = {"binned": _r2(y[:, 0], binned[:, 0])}
            if raw is not None and np.std(raw) > 0 and np.std(y) > 0:
                tries["raw"] = float(np.corrcoef(raw, y[:, 0])[0, 1] ** 2)
        how = max(tries, key=lambda k: tries[k])
        measure = "auc" if classify else "r2"
        out.append(FeaturePower(name, measure, round(float(tries[how]), 6), how))
    return len(data), out


def _late_features(frame: pd.DataFrame, spec: LeakageSpec) -> dict[str, int]:
    if spec.label_time_column is None:
        return {}
    for col in (spec.label_time_column, *spec.feature_time_columns):
        if col not in frame.columns:
            raise DataSourceError(
                f"train.leakage names the time column {col!r}, but the training data has "
                f"no such column (columns: {', '.join(map(str, frame.columns))})"
            )
    label = pd.to_datetime(frame[spec.label_time_column], utc=True, errors="coerce")
    late = {}
    for col in spec.feature_time_columns:
        seen = pd.to_datetime(frame[col], utc=True, errors="coerce")
        count = int((seen > label).sum())
        if count:
            late[col] = count
    return late


def check_leakage(
    train: pd.DataFrame,
    model: ModelSection,
    spec: LeakageSpec,
    *,
    seed: int = 0,
    holdout_rows_dropped: int = 0,
) -> LeakageReport:
    """Run the feature and time checks on the training rows.

    Raises:
        LeakageError: a feature (not exempt) passes its threshold, or a feature time
            column is later than the label time on some row; the message names each.
        DataSourceError: a time column named in the spec is missing.
    """
    if not spec.enabled:
        return LeakageReport(rows_checked=0, holdout_rows_dropped=holdout_rows_dropped)
    rows, powers = feature_power(train, model, max_rows=spec.max_rows, seed=seed)
    late = _late_features(train, spec)
    suspects = []
    for p in powers:
        limit = spec.max_feature_auc if p.measure == "auc" else spec.max_feature_r2
        if p.value > limit and p.feature not in spec.exempt:
            label = "AUC" if p.measure == "auc" else "R^2"
            suspects.append(
                f"feature {p.feature!r} alone predicts {model.target!r} with {label} "
                f"{p.value:.4f} > {limit} ({p.how})"
            )
    suspects += [
        f"{col!r} is later than the label time {spec.label_time_column!r} on {n} row(s)"
        for col, n in late.items()
    ]
    report = LeakageReport(rows, tuple(powers), holdout_rows_dropped, late, tuple(suspects))
    if suspects:
        raise LeakageError(
            "training refused, the data may leak the target: "
            + "; ".join(suspects)
            + ". Remove the feature, fix the data, or list a legitimately strong "
            "feature in train.leakage.exempt"
        )
    return report
