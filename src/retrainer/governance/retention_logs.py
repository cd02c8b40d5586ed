"""Retention of prediction logs: the store's ``predictions``/``labels`` and the Parquet log.

Both are deleted by whole UTC days: a day is due once all of it is older than the
``predictions`` period, so an item planned in the morning is the same item in the
afternoon. A day's item in the store is its predictions (except those of versions
under legal hold), their labels, and the labels that arrived that day for no logged
prediction; its hash is a sha256 over those rows as canonical JSON lines, and its size
the bytes of those lines. A day's item in the Parquet log is its folder; its hash is
a sha256 over each file's name, sha256 and size. A folder holding rows of a held
version is kept whole.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, exists, func, select
from sqlalchemy.orm import Session

from retrainer.governance.retention_items import KeptItem, RetentionItem
from retrainer.governance.retention_store import Changed
from retrainer.registry.audit import append_event
from retrainer.registry.db import as_utc
from retrainer.registry.tables import Label, Prediction

if TYPE_CHECKING:
    from retrainer.workspace import Workspace

__all__ = ["apply_log_item", "apply_prediction_item", "log_items", "prediction_items"]

log = logging.getLogger(__name__)

_CHUNK = 900  # ids per IN (...), below every SQLite variable limit
_DAY = timedelta(days=1)


def _cutoff(now: datetime, period: timedelta) -> datetime:
    """Midnight UTC of the first day that is not wholly older than ``period``."""
    return datetime.combine(as_utc(now - period).date(), time(), UTC)


def _line(row: Sequence[Any]) -> bytes:
    return json.dumps(list(row), sort_keys=True, separators=(",", ":"), default=str).encode()


def _day_rows(
    s: Session, model: str, day: date, hold: Sequence[int]
) -> tuple[list[str], list[str], str, int]:
    """(prediction ids, label ids, sha256, size) of one day's rows in the store."""
    start = datetime.combine(day, time(), UTC)
    query = select(
        Prediction.prediction_id,
        Prediction.version,
        Prediction.predicted_at,
        Prediction.score,
        Prediction.label,
        Prediction.probabilities,
    ).where(
        Prediction.model == model,
        Prediction.predicted_at >= start,
        Prediction.predicted_at < start + _DAY,
    )
    if hold:
        query = query.where(Prediction.version.not_in(list(hold)))
    preds = sorted(
        (str(i), v, as_utc(at).isoformat(), sc, lb, pr) for i, v, at, sc, lb, pr in s.execute(query)
    )
    ids = [p[0] for p in preds]
    labels: dict[str, tuple[Any, ...]] = {}
    for chunk in _chunks(ids):
        q = select(Label.prediction_id, Label.label, Label.arrived_at).where(
            Label.model == model, Label.prediction_id.in_(chunk)
        )
        labels.update({i: (i, lb, as_utc(at).isoformat()) for i, lb, at in s.execute(q)})
    orphans = select(Label.prediction_id, Label.label, Label.arrived_at).where(
        Label.model == model,
        Label.arrived_at >= start,
        Label.arrived_at < start + _DAY,
        ~exists().where(
            Prediction.model == Label.model, Prediction.prediction_id == Label.prediction_id
        ),
    )
    labels.update({i: (i, lb, as_utc(at).isoformat()) for i, lb, at in s.execute(orphans)})
    digest, size = hashlib.sha256(), 0
    for row in [("p", *p) for p in preds] + [("l", *labels[k]) for k in sorted(labels)]:
        line = _line(row) + b"\n"
        digest.update(line)
        size += len(line)
    return ids, sorted(labels), digest.hexdigest(), size


def _chunks(ids: Sequence[str]) -> Iterable[list[str]]:
    for start in range(0, len(ids), _CHUNK):
        yield list(ids[start : start + _CHUNK])


def _days(s: Session, model: str, end: datetime, hold: Sequence[int]) -> list[date]:
    """UTC days before ``end`` with deletable predictions or orphan labels."""
    days: set[date] = set()
    after: datetime | None = None
    while True:  # one indexed min() per day with data, not a scan of every row
        q = select(func.min(Prediction.predicted_at)).where(
            Prediction.model == model, Prediction.predicted_at < end
        )
        if hold:
            q = q.where(Prediction.version.not_in(list(hold)))
        if after is not None:
            q = q.where(Prediction.predicted_at >= after)
        first = s.scalar(q)
        if first is None:
            break
        day = as_utc(first).date()
        days.add(day)
        after = datetime.combine(day, time(), UTC) + _DAY
    orphans = select(Label.arrived_at).where(
        Label.model == model,
        Label.arrived_at < end,
        ~exists().where(
            Prediction.model == Label.model, Prediction.prediction_id == Label.prediction_id
        ),
    )
    days |= {as_utc(at).date() for (at,) in s.execute(orphans)}
    return sorted(days)


def prediction_items(
    ws: Workspace, now: datetime, period: timedelta, hold: Sequence[int]
) -> tuple[list[RetentionItem], list[KeptItem]]:
    """One item per UTC day of the store's prediction log older than ``period``."""
    model = ws.spec.model.name
    end = _cutoff(now, period)

    def fn(s: Session) -> tuple[list[RetentionItem], list[KeptItem]]:
        items = []
        for day in _days(s, model, end, hold):
            ids, labels, sha, size = _day_rows(s, model, day, hold)
            since = datetime.combine(day, time(), UTC)
            items.append(
                RetentionItem(
                    "predictions",
                    f"{model}/predictions/{day.isoformat()}",
                    since,
                    now - since,
                    size,
                    sha,
                    f"predictions {_d(period)}: the whole day {day.isoformat()} is older",
                    rows=len(ids) + len(labels),
                    detail={"day": day.isoformat(), "predictions": len(ids), "labels": len(labels)},
                )
            )
        kept = []
        if hold:
            held = s.scalar(
                select(func.count()).where(
                    Prediction.model == model,
                    Prediction.predicted_at < end,
                    Prediction.version.in_(list(hold)),
                )
            )
            if held:
                versions = ", ".join(f"v{v}" for v in hold)
                why = f"legal hold: {held} predictions of {versions} older than the period"
                kept.append(KeptItem("predictions", f"{model}/predictions", (why,)))
        return items, kept

    return ws.db.transaction(fn)


def _d(period: timedelta) -> str:
    days = period.total_seconds() / 86400
    return f"{int(days)}d" if days.is_integer() else f"{int(period.total_seconds())}s"


def apply_prediction_item(ws: Workspace, item: RetentionItem, *, actor: str) -> int:
    """Delete one day's rows and append its audit event, in one transaction.

    Raises:
        Changed: the day's rows are no longer those planned (their hash differs).
    """
    model = ws.spec.model.name
    day = date.fromisoformat(item.detail["day"])
    hold = ws.spec.retention.legal_hold

    def fn(s: Session) -> int:
        ids, labels, sha, _ = _day_rows(s, model, day, hold)
        if sha != item.sha256:
            raise Changed(f"the rows of {item.subject} changed since the plan")
        for chunk in _chunks(ids):
            s.execute(
                delete(Prediction).where(
                    Prediction.model == model, Prediction.prediction_id.in_(chunk)
                )
            )
        for chunk in _chunks(labels):
            s.execute(delete(Label).where(Label.model == model, Label.prediction_id.in_(chunk)))
        event = append_event(
            s,
            at=ws.db.clock(),
            actor=actor,
            action="retention.delete",
            subject=item.subject,
            payload=item.audit_payload(),
        )
        return event.id

    return ws.db.transaction(fn)


# -- the server's Parquet prediction log ---------------------------------------------------


def _folder_digest(folder: Path) -> tuple[str, int, list[dict[str, Any]]]:
    files: list[dict[str, Any]] = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        data = path.read_bytes()
        files.append(
            {"name": path.name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        )
    digest = hashlib.sha256(b"".join(_line([f["name"], f["sha256"], f["size"]]) for f in files))
    return digest.hexdigest(), sum(int(f["size"]) for f in files), files


def _held_rows(folder: Path, hold: Sequence[int]) -> str | None:
    """Why a folder must be kept for the legal hold, or None."""
    import pyarrow.parquet as pq

    for path in sorted(folder.glob("part-*.parquet")):
        try:
            versions = set(pq.read_table(path, columns=["version"]).column(0).to_pylist())
        except Exception as exc:  # noqa: BLE001 - unreadable: cannot prove it holds no held rows
            return f"legal hold: {path.name} could not be read ({exc}), so it is kept"
        held = sorted(versions & set(hold))
        if held:
            return f"legal hold: holds predictions of {', '.join(f'v{v}' for v in held)}"
    return None


def log_items(
    root: Path, model: str, now: datetime, period: timedelta, hold: Sequence[int]
) -> tuple[list[RetentionItem], list[KeptItem]]:
    """One item per day folder of the Parquet log wholly older than ``period``."""
    base = root / f"model={model}"
    end = _cutoff(now, period).date()
    items, kept = [], []
    for folder in sorted(base.glob("date=*")) if base.is_dir() else []:
        try:
            day = date.fromisoformat(folder.name.removeprefix("date="))
        except ValueError:
            continue  # not a partition of ours
        if day >= end or not folder.is_dir():
            continue
        subject = f"{model}/prediction_log/{day.isoformat()}"
        held = _held_rows(folder, hold) if hold else None
        if held:
            kept.append(KeptItem("prediction_log", subject, (held,)))
            continue
        sha, size, files = _folder_digest(folder)
        since = datetime.combine(day, time(), UTC)
        items.append(
            RetentionItem(
                "prediction_log",
                subject,
                since,
                now - since,
                size,
                sha,
                f"predictions {_d(period)}: the whole day {day.isoformat()} is older",
                detail={"day": day.isoformat(), "folder": str(folder), "files": files},
            )
        )
    return items, kept


def apply_log_item(ws: Workspace, item: RetentionItem, *, actor: str) -> int:
    """Append the folder's audit event, then delete its files and the folder.

    Raises:
        Changed: the folder's files are no longer those planned.
        OSError: a file could not be deleted (the event says what was being deleted;
            the folder is planned again with what is left).
    """
    folder = Path(item.detail["folder"])
    sha, _, _ = _folder_digest(folder) if folder.is_dir() else ("", 0, [])
    if sha != item.sha256:
        raise Changed(f"the files of {item.subject} changed since the plan")

    def fn(s: Session) -> int:
        payload = {k: v for k, v in item.audit_payload().items() if k != "folder"}
        event = append_event(
            s,
            at=ws.db.clock(),
            actor=actor,
            action="retention.delete",
            subject=item.subject,
            payload=payload,
        )
        return event.id

    event_id = ws.db.transaction(fn)
    for entry in item.detail["files"]:
        (folder / entry["name"]).unlink(missing_ok=True)
    folder.rmdir()
    return event_id
