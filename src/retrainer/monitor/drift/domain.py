"""Multivariate drift: can a classifier tell reference rows from current rows?

A gradient-boosted classifier (scikit-learn's ``HistGradientBoostingClassifier``,
categorical columns handled natively) is trained to predict "current" against
"reference" on a seeded sample of at most ``max_rows`` rows per side. Its
cross-validated ROC AUC (``StratifiedKFold``, shuffled with the seed) is about 0.5 when
the two are indistinguishable and approaches 1 as they separate, also for changes no
single column shows (a correlation that flipped). AUC is insensitive to the two sides'
sizes differing.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["DomainClassifierResult", "domain_classifier"]

_MAX_CATEGORIES = 250  # HistGradientBoosting bins categories into at most 255 bins
_BIG = 1e300  # stands in for ±inf, which the classifier refuses


@dataclass(frozen=True)
class DomainClassifierResult:
    """Cross-validated ROC AUC of reference-vs-current, and its spread across folds."""

    auc: float
    auc_std: float
    fold_aucs: tuple[float, ...]
    n_reference: int
    n_current: int


def _sample(frame: pd.DataFrame, rows: int, rng: np.random.Generator) -> pd.DataFrame:
    if len(frame) <= rows:
        return frame.reset_index(drop=True)
    pick = np.sort(rng.choice(len(frame), size=rows, replace=False))
    return frame.iloc[pick].reset_index(drop=True)


def _codes(ref: pd.Series[Any], cur: pd.Series[Any]) -> tuple[Any, Any]:
    """Both sides' category keys as float codes (NaN for missing); the most frequent
    categories keep their own code, the rest share one."""
    both = pd.concat([ref, cur], ignore_index=True).astype(object)
    counts = both.value_counts(dropna=True)
    keep = list(counts.index[:_MAX_CATEGORIES])
    index = {k: float(i) for i, k in enumerate(keep)}
    other = float(len(keep))

    def encode(s: pd.Series[Any]) -> Any:
        return np.array(
            [np.nan if v is None or v != v else index.get(v, other) for v in s], dtype=float
        )

    return encode(ref), encode(cur)


def domain_classifier(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    max_rows: int = 20_000,
    folds: int = 5,
    seed: int = 0,
    threads: int | None = 1,
) -> DomainClassifierResult:
    """Cross-validated AUC of a classifier separating ``current`` from ``reference``.

    Numeric columns must be float64 (NaN allowed; ``±inf`` become ``±1e300``);
    categorical columns hold string keys or None. Deterministic for a given ``seed``.

    ``threads`` caps the classifier's OpenMP threads while it runs (None: its default,
    every core). One is the default: the sample is small, and when other processes
    share the cores (test workers, Dask workers, a busy host) OpenMP's spinning threads
    can make a multi-threaded fit many times slower.

    Raises:
        ValueError: no columns, or fewer than ``folds`` rows on a side.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from threadpoolctl import threadpool_limits

    if not numeric and not categorical:
        raise ValueError("expected at least one column for the domain classifier")
    if folds < 2:
        raise ValueError(f"expected at least 2 folds, got {folds}")
    rng = np.random.default_rng(seed)
    ref = _sample(reference, max_rows, rng)
    cur = _sample(current, max_rows, rng)
    if min(len(ref), len(cur)) < folds:
        raise ValueError(
            f"expected at least {folds} rows on each side, got {len(ref)} and {len(cur)}"
        )
    columns_ref: list[Any] = []
    columns_cur: list[Any] = []
    for name in numeric:
        for side, out in ((ref, columns_ref), (cur, columns_cur)):
            out.append(np.clip(side[name].to_numpy(dtype=np.float64), -_BIG, _BIG))
    for name in categorical:
        a, b = _codes(ref[name], cur[name])
        columns_ref.append(a)
        columns_cur.append(b)
    x = np.vstack([np.column_stack(columns_ref), np.column_stack(columns_cur)])
    y = np.concatenate([np.zeros(len(ref), dtype=int), np.ones(len(cur), dtype=int)])
    mask = np.array([False] * len(numeric) + [True] * len(categorical))
    clf = HistGradientBoostingClassifier(
        categorical_features=mask if mask.any() else None,
        early_stopping=True,
        random_state=seed,
    )
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    limits = nullcontext() if threads is None else threadpool_limits(threads, user_api="openmp")
    with limits:
        scores = np.asarray(cross_val_score(clf, x, y, cv=cv, scoring="roc_auc"), dtype=float)
    return DomainClassifierResult(
        auc=float(scores.mean()),
        auc_std=float(scores.std()),
        fold_aucs=tuple(float(s) for s in scores),
        n_reference=len(ref),
        n_current=len(cur),
    )
