"""Screening of pending batches: the cycle's contract step, as one library call.

Each pending batch (oldest first) is checked against the spec's contract, in the context
of what came before it: the previous accepted batch (for ``VOLUME_ANOMALY``), the
newest accepted time (for ``time_order: watermark``) and the null shares of the
champion's training data (for ``NULL_STORM``). A batch that fails is quarantined with
its report; one that passes is accepted, with its warnings and flags in its reasons and,
when the duplicates policy drops rows, pointed at a deduplicated snapshot (the received
rows stay in theirs). Every status change is audited by the ledger.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from retrainer.data.batch import BatchRef
from retrainer.data.contract import ContractReport, check_batch
from retrainer.data.folder import FolderSource
from retrainer.data.ledger import BatchRecord, Ledger, SnapshotRecord
from retrainer.data.rules import BatchContext, deduplicate, null_shares
from retrainer.errors import DataSourceError, NotFoundError
from retrainer.registry.registry import CHAMPION
from retrainer.spec import PipelineSpec

if TYPE_CHECKING:
    from retrainer.registry.registry import Registry

__all__ = ["Reference", "batch_flags", "champion_training", "check_file", "screen_pending"]


@dataclass(frozen=True)
class Reference:
    """The baseline of ``NULL_STORM``: null shares of some reference data, and its name."""

    label: str
    null_shares: dict[str, float]


def screen_pending(
    ledger: Ledger,
    spec: PipelineSpec,
    *,
    run_id: str,
    actor: str,
    load: Callable[[int], pd.DataFrame],
    reference: Callable[[], Reference | None],
    remember: Callable[[int, pd.DataFrame], None] | None = None,
) -> dict[str, Any]:
    """Accept or quarantine every pending batch of the spec's model; the step's output.

    ``load`` gives a snapshot's rows by id; ``reference`` is asked once, only when a
    batch is pending; ``remember`` is told about deduplicated snapshots it may cache.
    The output lists ``accepted`` ids, ``quarantined`` batches (id, key, why; batches
    quarantined at ingest by this run too), ``flagged`` batches (id, key, flags) and
    ``warnings`` (id, key, code, message). Only accepted batches are listed as flagged.
    """
    model = spec.model.name
    pending = ledger.batches(model, status="pending")
    out: dict[str, Any] = {"accepted": [], "quarantined": [], "flagged": [], "warnings": []}
    if pending:
        history = ledger.batches(model, status=("accepted", "released"))
        ref = reference()
        newest = _newest_time(ledger, history) if spec.contract.time_order == "watermark" else None
        for batch in pending:
            previous = [b for b in history if b.id < batch.id]
            assert batch.snapshot_id is not None
            context = BatchContext(
                previous_rows=previous[-1].row_count if previous else None,
                reference_null_shares=ref.null_shares if ref else None,
                reference=ref.label if ref else "the reference data",
                newest_time=newest,
                duplicate_of=_same_rows(batch, history),
            )
            record = _screen(ledger, spec, batch, load(batch.snapshot_id), context, actor, remember)
            _report(out, record)
            if record.status == "accepted":
                history.append(record)
                if spec.contract.time_order == "watermark":
                    newest = _newest_time(ledger, [record], newest)
    out["quarantined"] += [
        {"id": b.id, "key": b.batch_key, "why": b.reasons["failures"][0]["message"]}
        for b in ledger.batches(model, status="quarantined")
        if b.run_id == run_id and b.snapshot_id is None
    ]
    return out


def _screen(
    ledger: Ledger,
    spec: PipelineSpec,
    batch: BatchRecord,
    frame: pd.DataFrame,
    context: BatchContext,
    actor: str,
    remember: Callable[[int, pd.DataFrame], None] | None,
) -> BatchRecord:
    report = check_batch(
        frame,
        spec.contract,
        required_columns=spec.required_columns,
        numeric_columns=spec.model.features.numeric,
        categorical_columns=spec.model.features.categorical,
        time_column=spec.data.time_column,
        context=context,
    )
    reasons = report.to_dict()
    snapshot_id = None
    if report.passed:
        kept, dropped = deduplicate(frame, spec.contract.duplicates)
        if any(dropped.values()):
            snap = ledger.snapshot(
                spec.model.name,
                "batch",
                batch.source_uri,
                kept,
                time_column=spec.data.time_column,
            )
            snapshot_id = snap.id
            reasons["deduplicated"] = {
                "received_snapshot_id": batch.snapshot_id,
                "received_rows": len(frame),
                "kept_rows": len(kept),
                **dropped,
            }
            if remember is not None:
                remember(snap.id, kept)
    return ledger.set_status(
        spec.model.name,
        batch.id,
        "accepted" if report.passed else "quarantined",
        actor=actor,
        reasons=reasons,
        expected=("pending",),
        snapshot_id=snapshot_id,
    )


def _same_rows(batch: BatchRecord, history: Sequence[BatchRecord]) -> str | None:
    """An accepted batch with exactly the rows of ``batch`` (snapshots are content-addressed:
    equal rows share a snapshot record), as ``"ID (KEY)"``."""
    for other in history:
        received = (other.reasons.get("deduplicated") or {}).get("received_snapshot_id")
        if batch.snapshot_id in (other.snapshot_id, received):
            return f"{other.id} ({other.batch_key})"
    return None


def _report(out: dict[str, Any], record: BatchRecord) -> None:
    reasons = record.reasons
    if record.status == "accepted":
        out["accepted"].append(record.id)
    else:
        why = "\n".join(f"{f['check']}: {f['message']}" for f in reasons["failures"])
        out["quarantined"].append({"id": record.id, "key": record.batch_key, "why": why})
    if record.flags and record.status == "accepted":
        out["flagged"].append({"id": record.id, "key": record.batch_key, "flags": record.flags})
    out["warnings"] += [
        {"id": record.id, "key": record.batch_key, "check": w["check"], "message": w["message"]}
        for w in reasons.get("warnings", [])
    ]


def _newest_time(
    ledger: Ledger, batches: Sequence[BatchRecord], current: str | None = None
) -> str | None:
    """The newest time value among the batches' rows (and ``current``), as stored."""
    values = [v for v in (ledger.time_max(b) for b in batches) if v is not None]
    if current is not None:
        values.append(current)
    if not values:
        return None
    numbers = pd.to_numeric(pd.Series(values), errors="coerce")
    if numbers.notna().all():
        return values[int(numbers.to_numpy().argmax())]
    times = pd.to_datetime(pd.Series(values), errors="coerce", format="ISO8601", utc=True)
    if times.isna().all():
        return None
    return values[int(times.fillna(times.min()).to_numpy().argmax())]


def champion_training(
    registry: Registry, ledger: Ledger, model: str, version: int | None = None
) -> tuple[int, SnapshotRecord]:
    """The version (default: the champion) and the snapshot it was trained on.

    Raises:
        NotFoundError: there is no champion (or no such version), or its lineage names
            no training snapshot.
    """
    if version is None:
        version = registry.get_alias(model, CHAMPION)
        if version is None:
            raise NotFoundError(
                f"{model} has no champion yet, so there is no training data to infer from; "
                "run a cycle first (retrainer run), or pass --version"
            )
    snap = registry.get(model, version).lineage.get("train_snapshot")
    if snap is None:
        raise NotFoundError(f"{model}:{version} has no training snapshot in its lineage")
    return version, ledger.get_snapshot(int(snap))


def check_file(
    registry: Registry, ledger: Ledger, spec: PipelineSpec, path: Path
) -> ContractReport:
    """Check one Parquet or CSV file against the spec's contract, as the next batch would be.

    The context is the cycle's: the newest accepted batch, the newest accepted time and the
    champion's training data. Nothing is recorded.

    Raises:
        DataSourceError: the file cannot be read (the message says why, with the byte
            offset of invalid UTF-8).
    """
    if path.suffix.lower() not in (".csv", ".parquet"):
        raise DataSourceError(f"{path}: expected a .csv or .parquet file")
    source = FolderSource(path.parent, {"csv", "parquet"})
    frame = source.read(BatchRef(source.uri, path.name, None))
    model = spec.model.name
    history = ledger.batches(model, status=("accepted", "released"))
    reference = None
    if registry.get_alias(model, CHAMPION) is not None:
        version, snap = champion_training(registry, ledger, model)
        label = f"the champion's training data (v{version})"
        reference = Reference(label, null_shares(ledger.load_frame(snap)))
    newest = _newest_time(ledger, history) if spec.contract.time_order == "watermark" else None
    return check_batch(
        frame,
        spec.contract,
        required_columns=spec.required_columns,
        numeric_columns=spec.model.features.numeric,
        categorical_columns=spec.model.features.categorical,
        time_column=spec.data.time_column,
        context=BatchContext(
            previous_rows=history[-1].row_count if history else None,
            reference_null_shares=reference.null_shares if reference else None,
            reference=reference.label if reference else "the reference data",
            newest_time=newest,
        ),
    )


def batch_flags(
    ledger: Ledger, batches: Sequence[BatchRecord], *, since: str | None = None
) -> dict[int, list[str]]:
    """The flags of the usable (accepted or released) ``batches`` whose rows reach
    ``since``, by batch id.

    ``since`` is the oldest time a training window keeps (a snapshot's ``time_min``);
    a batch whose newest row is older was not trained on. ``None`` keeps every batch.
    Only flagged batches are in the result, e.g. ``{7: ["VOLUME_ANOMALY"]}``.
    """
    flagged = {b.id: b.flags for b in batches if b.flags and b.status in ("accepted", "released")}
    if since is None or not flagged:
        return flagged
    kept = {}
    for batch in batches:
        if batch.id in flagged:
            newest = ledger.time_max(batch)
            if newest is None or _later(newest, since) == newest:  # reaches into the window
                kept[batch.id] = flagged[batch.id]
    return kept


def _later(a: str, b: str) -> str:
    """The later of two stored time values (``a`` when they are equal or not comparable)."""
    numbers = pd.to_numeric(pd.Series([a, b]), errors="coerce")
    if numbers.notna().all():
        return a if numbers[0] >= numbers[1] else b
    times = pd.to_datetime(pd.Series([a, b]), errors="coerce", format="ISO8601", utc=True)
    if times.isna().any():
        return a
    return a if times[0] >= times[1] else b
