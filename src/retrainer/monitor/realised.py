"""Realised performance: logged predictions joined to their labels, per time window.

Reads what :mod:`retrainer.monitor.predictions` wrote (same rules for ids, labels and
timestamps) and scores each window with :mod:`retrainer.evaluate.metrics`.
"""

from __future__ import annotations

import math
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sklearn.exceptions import UndefinedMetricWarning
from sqlalchemy import (
    and_,
    null,
    outerjoin,
    select,
)
from sqlalchemy.orm import Session

from retrainer.evaluate.metrics import METRICS, score
from retrainer.monitor.prediction_records import label_text, scalar, timestamp
from retrainer.monitor.predictions import _MAX_WINDOWS
from retrainer.registry.db import Database
from retrainer.registry.tables import Label, Prediction
from retrainer.spec import parse_duration

__all__ = ["realised_performance"]

_RESULT_COLUMNS = [
    "window_start",
    "window_end",
    "predicted",
    "labelled",
    "coverage",
    "value",
    "note",
]


def realised_performance(
    db: Database,
    model: str,
    *,
    metric: str,
    window: str | timedelta = "1d",
    since: datetime | None = None,
    until: datetime | None = None,
    version: int | None = None,
    min_labels: int = 30,
) -> pd.DataFrame:
    """``metric`` of the logged predictions that have labels, one row per time window.

    Predictions of ``model`` (of ``version`` only, if given) with ``since <=
    predicted_at < until`` are joined to their labels by prediction id and grouped into
    windows of length ``window`` (``"1d"``, ``"12h"``, ``"2w"``... or a timedelta), aligned
    on ``since`` when given, else on the Unix epoch (so ``"1d"`` windows are UTC days).
    Every window from the first to the last (or from ``since`` to ``until``) is listed,
    including empty ones.

    Columns: ``window_start``, ``window_end`` (UTC), ``predicted`` (rows logged),
    ``labelled`` (of those, rows with a label), ``coverage`` (labelled / predicted),
    ``value`` (the metric, computed by :func:`retrainer.evaluate.metrics.score` on the
    labelled rows that carry the output it needs: ``score`` or ``probabilities`` for
    probability metrics, ``label`` for label metrics, ``score`` for regression) and
    ``note`` (why ``value`` is missing). ``value`` is missing (NaN) when fewer than
    ``min_labels`` rows can be scored or the metric is undefined (e.g. ROC AUC with a
    single class); ``coverage`` is NaN for an empty window. ``df.attrs["metric"]``
    names the metric.

    Raises:
        ValueError: unknown metric, bad window, naive ``since``/``until``, or more than
            100,000 windows.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
    step = parse_duration(window)
    if step <= timedelta(0):
        raise ValueError(f"window must be a positive duration, got {window!r}")
    lo = timestamp(since, "since") if since is not None else None
    hi = timestamp(until, "until") if until is not None else None
    if lo is not None and hi is not None and hi <= lo:
        raise ValueError(f"until ({hi.isoformat()}) must be after since ({lo.isoformat()})")
    uses = METRICS[metric].uses
    output = Prediction.label if uses == "label" else Prediction.score

    probabilities = Prediction.probabilities if uses == "proba" else null()
    joined = outerjoin(
        Prediction,
        Label,
        and_(Label.model == Prediction.model, Label.prediction_id == Prediction.prediction_id),
    )

    def read(s: Session) -> list[tuple[Any, ...]]:
        q = (
            select(Prediction.predicted_at, output, probabilities, Label.label)
            .select_from(joined)
            .where(Prediction.model == model)
        )
        if version is not None:
            q = q.where(Prediction.version == version)
        if lo is not None:
            q = q.where(Prediction.predicted_at >= lo)
        if hi is not None:
            q = q.where(Prediction.predicted_at < hi)
        return [tuple(r) for r in s.execute(q)]

    frame = pd.DataFrame(db.transaction(read), columns=["at", "output", "probabilities", "truth"])
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    origin = pd.Timestamp(lo if lo is not None else datetime(1970, 1, 1, tzinfo=UTC))
    step_td = pd.Timedelta(step)
    frame["window"] = ((frame["at"] - origin) // step_td).astype("int64")
    if frame.empty and (lo is None or hi is None):
        result = pd.DataFrame({c: [] for c in _RESULT_COLUMNS})
        result.attrs["metric"] = metric
        return result
    first = 0 if lo is not None else int(frame["window"].min())
    last = (
        math.ceil((pd.Timestamp(hi) - origin) / step_td) - 1
        if hi is not None
        else int(frame["window"].max())
    )
    if last - first + 1 > _MAX_WINDOWS:
        raise ValueError(
            f"{last - first + 1} windows of {window!r} in the range; at most {_MAX_WINDOWS} "
            "(choose a longer window or a shorter range)"
        )
    groups = dict(tuple(frame.groupby("window", sort=True))) if not frame.empty else {}
    out = []
    for w in range(first, last + 1):
        start = origin + w * step_td
        part = groups.get(w)
        predicted = 0 if part is None else len(part)
        labelled_part = part[part["truth"].notna()] if part is not None else frame.iloc[0:0]
        value, note = _window_value(metric, labelled_part, min_labels, predicted)
        out.append(
            {
                "window_start": start,
                "window_end": start + step_td,
                "predicted": predicted,
                "labelled": len(labelled_part),
                "coverage": len(labelled_part) / predicted if predicted else math.nan,
                "value": value,
                "note": note,
            }
        )
    result = pd.DataFrame(out, columns=_RESULT_COLUMNS)
    result["value"] = result["value"].astype("float64")
    result.attrs["metric"] = metric
    return result


def _window_value(
    metric: str, labelled: pd.DataFrame, min_labels: int, predicted: int
) -> tuple[float, str | None]:
    if predicted == 0:
        return math.nan, "no predictions"
    try:
        y, output = _metric_inputs(metric, labelled)
    except ValueError as exc:
        return math.nan, f"labels do not fit the metric: {exc}"
    if len(y) < max(min_labels, 1):
        return math.nan, f"too few labels to score ({len(y)} < {max(min_labels, 1)})"
    try:
        with warnings.catch_warnings():  # an undefined metric is reported in the note
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            value = score(metric, y, output)
    except ValueError as exc:
        return math.nan, f"{metric} undefined: {exc}"
    if not math.isfinite(value):
        return math.nan, f"{metric} undefined (not finite)"
    return value, None


def _metric_inputs(
    metric: str, labelled: pd.DataFrame
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    info = METRICS[metric]
    if info.uses == "value":
        rows = labelled[labelled["output"].notna()]
        truth = [scalar(t) for t in rows["truth"]]
        if any(isinstance(t, bool) or not isinstance(t, int | float) for t in truth):
            raise ValueError("regression needs numeric labels")
        return np.asarray(truth, dtype=float), rows["output"].to_numpy(dtype=float)
    if info.uses == "label":
        rows = labelled[labelled["output"].notna()]
        truth = [label_text(t) for t in rows["truth"]]
        return np.asarray(truth, dtype=object), rows["output"].to_numpy(dtype=object)
    scored = labelled[labelled["output"].notna()]
    if len(scored):
        truth = [label_text(t) for t in scored["truth"]]
        return np.asarray(truth, dtype=object), scored["output"].to_numpy(dtype=float)
    rows = labelled[labelled["probabilities"].notna()]
    classes = sorted({c for p in rows["probabilities"] for c in p})
    matrix = np.array([[p.get(c, 0.0) for c in classes] for p in rows["probabilities"]])
    truth = [label_text(t) for t in rows["truth"]]
    return np.asarray(truth, dtype=object), matrix.reshape(len(rows), len(classes))
