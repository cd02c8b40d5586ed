"""The prediction log and its labels.

Serving logs every prediction (``log_predictions``); labels arrive later, for some of
them (``add_labels``); :func:`retrainer.monitor.realised.realised_performance` joins the
two by prediction id and scores each time window.

Decisions, so that callers can rely on them:

- **Prediction ids are unique per model.** A call that repeats an id (within the call
  or already in the store) writes nothing and names the id. One call is one transaction.
- **Labels are kept even when no prediction has that id** (yet): nothing is lost, the
  join happens at read time, and :class:`LabelReport` says how many matched.
- **A label is replaced only explicitly.** The same value again is a no-op; a different
  value is a :class:`~retrainer.errors.ConflictError` naming the id unless
  ``replace=True``, and then one audit event (``labels.replaced``) records the old and
  new values. New predictions and labels are data, not audited state changes: auditing
  every served request would serialise serving on the audit chain.
- **Label comparison.** Labels are JSON scalars (text, integer, float or boolean;
  integral floats are stored as integers, so ``1.0`` from a pandas column equals ``1``).
  Classification metrics compare the true and predicted labels as text (``str(1) ==
  "1"``, booleans as ``"True"``/``"False"``); the predicted label is stored as text by
  the same rule.

Timestamps are timezone-aware (naive ones are refused: their instant is unknown).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import pandas as pd
from sqlalchemy import (
    String,
    and_,
    any_,
    bindparam,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from retrainer.errors import ConflictError
from retrainer.monitor.prediction_records import (
    InvalidRecordsError,
    as_records,
    check_columns,
    check_model,
    is_missing,
    label_text,
    label_value,
    prediction_id_text,
    prediction_row,
    timestamp,
)
from retrainer.registry.audit import append_event
from retrainer.registry.db import Database, as_utc
from retrainer.registry.tables import Base, Label, Prediction

__all__ = [
    "PREDICTION_COLUMNS",
    "InvalidRecordsError",
    "LabelReport",
    "add_labels",
    "label_text",
    "log_predictions",
]

PREDICTION_COLUMNS = ("prediction_id", "predicted_at", "score", "label", "probabilities")
"""The columns a prediction record may have; ``prediction_id`` is required."""

_CHUNK = 5_000  # rows per executemany
_ID_CHUNK = 900  # ids per IN (...) lookup, below every SQLite variable limit
_PG_ID_CHUNK = 20_000  # ids per = ANY(array) lookup on PostgreSQL
_MAX_WINDOWS = 100_000
_SHOWN = 5  # ids named in an error message
_T = TypeVar("_T")
_PREDICTIONS = Base.metadata.tables["predictions"]
_LABELS = Base.metadata.tables["labels"]


@dataclass(frozen=True)
class LabelReport:
    """What ``add_labels`` did with the labels it was given.

    Attributes:
        received: Distinct prediction ids in the call.
        inserted: Labels stored for ids that had none.
        replaced: Labels changed (only with ``replace=True``).
        unchanged: Labels equal to the stored one (no-op).
        matched: Ids of the call that have a logged prediction of the model.
        unmatched: Ids without a logged prediction (kept; they join once it is logged).
    """

    received: int
    inserted: int
    replaced: int
    unchanged: int
    matched: int
    unmatched: int

    def to_dict(self) -> dict[str, int]:
        """A JSON-ready dict."""
        return dict(self.__dict__)


def _chunks(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _shown(ids: Sequence[str]) -> str:
    more = f" and {len(ids) - _SHOWN} more" if len(ids) > _SHOWN else ""
    return ", ".join(repr(i) for i in ids[:_SHOWN]) + more


def _duplicates(ids: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    dups: list[str] = []
    for pid in ids:
        if pid in seen:
            dups.append(pid)
        seen.add(pid)
    return dups


# -- prediction log ------------------------------------------------------------------------


def log_predictions(
    db: Database,
    model: str,
    version: int,
    frame_or_records: pd.DataFrame | Iterable[Mapping[str, Any]],
    *,
    at: datetime | None = None,
) -> int:
    """Append predictions of ``model`` version ``version`` to the log; return the row count.

    Each record (a DataFrame row or a mapping) has a ``prediction_id`` (text or integer,
    unique per model) and at least one output: ``score`` (positive-class probability of
    a binary classifier, or a regressor's value), ``label`` (predicted class) or
    ``probabilities`` (``{class: probability}`` for a multiclass classifier). Its
    ``predicted_at`` (timezone-aware; ISO 8601 text accepted) defaults to ``at``, then to
    the store's clock. Other columns are refused, so a misspelt one is not lost silently.

    All or nothing: one transaction, inserted in chunks (executemany).

    Raises:
        InvalidRecordsError: a record is malformed or an id repeats within the call;
            the message names the row, the id and the column.
        ConflictError: ids already logged for this model (named); nothing is written.
    """
    check_model(model)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidRecordsError(f"version must be a positive integer, got {version!r}")
    records = as_records(frame_or_records, "predictions")
    check_columns(records, PREDICTION_COLUMNS, "prediction_id", "predictions")
    default_at = timestamp(at, "at") if at is not None else as_utc(db.clock())
    rows = [prediction_row(r, i, model, version, default_at) for i, r in enumerate(records)]
    dups = _duplicates(r["prediction_id"] for r in rows)
    if dups:
        raise InvalidRecordsError(
            f"predictions: prediction_id {_shown(sorted(set(dups)))} repeated in the call; "
            "ids must be unique per model"
        )
    if not rows:
        return 0

    def write(s: Session) -> None:
        for chunk in _chunks(rows, _CHUNK):
            s.execute(insert(_PREDICTIONS), list(chunk))

    try:
        db.transaction(write)
    except IntegrityError as exc:
        taken = db.transaction(
            lambda s: _existing(s, Prediction, model, [r["prediction_id"] for r in rows])
        )
        if not taken:  # pragma: no cover - an integrity error that is not a repeated id
            raise
        raise ConflictError(
            f"predictions: prediction_id {_shown(sorted(taken))} already logged for model "
            f"{model!r}; nothing was written"
        ) from exc
    return len(rows)


def _existing(
    s: Session, table: type[Prediction] | type[Label], model: str, ids: Sequence[str]
) -> dict[str, Any]:
    """``{prediction_id: value}`` of the ids present (value: the label, or None).

    PostgreSQL gets each chunk as one array parameter (``= ANY(:ids)``): a long
    ``IN (...)`` list costs more to plan there than the lookup itself.
    """
    postgres = s.get_bind().dialect.name == "postgresql"
    size = _PG_ID_CHUNK if postgres else _ID_CHUNK
    found: dict[str, Any] = {}
    for chunk in _chunks(ids, size):
        column = table.prediction_id
        match = (
            column == any_(literal(list(chunk), ARRAY(String()))) if postgres else column.in_(chunk)
        )
        if table is Label:
            q = select(Label.prediction_id, Label.label).where(Label.model == model, match)
            found.update({pid: value for pid, value in s.execute(q)})
        else:
            q2 = select(Prediction.prediction_id).where(Prediction.model == model, match)
            found.update({pid: None for pid in s.scalars(q2)})
    return found


# -- labels --------------------------------------------------------------------------------


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def add_labels(
    db: Database,
    model: str,
    records: pd.DataFrame | Iterable[Mapping[str, Any]],
    *,
    replace: bool = False,
    actor: str = "system",
) -> LabelReport:
    """Store true labels (``prediction_id``, ``label``) of ``model``'s predictions.

    Labels whose id has no logged prediction are kept (they join once it is logged) and
    counted as ``unmatched``. The same label again is a no-op; a *different* label for
    an id that has one is refused unless ``replace=True``, which overwrites it and
    appends one ``labels.replaced`` audit event by ``actor`` with the old and new values.
    All or nothing: one transaction (retried if a concurrent writer added the same ids).

    Raises:
        InvalidRecordsError: a record is malformed (missing or non-scalar label), or one
            id has two different labels in the call; the message names the row and id.
        ConflictError: without ``replace``, ids whose stored label differs (named);
            nothing is written.
    """
    check_model(model)
    recs = as_records(records, "labels")
    check_columns(recs, ("prediction_id", "label"), "prediction_id", "labels")
    given: dict[str, Any] = {}
    for i, rec in enumerate(recs):
        pid = prediction_id_text(rec["prediction_id"], i, "labels")
        if "label" not in rec or is_missing(rec["label"]):
            raise InvalidRecordsError(f"labels: row {i} (prediction_id {pid!r}): no 'label'")
        try:
            value = label_value(rec["label"])
        except ValueError as exc:
            raise InvalidRecordsError(
                f"labels: row {i} (prediction_id {pid!r}): 'label': {exc}"
            ) from exc
        if pid in given and _canonical(given[pid]) != _canonical(value):
            raise InvalidRecordsError(
                f"labels: prediction_id {pid!r} has two different labels in the call: "
                f"{given[pid]!r} and {value!r}"
            )
        given[pid] = value
    ids = list(given)

    def write(s: Session) -> LabelReport:
        stored = _existing(s, Label, model, ids)
        new = [pid for pid in ids if pid not in stored]
        changed = [
            pid
            for pid in ids
            if pid in stored and _canonical(stored[pid]) != _canonical(given[pid])
        ]
        if changed and not replace:
            raise ConflictError(
                f"labels: prediction_id {_shown(changed)} of model {model!r} already "
                "labelled differently; pass replace=True to overwrite (nothing was written)"
            )
        now = as_utc(db.clock())
        for chunk in _chunks(new, _CHUNK):
            s.execute(
                insert(_LABELS),
                [
                    {"model": model, "prediction_id": p, "label": given[p], "arrived_at": now}
                    for p in chunk
                ],
            )
        if changed:
            stmt = (
                update(_LABELS)
                .where(
                    and_(
                        _LABELS.c.model == bindparam("m"),
                        _LABELS.c.prediction_id == bindparam("pid"),
                    )
                )
                .values(label=bindparam("new_label"), arrived_at=bindparam("at"))
            )
            for chunk in _chunks(changed, _CHUNK):
                s.execute(
                    stmt,
                    [{"m": model, "pid": p, "new_label": given[p], "at": now} for p in chunk],
                )
            append_event(
                s,
                at=now,
                actor=actor,
                action="labels.replaced",
                subject=f"{model}/labels",
                payload={
                    "replaced": len(changed),
                    "changes": [
                        {"prediction_id": p, "from": stored[p], "to": given[p]}
                        for p in changed[:50]
                    ],
                },
            )
        matched = len(_existing(s, Prediction, model, ids))
        return LabelReport(
            received=len(ids),
            inserted=len(new),
            replaced=len(changed),
            unchanged=len(ids) - len(new) - len(changed),
            matched=matched,
            unmatched=len(ids) - matched,
        )

    return _retry_on_race(lambda: db.transaction(write))


def _retry_on_race(fn: Callable[[], _T], attempts: int = 3) -> _T:
    """Run ``fn`` again when a concurrent writer inserted the same key first."""
    for attempt in range(attempts):
        try:
            return fn()
        except IntegrityError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


# -- realised performance ------------------------------------------------------------------
