"""Screening, quarantine decisions and flags on the ledger, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import SYNTHETIC_SPEC, synthetic_batch
from retrainer.data import (
    AUTO_PROMOTION_BLOCKERS,
    BatchRef,
    Ledger,
    batch_flags,
    screen_pending,
)
from retrainer.data.quarantine import decide_batch, describe_batch, quarantined_batches
from retrainer.errors import ConflictError, NotFoundError, PolicyError
from retrainer.registry import list_events, verify_chain
from retrainer.registry.artifacts import ArtifactStore
from retrainer.registry.db import Database
from retrainer.spec import parse_spec

SPEC = parse_spec(SYNTHETIC_SPEC.format(approval="auto", store="sqlite:///x.db"))
MODEL = "toy"


@pytest.fixture
def ledger(db: Database, tmp_path: Path) -> Ledger:
    return Ledger(db, ArtifactStore.from_uri(f"file://{tmp_path / 'artifacts'}", base_dir=tmp_path))


def deliver(ledger: Ledger, run: str, batches: dict[str, pd.DataFrame | None]) -> list[int]:
    """Record batches as ingest does (``None``: an unreadable file)."""
    received = []
    for key, frame in batches.items():
        ref = BatchRef("file://data", key, key.ljust(64, "0"))
        if frame is None:
            reasons = {"failures": [{"check": "UNREADABLE", "column": None, "message": "bad"}]}
            received.append((ref, None, reasons))
        else:
            snap = ledger.snapshot(MODEL, "batch", ref.source_uri, frame, time_column="ts")
            received.append((ref, snap, {}))
    return ledger.record_batches(MODEL, run, received, watermark={}, actor="ingest")


def screen(ledger: Ledger, run: str) -> dict[str, object]:
    def load(snapshot_id: int) -> pd.DataFrame:
        return ledger.load_frame(ledger.get_snapshot(snapshot_id))

    return screen_pending(
        ledger, SPEC, run_id=run, actor="cycle", load=load, reference=lambda: None
    )


def test_screen_decide_and_flags(ledger: Ledger, db: Database) -> None:
    first = synthetic_batch(1, 100, start_day=0)
    huge = synthetic_batch(2, 1000, start_day=1)
    nulls = synthetic_batch(3, 60, start_day=2)
    nulls.loc[:39, "x1"] = np.nan
    nulls.loc[[3, 4], "x2"] = np.inf
    dupes = synthetic_batch(4, 80, start_day=3)
    dupes = pd.concat([dupes, dupes.iloc[:5]], ignore_index=True)
    ids = deliver(ledger, "run-1", {"a": first, "b": huge, "c": nulls, "d": None, "e": dupes})

    out = screen(ledger, "run-1")

    a, b, c, d, e = ids
    assert out["accepted"] == [a, b, e]
    assert [q["id"] for q in out["quarantined"]] == [c, d]  # type: ignore[index]
    assert out["flagged"] == [
        {"id": b, "key": "b", "flags": ["VOLUME_ANOMALY"]},  # 10x the 100 rows before
        {"id": e, "key": "e", "flags": ["VOLUME_ANOMALY", "DUPLICATE_ROWS"]},  # 0.08x
    ]
    records = {r.id: r for r in ledger.batches(MODEL)}
    assert records[e].row_count == 80 and records[e].reasons["deduplicated"]["kept_rows"] == 80
    assert "VOLUME_ANOMALY" in AUTO_PROMOTION_BLOCKERS
    assert batch_flags(ledger, list(records.values())) == {
        b: ["VOLUME_ANOMALY"],
        e: ["VOLUME_ANOMALY", "DUPLICATE_ROWS"],
    }
    window = str(pd.Timestamp("2024-01-03").isoformat())  # rows from day 2 on: b is older
    assert list(batch_flags(ledger, list(records.values()), since=window)) == [e]

    report = describe_batch(ledger, MODEL, c, rows=2)
    # no champion, so no reference for the 67% nulls of x1: only the infinities fail
    assert [(f["check"], f["column"], f["count"]) for f in report["failures"]] == [
        ("NON_FINITE", "x2", 2)
    ]
    assert [r["row"] for r in report["failures"][0]["sample"]] == [3, 4]

    released = decide_batch(ledger, MODEL, c, "released", actor="ops", reason="known outage")
    assert released.status == "released" and released.reasons["review"]["actor"] == "ops"
    with pytest.raises(ConflictError, match="is released, not quarantined"):
        decide_batch(ledger, MODEL, c, "discarded", actor="ops", reason="again")
    with pytest.raises(PolicyError, match="no rows to release"):
        decide_batch(ledger, MODEL, d, "released", actor="ops", reason="x")
    with pytest.raises(NotFoundError):
        decide_batch(ledger, MODEL, 999, "discarded", actor="ops", reason="x")
    with pytest.raises(ValueError, match="reason is required"):
        decide_batch(ledger, MODEL, d, "discarded", actor="ops", reason=" ")
    decide_batch(ledger, MODEL, d, "discarded", actor="ops", reason="corrupt upload")
    assert quarantined_batches(ledger, MODEL) == []
    assert [r.id for r in quarantined_batches(ledger, MODEL, include_decided=True)] == [c, d]

    events = db.transaction(lambda s: list_events(s, limit=1000))
    decisions = [(e.action, e.actor, e.payload.get("reason")) for e in events if e.actor == "ops"]
    assert decisions == [
        ("batch.released", "ops", "known outage"),
        ("batch.discarded", "ops", "corrupt upload"),
    ]
    assert db.transaction(verify_chain).ok
