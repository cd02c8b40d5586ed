"""Operator actions on quarantined batches: list, inspect, release, discard.

A quarantined batch stays in the store with its report until an operator decides:
``release`` makes it usable like an accepted batch (trained on, counted by triggers);
``discard`` keeps it on disk, excluded for good. Nothing is ever deleted. Each decision
is taken once (a released or discarded batch cannot be decided again), is recorded on
the batch (``reasons["review"]``) and appended to the audit chain with the actor and
the reason, in the same transaction.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from retrainer.data.ledger import BatchRecord, Ledger
from retrainer.errors import ConflictError, PolicyError

__all__ = ["Decision", "decide_batch", "describe_batch", "quarantined_batches"]

Decision = Literal["released", "discarded"]
_DECIDED = ("released", "discarded")


def quarantined_batches(
    ledger: Ledger, model: str, *, include_decided: bool = False
) -> list[BatchRecord]:
    """Batches waiting for a decision (and, optionally, those released or discarded)."""
    statuses = ("quarantined", *_DECIDED) if include_decided else ("quarantined",)
    return ledger.batches(model, status=statuses)


def decide_batch(
    ledger: Ledger,
    model: str,
    batch_id: int,
    decision: Decision,
    *,
    actor: str,
    reason: str,
) -> BatchRecord:
    """Release or discard a quarantined batch (audited with ``actor`` and ``reason``).

    Raises:
        ValueError: ``reason`` is blank, or ``decision`` is not released/discarded.
        NotFoundError: the model has no such batch.
        ConflictError: the batch is not quarantined (accepted, pending, or already decided).
        PolicyError: release of a batch that could not be read (it has no rows).
    """
    if decision not in _DECIDED:
        raise ValueError(f"decision must be 'released' or 'discarded'; got {decision!r}")
    if not reason.strip():
        raise ValueError("a reason is required: it is recorded in the audit trail")
    batch = ledger.batch(model, batch_id)
    verb = "released" if decision == "released" else "discarded"
    if batch.status != "quarantined":
        raise ConflictError(
            f"batch {batch_id} ({batch.batch_key}) is {batch.status}, not quarantined; "
            f"only a quarantined batch can be {verb}"
        )
    if decision == "released" and batch.snapshot_id is None:
        raise PolicyError(
            f"batch {batch_id} ({batch.batch_key}) could not be read, so it has no rows to "
            "release; fix the file and deliver it again, or discard this batch"
        )
    review = {
        "action": decision,
        "actor": actor,
        "reason": reason,
        "at": ledger.db.clock().isoformat(),
    }
    return ledger.set_status(
        model,
        batch_id,
        decision,
        actor=actor,
        reasons={**batch.reasons, "review": review},
        expected=("quarantined",),
        note=reason,
    )


def describe_batch(ledger: Ledger, model: str, batch_id: int, *, rows: int) -> dict[str, Any]:
    """A batch's full report, each finding with up to ``rows`` of its failing rows.

    The rows come from the snapshot of the batch as received (before any deduplication),
    by the index labels the report recorded.
    """
    batch = ledger.batch(model, batch_id)
    reasons = batch.reasons
    received = (reasons.get("deduplicated") or {}).get("received_snapshot_id", batch.snapshot_id)
    snapshot = None if received is None else ledger.get_snapshot(int(received))
    frame = None if snapshot is None or rows <= 0 else ledger.load_frame(snapshot)

    def with_rows(finding: dict[str, Any]) -> dict[str, Any]:
        labels = [r for r in finding.get("rows", [])[:rows] if frame is not None]
        present = [r for r in labels if r in frame.index] if frame is not None else []
        sample: list[dict[str, Any]] = []
        if frame is not None and present:
            sample = json.loads(frame.loc[present].to_json(orient="records", date_format="iso"))
            sample = [
                {"row": label, **values} for label, values in zip(present, sample, strict=True)
            ]
        return {**finding, "sample": sample}

    return {
        "batch": batch.to_dict(),
        "snapshot": None if snapshot is None else snapshot.to_dict(),
        "passed": bool(reasons.get("passed", False)),
        "failures": [with_rows(f) for f in reasons.get("failures", [])],
        "warnings": [with_rows(w) for w in reasons.get("warnings", [])],
        "flags": batch.flags,
        "deduplicated": reasons.get("deduplicated"),
        "review": reasons.get("review"),
    }
