"""What a retention plan is made of: items to delete, things kept and why.

Kinds of item (``RetentionItem.kind``):

``batch``
    The stored rows of an accepted or released batch (``raw_batches``).
``quarantine``
    The stored rows of a quarantined or discarded batch (``quarantine``).
``artifact``
    A version's artifacts: the model, every blob its lineage names (reference profile,
    CBPE calibration) and its training and holdout snapshots (``artifacts``).
``snapshot``
    Stored rows no batch, version or open run refers to (``raw_batches``).
``predictions``
    One UTC day of a model's predictions in the store, with their labels
    (``predictions``).
``prediction_log``
    One UTC day's folder of the server's Parquet prediction log (``predictions``).

Records stay: a batch becomes ``purged``, a version ``PURGED``, a snapshot gets
``purged_at``; their hashes and sizes go to the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

__all__ = ["KINDS", "Blob", "KeptItem", "RetentionItem", "fmt_age", "fmt_bytes"]

KINDS = ("batch", "quarantine", "snapshot", "artifact", "predictions", "prediction_log")
"""Item kinds, in the order ``apply`` deletes them."""


@dataclass(frozen=True)
class Blob:
    """One blob of the artifact store that an item deletes."""

    sha256: str
    size: int
    what: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"sha256": self.sha256, "size": self.size, "what": self.what}


@dataclass(frozen=True)
class RetentionItem:
    """One thing past its retention period that ``apply`` deletes.

    Attributes:
        kind: One of :data:`KINDS`.
        subject: What it is, as audit subjects name it (``toy/batch/3``, ``toy:2``,
            ``toy/predictions/2024-01-05``).
        since: When its age is counted from (arrival, creation, end of serving, day).
        age: ``now - since`` when planned.
        size: Bytes deleted (blobs and files; rows as canonical JSON).
        sha256: The content hash of what is deleted: a batch's or snapshot's stored
            rows, a version's model artifact, a digest of the rows or files of a day.
        reason: Why it is due, in words.
        blobs: The artifact-store blobs deleted (none shared with anything kept).
        snapshots: Snapshot records marked purged.
        rows: Rows deleted (predictions and labels), when rows are what is deleted.
        finish: True when it completes a deletion that was recorded but did not finish.
        detail: Kind-specific facts for the audit event (status before, files...).
    """

    kind: str
    subject: str
    since: datetime
    age: timedelta
    size: int
    sha256: str
    reason: str
    blobs: tuple[Blob, ...] = ()
    snapshots: tuple[int, ...] = ()
    rows: int | None = None
    finish: bool = False
    detail: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def key(self) -> tuple[str, str, str, bool]:
        """What identifies the item between a plan and a fresh one."""
        return (self.kind, self.subject, self.sha256, self.finish)

    def audit_payload(self) -> dict[str, Any]:
        """The payload of its ``retention.delete`` event: hash, size, kind, reason..."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "sha256": self.sha256,
            "size": self.size,
            "reason": self.reason,
            "since": self.since.isoformat(),
        }
        if self.blobs:
            out["blobs"] = [b.to_dict() for b in self.blobs]
        if self.snapshots:
            out["snapshots"] = list(self.snapshots)
        if self.rows is not None:
            out["rows"] = self.rows
        if self.finish:
            out["finish"] = True
        return {**out, **self.detail}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "kind": self.kind,
            "subject": self.subject,
            "since": self.since.isoformat(),
            "age_days": round(self.age.total_seconds() / 86400, 2),
            "size": self.size,
            "sha256": self.sha256,
            "reason": self.reason,
            "blobs": [b.to_dict() for b in self.blobs],
            "snapshots": list(self.snapshots),
            "rows": self.rows,
            "finish": self.finish,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class KeptItem:
    """Something retention keeps although it is old or could be deleted, and why."""

    kind: str
    subject: str
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"kind": self.kind, "subject": self.subject, "reasons": list(self.reasons)}


def fmt_age(age: timedelta) -> str:
    """``412d``, ``36h``, ``12m``: an age for people.

    >>> fmt_age(timedelta(days=400, hours=5)), fmt_age(timedelta(hours=36, minutes=9))
    ('400d', '36h')
    """
    seconds = int(age.total_seconds())
    if seconds >= 2 * 86400:
        return f"{seconds // 86400}d"
    if seconds >= 2 * 3600:
        return f"{seconds // 3600}h"
    return f"{max(seconds, 0) // 60}m"


def fmt_bytes(size: int) -> str:
    """``1.2 MiB``: a size for people.

    >>> fmt_bytes(512), fmt_bytes(1536), fmt_bytes(3 * 1024**3)
    ('512 B', '1.5 KiB', '3.0 GiB')
    """
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover
