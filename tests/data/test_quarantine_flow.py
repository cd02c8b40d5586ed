"""Bad batches through whole cycles: quarantined with their reasons, kept, never trained on.

Invariant 4: a rejected batch is quarantined with its reasons, never silently dropped
or silently trained on. Each test serves a champion (v1) first, then delivers bad input
into the workspace's source folder and runs ``run_cycle``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from conftest import add_batch, synthetic_batch
from retrainer.errors import ConflictError
from retrainer.orchestrate import CycleResult, run_cycle, workspace_status
from retrainer.registry import CHAMPION, list_events, verify_chain
from retrainer.workspace import Workspace

MODEL = "toy"
NewWorkspace = Callable[..., Path]


def cycle(root: Path, **kwargs: Any) -> CycleResult:
    with Workspace.open(root) as ws:
        return run_cycle(ws, actor="t", **kwargs)


def audit_events(ws: Workspace) -> list[dict[str, Any]]:
    return ws.db.transaction(
        lambda s: [
            {"actor": e.actor, "action": e.action, "subject": e.subject, "payload": e.payload}
            for e in list_events(s, limit=100_000)
        ]
    )


def trained_on(ws: Workspace, result: CycleResult) -> pd.DataFrame:
    """Every row of the run's training and holdout snapshots."""
    ds = result.steps["datasets"]
    snaps = [ws.ledger.get_snapshot(ds[kind]["id"]) for kind in ("train", "holdout")]
    return pd.concat([ws.ledger.load_frame(snap) for snap in snaps], ignore_index=True)


def write_file(root: Path, name: str, data: bytes) -> Path:
    path = root / "data" / "batches" / name
    path.write_bytes(data)
    return path


def assert_no_retrain(root: Path, result: CycleResult) -> None:
    assert result.status == "succeeded"
    assert result.outcome.startswith("no retrain"), result.outcome
    assert result.steps["decide"]["fire"] is False
    assert "train" not in result.steps
    with Workspace.open(root) as ws:
        assert [v.version for v in ws.registry.versions(MODEL)] == [1]
        assert ws.registry.get_alias(MODEL, CHAMPION) == 1


@pytest.fixture
def served(make_workspace: NewWorkspace) -> Path:
    """A workspace whose champion is v1, trained on 400 good rows (batch id 1)."""
    root = make_workspace()
    add_batch(root, "b1", synthetic_batch(1, 400, start_day=0))
    assert cycle(root).promoted
    return root


# -- a missing column -----------------------------------------------------------------------------


def test_missing_column_is_quarantined_kept_and_never_trained_on(served: Path) -> None:
    # flipped labels: accepted, this batch would fire the performance trigger
    bad = synthetic_batch(2, 300, start_day=1, flipped=True).drop(columns=["x2"])
    add_batch(served, "b2-no-x2", bad)

    result = cycle(served)

    assert_no_retrain(served, result)
    assert result.steps["contract"]["accepted"] == []
    [q] = result.steps["contract"]["quarantined"]
    assert q["key"] == "b2-no-x2.parquet" and "'x2'" in q["why"]
    with Workspace.open(served) as ws:
        [batch] = ws.ledger.batches(MODEL, status="quarantined")
        assert batch.id == q["id"] and batch.run_id == result.run_id
        failures = batch.reasons["failures"]
        assert [(f["check"], f["column"]) for f in failures] == [("MISSING_COLUMN", "x2")]
        assert "required column 'x2' is missing" in failures[0]["message"]

        status = workspace_status(ws)
        assert status["batches"]["quarantined"] == 1
        [shown] = status["quarantined"]
        assert (shown["id"], shown["key"]) == (batch.id, "b2-no-x2.parquet")
        assert any("'x2'" in reason for reason in shown["reasons"])

        # its rows are kept, exactly
        assert batch.snapshot_id is not None and batch.row_count == 300
        kept = ws.ledger.load_frame(ws.ledger.get_snapshot(batch.snapshot_id))
        pd.testing.assert_frame_equal(kept, bad, check_dtype=False)

        events = [e for e in audit_events(ws) if e["action"] == "batch.quarantine"]
        assert [e["subject"] for e in events] == [f"{MODEL}/batch/{batch.id}"]
        assert events[0]["payload"]["reasons"]["failures"][0]["column"] == "x2"
        assert events[0]["actor"] == "t"

    # the next training (fired by 700 good rows) excludes the quarantined rows
    add_batch(served, "b3", synthetic_batch(3, 700, start_day=2))
    retrain = cycle(served)
    assert (retrain.steps["decide"]["kind"], retrain.version) == ("data_volume", 2)
    ds = retrain.steps["datasets"]
    assert ds["train"]["row_count"] + ds["holdout"]["row_count"] == 400 + 700
    with Workspace.open(served) as ws:
        rows = trained_on(ws, retrain)
        assert not rows["ts"].isin(bad["ts"]).any()
        assert rows["x2"].notna().all()
        assert [b.status for b in ws.ledger.batches(MODEL)] == [
            "accepted",
            "quarantined",
            "accepted",
        ]


# -- each kind of bad input ----------------------------------------------------------------------

HEADER = b"ts,x1,x2,color,y\n"


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def too_few_rows(root: Path) -> Path:
    return add_batch(root, "b2", synthetic_batch(2, 20, start_day=1, flipped=True))


def header_only(root: Path) -> Path:
    return write_file(root, "b2.csv", HEADER)


def not_a_number(root: Path) -> Path:
    frame = synthetic_batch(2, 700, start_day=1, flipped=True).astype({"x1": object})
    frame.loc[5, "x1"] = "12a"
    return write_file(root, "b2.csv", _csv(frame))


def invalid_utf8(root: Path) -> Path:
    data = _csv(synthetic_batch(2, 700, start_day=1, flipped=True))
    middle = data.index(b"\n", len(data) // 2) + 1
    return write_file(root, "b2.csv", data[:middle] + b"\xff\xfe,1.0" + data[middle:])


@pytest.mark.parametrize(
    ("deliver", "code", "column", "needle"),
    [
        (too_few_rows, "TOO_FEW_ROWS", None, "the batch has 20 rows; at least 50 are required"),
        (header_only, "EMPTY_BATCH", None, "no rows"),
        (not_a_number, "WRONG_DTYPE", "x1", "12a"),
        (invalid_utf8, "UNREADABLE", None, "not valid UTF-8"),
    ],
    ids=["too-few-rows", "header-only", "not-a-number", "invalid-utf8"],
)
def test_bad_batch_is_quarantined_with_its_code_and_never_retrains(
    served: Path,
    deliver: Callable[[Path], Path],
    code: str,
    column: str | None,
    needle: str,
) -> None:
    path = deliver(served)

    result = cycle(served)

    assert_no_retrain(served, result)
    [q] = result.steps["contract"]["quarantined"]
    assert q["key"] == path.name
    with Workspace.open(served) as ws:
        [batch] = ws.ledger.batches(MODEL, status="quarantined")
        assert batch.batch_key == path.name
        failures = {f["check"]: f for f in batch.reasons["failures"]}
        assert code in failures, batch.reasons
        failure = failures[code]
        assert failure["column"] == column
        assert needle in failure["message"] + " ".join(failure["examples"])
        [shown] = workspace_status(ws)["quarantined"]
        assert shown["id"] == batch.id and shown["reasons"]
        events = [e for e in audit_events(ws) if e["action"] == "batch.quarantine"]
        assert [e["subject"] for e in events] == [f"{MODEL}/batch/{batch.id}"]
        assert ws.db.transaction(verify_chain).ok

    # the bad batch is not counted later either: the next cycle has nothing to do
    again = cycle(served)
    assert_no_retrain(served, again)
    assert again.steps["ingest"]["batches"] == []


def test_bad_first_batch_never_bootstraps_a_model(make_workspace: NewWorkspace) -> None:
    root = make_workspace()
    add_batch(root, "b1", synthetic_batch(1, 400, start_day=0).drop(columns=["y"]))

    result = cycle(root)

    assert result.outcome == "no retrain: no accepted data yet"
    with Workspace.open(root) as ws:
        assert ws.registry.versions(MODEL) == []
        [batch] = ws.ledger.batches(MODEL, status="quarantined")
        assert batch.reasons["failures"][0]["column"] == "y"


# -- operator actions ----------------------------------------------------------------------------


def test_operator_release_and_discard_are_audited_and_release_counts(served: Path) -> None:
    small = synthetic_batch(2, 40, start_day=1)  # good rows, too few of them
    add_batch(served, "b2-small", small)
    broken = synthetic_batch(3, 200, start_day=3).drop(columns=["color"])
    add_batch(served, "b3-broken", broken)
    assert_no_retrain(served, cycle(served))

    with Workspace.open(served) as ws:
        first, second = ws.ledger.batches(MODEL, status="quarantined")
        assert (first.batch_key, second.batch_key) == ("b2-small.parquet", "b3-broken.parquet")
        released = ws.ledger.set_status(
            MODEL, first.id, "released", actor="operator", expected=("quarantined",)
        )
        discarded = ws.ledger.set_status(
            MODEL, second.id, "discarded", actor="operator", expected=("quarantined",)
        )
        assert (released.status, discarded.status) == ("released", "discarded")
        assert released.reasons == first.reasons  # why it was quarantined stays on record

        ours = [e for e in audit_events(ws) if e["actor"] == "operator"]
        assert [(e["action"], e["subject"]) for e in ours] == [
            ("batch.released", f"{MODEL}/batch/{first.id}"),
            ("batch.discarded", f"{MODEL}/batch/{second.id}"),
        ]

        # a decision already taken is not taken again behind the operator's back
        count = len(audit_events(ws))
        with pytest.raises(ConflictError, match="discarded"):
            ws.ledger.set_status(
                MODEL, second.id, "released", actor="operator", expected=("quarantined",)
            )
        assert len(audit_events(ws)) == count
        assert [b.status for b in ws.ledger.batches(MODEL)] == [
            "accepted",
            "released",
            "discarded",
        ]
        status = workspace_status(ws)
        assert status["quarantined"] == []
        assert (status["batches"]["released"], status["batches"]["discarded"]) == (1, 1)
        assert ws.ledger.rows_accepted_after(MODEL, None) == 400 + 40
        assert ws.db.transaction(verify_chain).ok

    add_batch(served, "b4", synthetic_batch(4, 700, start_day=2))
    retrain = cycle(served)

    assert retrain.version == 2
    ds = retrain.steps["datasets"]
    assert ds["train"]["row_count"] + ds["holdout"]["row_count"] == 400 + 40 + 700
    with Workspace.open(served) as ws:
        rows = trained_on(ws, retrain)
        assert rows["ts"].isin(small["ts"]).sum() == 40  # the released rows are trained on
        assert not rows["ts"].isin(broken["ts"]).any()  # the discarded ones are not
