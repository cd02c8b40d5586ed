"""Every bad-batch class of the reliability checklist (section C), through real cycles.

Each test starts from a copy of one served workspace (champion v1, trained on 400 good
rows), delivers bad batches into its source folder and runs ``run_cycle``. Failing
batches must be quarantined with their named code, kept, audited and never trained on;
flagged ones (BI-05, BI-06) accepted with the flag recorded on the batch.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from conftest import SYNTHETIC_SPEC, add_batch, synthetic_batch
from retrainer.data import BatchRecord
from retrainer.orchestrate import CycleResult, run_cycle
from retrainer.registry import CHAMPION, list_events, verify_chain
from retrainer.workspace import Workspace

MODEL = "toy"
CONTRACT = "contract:\n  min_rows: 50\n"


def spec_text(contract: str = "") -> str:
    """The synthetic spec, triggers quiet on good data, with extra contract lines."""
    text = SYNTHETIC_SPEC.format(approval="auto", store="sqlite:///.retrainer/retrainer.db")
    text = text.replace("data_volume: {rows: 600}", "data_volume: {rows: 100000}")
    return text.replace(
        CONTRACT, CONTRACT + "".join(f"  {line}\n" for line in contract.splitlines())
    )


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("served") / "ws"
    (root / "data" / "batches").mkdir(parents=True)
    (root / "retrainer.yaml").write_text(spec_text())
    add_batch(root, "b1", synthetic_batch(1, 400, start_day=0))
    with Workspace.open(root) as ws:
        assert run_cycle(ws, actor="setup").promoted
    return root


@pytest.fixture
def served(template: Path, tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    shutil.copytree(template, root)
    return root


def set_contract(root: Path, contract: str) -> None:
    (root / "retrainer.yaml").write_text(spec_text(contract))


def good(day: int, rows: int = 300) -> pd.DataFrame:
    return synthetic_batch(day + 10, rows, start_day=day)


def write_file(root: Path, name: str, data: bytes) -> Path:
    path = root / "data" / "batches" / name
    path.write_bytes(data)
    return path


def screen(root: Path) -> tuple[CycleResult, dict[str, BatchRecord]]:
    """Run a cycle; its result and every batch by file name."""
    with Workspace.open(root) as ws:
        result = run_cycle(ws, actor="t")
        return result, {b.batch_key: b for b in ws.ledger.batches(MODEL)}


def failure(batch: BatchRecord, code: str) -> dict[str, Any]:
    found = [f for f in batch.reasons["failures"] if f["check"] == code]
    assert found, f"{code} not in {batch.reasons['failures']}"
    return dict(found[0])


def assert_quarantined_and_no_retrain(root: Path, result: CycleResult, *keys: str) -> None:
    assert result.steps["decide"]["fire"] is False, result.steps["decide"]
    assert "train" not in result.steps
    assert {q["key"] for q in result.steps["contract"]["quarantined"]} == set(keys)
    with Workspace.open(root) as ws:
        assert [v.version for v in ws.registry.versions(MODEL)] == [1]
        assert ws.registry.get_alias(MODEL, CHAMPION) == 1
        events = ws.db.transaction(lambda s: list_events(s, limit=100_000))
        quarantined = {e.subject for e in events if e.action == "batch.quarantine"}
        ids = {b.id for b in ws.ledger.batches(MODEL, status="quarantined")}
        assert quarantined == {f"{MODEL}/batch/{i}" for i in ids} and len(ids) == len(keys)
        assert ws.db.transaction(verify_chain).ok


def test_bi01_empty_header_only_and_small_batches_never_retrain(served: Path) -> None:
    write_file(served, "b2-empty.csv", b"")
    write_file(served, "b3-header.csv", b"ts,x1,x2,color,y\n")
    add_batch(served, "b4-few", good(2, rows=20))
    set_contract(served, "max_rows: 1000")
    add_batch(served, "b5-many", good(3, rows=1200))

    result, batches = screen(served)

    assert_quarantined_and_no_retrain(
        served, result, "b2-empty.csv", "b3-header.csv", "b4-few.parquet", "b5-many.parquet"
    )
    assert failure(batches["b2-empty.csv"], "EMPTY_BATCH")["column"] is None
    assert [f["check"] for f in batches["b3-header.csv"].reasons["failures"]] == ["EMPTY_BATCH"]
    assert failure(batches["b4-few.parquet"], "TOO_FEW_ROWS")["details"]["rows"] == 20
    assert failure(batches["b5-many.parquet"], "TOO_MANY_ROWS")["details"]["max_rows"] == 1000


def test_bi02_missing_renamed_and_extra_columns(served: Path) -> None:
    set_contract(served, "extra_columns: reject")
    add_batch(served, "b2-renamed", good(2).rename(columns={"x2": "x_2"}))
    add_batch(served, "b3-no-time", good(3).drop(columns=["ts"]))
    add_batch(served, "b4-extra", good(4).assign(note="hand-entered"))

    result, batches = screen(served)

    assert_quarantined_and_no_retrain(
        served, result, "b2-renamed.parquet", "b3-no-time.parquet", "b4-extra.parquet"
    )
    renamed = batches["b2-renamed.parquet"]
    assert (
        "required column 'x2' is missing (renamed to 'x_2'?)"
        in failure(renamed, "MISSING_COLUMN")["message"]
    )
    assert failure(renamed, "EXTRA_COLUMN")["column"] == "x_2"
    assert failure(batches["b3-no-time.parquet"], "MISSING_COLUMN")["column"] == "ts"
    assert failure(batches["b4-extra.parquet"], "EXTRA_COLUMN")["column"] == "note"

    set_contract(served, "extra_columns: allow")
    add_batch(served, "b5-extra", good(5).assign(note="hand-entered"))
    result, batches = screen(served)
    extra = batches["b5-extra.parquet"]
    assert extra.status == "accepted" and extra.flags == ["EXTRA_COLUMN"]
    [warning] = result.steps["contract"]["warnings"]
    assert (warning["key"], warning["check"]) == ("b5-extra.parquet", "EXTRA_COLUMN")


def test_bi03_wrong_dtypes_show_every_failing_row_and_nothing_is_coerced(served: Path) -> None:
    text = good(2).astype({"x1": object})
    text.loc[[5, 50, 150, 151, 152, 153, 160], "x1"] = "12a"
    write_file(served, "b2-text.csv", text.to_csv(index=False).encode())
    add_batch(served, "b3-strings", good(3).assign(x2=lambda d: d["x2"].map(str)))

    result, batches = screen(served)

    assert_quarantined_and_no_retrain(served, result, "b2-text.csv", "b3-strings.parquet")
    wrong = failure(batches["b2-text.csv"], "WRONG_DTYPE")
    assert (wrong["column"], wrong["count"], wrong["rows"]) == ("x1", 7, [5, 50, 150, 151, 152])
    assert wrong["examples"] == ["12a"] * 5
    assert (
        "not stored as numbers" in failure(batches["b3-strings.parquet"], "WRONG_DTYPE")["message"]
    )
    with Workspace.open(served) as ws:  # the rows are kept exactly as received
        snap = batches["b2-text.csv"].snapshot_id
        assert snap is not None
        kept = ws.ledger.load_frame(ws.ledger.get_snapshot(snap))
        assert kept.loc[5, "x1"] == "12a" and kept.loc[6, "x1"] == str(text.loc[6, "x1"])


def test_bi04_null_storm_against_the_champions_training_data_and_infinity(served: Path) -> None:
    nulls = good(2)
    nulls.loc[:119, "x1"] = np.nan  # 40%
    add_batch(served, "b2-nulls", nulls)
    inf = good(3)
    inf.loc[[7, 9], "x2"] = [np.inf, -np.inf]
    add_batch(served, "b3-inf", inf)

    result, batches = screen(served)

    assert_quarantined_and_no_retrain(served, result, "b2-nulls.parquet", "b3-inf.parquet")
    storm = failure(batches["b2-nulls.parquet"], "NULL_STORM")
    assert storm["column"] == "x1" and storm["details"] == {
        "share": 0.4,
        "limit": 0.1,
        "reference": 0.0,
    }
    assert "0.0% in the champion's training data (v1) + null_tolerance 10.0%" in storm["message"]
    non_finite = failure(batches["b3-inf.parquet"], "NON_FINITE")
    assert (non_finite["column"], non_finite["rows"]) == ("x2", [7, 9])


def test_bi05_volume_anomaly_is_accepted_and_flagged(served: Path) -> None:
    add_batch(served, "b2-huge", good(2, rows=4000))  # 10x the 400 rows before

    result, batches = screen(served)

    huge = batches["b2-huge.parquet"]
    assert huge.status == "accepted" and huge.flags == ["VOLUME_ANOMALY"]
    assert result.steps["contract"]["flagged"] == [
        {"id": huge.id, "key": "b2-huge.parquet", "flags": ["VOLUME_ANOMALY"]}
    ]
    [warning] = huge.reasons["warnings"]
    assert warning["details"]["previous_rows"] == 400 and warning["details"]["ratio"] == 10.0
    with Workspace.open(served) as ws:
        events = ws.db.transaction(lambda s: list_events(s, limit=100_000))
        [accepted] = [e for e in events if e.subject == f"{MODEL}/batch/{huge.id}"]
        assert accepted.action == "batch.accepted"
        assert accepted.payload["flags"] == ["VOLUME_ANOMALY"]


def test_bi05_a_candidate_trained_on_a_flagged_batch_is_not_auto_promoted(
    served: Path,
) -> None:
    add_batch(served, "b2-huge", good(2, rows=4000))
    with Workspace.open(served) as ws:
        result = run_cycle(ws, actor="t", manual_reason="retrain on the big batch")
        version = result.version
        assert version == 2 and not result.promoted
        assert ws.registry.get(MODEL, version).gates_passed  # the gates were not the reason
        assert ws.registry.get_alias(MODEL, CHAMPION) == 1
        huge = next(b for b in ws.ledger.batches(MODEL) if b.batch_key == "b2-huge.parquet")
        assert result.outcome == (
            f"version 2 passed its gates and awaits approval (trained on batch {huge.id} "
            f"flagged VOLUME_ANOMALY): retrainer approve {MODEL} 2 --comment TEXT"
        )
        lineage = ws.registry.get(MODEL, version).lineage
        assert lineage["data_flags"] == {str(huge.id): ["VOLUME_ANOMALY"]}


def test_bi06_unseen_categories_flag_or_reject(served: Path) -> None:
    set_contract(served, "columns: {color: {allowed: [red, green, blue], max_unseen_share: 0.05}}")
    purple = good(2)
    purple.loc[:59, "color"] = "purple"  # 20%
    add_batch(served, "b2-purple", purple)

    result, batches = screen(served)

    flagged = batches["b2-purple.parquet"]
    assert flagged.status == "accepted" and flagged.flags == ["UNSEEN_CATEGORY"]
    assert flagged.reasons["warnings"][0]["details"]["unseen"] == {"purple": 60}

    set_contract(
        served,
        "columns: {color: {allowed: [red, green, blue], max_unseen_share: 0.05}}\n"
        "unseen_categories: reject",
    )
    add_batch(served, "b3-purple", purple.assign(ts=good(3)["ts"]))
    result, batches = screen(served)
    assert_quarantined_and_no_retrain(served, result, "b3-purple.parquet")
    assert failure(batches["b3-purple.parquet"], "UNSEEN_CATEGORY")["column"] == "color"


def test_bi07_duplicates_are_dropped_with_counts_and_duplicate_keys_rejected(
    served: Path,
) -> None:
    rows = good(2)
    add_batch(served, "b2-dupes", pd.concat([rows, rows.iloc[:30]], ignore_index=True))

    result, batches = screen(served)

    dupes = batches["b2-dupes.parquet"]
    assert dupes.status == "accepted" and dupes.flags == ["DUPLICATE_ROWS"]
    assert dupes.row_count == 300  # what is used from now on
    dedup = dupes.reasons["deduplicated"]
    assert (dedup["received_rows"], dedup["kept_rows"], dedup["duplicate_rows"]) == (330, 300, 30)
    with Workspace.open(served) as ws:
        received = ws.ledger.get_snapshot(dedup["received_snapshot_id"])
        assert received.row_count == 330  # the received rows are kept, never dropped
        assert dupes.snapshot_id is not None
        used = ws.ledger.load_frame(ws.ledger.get_snapshot(dupes.snapshot_id))
        pd.testing.assert_frame_equal(used, rows, check_dtype=False)

    set_contract(served, "duplicates: {key: [ts]}")
    same_time = good(3)
    same_time.loc[10:14, "ts"] = same_time.loc[9, "ts"]
    add_batch(served, "b3-keys", same_time)
    result, batches = screen(served)
    assert_quarantined_and_no_retrain(served, result, "b3-keys.parquet")
    keys = failure(batches["b3-keys.parquet"], "DUPLICATE_KEYS")
    assert keys["column"] == "ts" and keys["count"] == 5


def test_time_order_watermark_quarantines_late_rows(served: Path) -> None:
    set_contract(served, "time_order: watermark")
    add_batch(served, "b2-late", synthetic_batch(2, 300, start_day=-1))  # before b1's rows

    result, batches = screen(served)

    assert_quarantined_and_no_retrain(served, result, "b2-late.parquet")
    late = failure(batches["b2-late.parquet"], "TIME_ORDER")
    assert late["column"] == "ts" and late["count"] == 300
    assert "older than the newest accepted row" in late["message"]


def test_bi09_invalid_utf8_is_quarantined_naming_the_byte_offset(served: Path) -> None:
    data = good(2).to_csv(index=False).encode()
    offset = data.index(b"\n", len(data) // 2) + 1
    write_file(served, "b2-latin1.csv", data[:offset] + b"caf\xe9," + data[offset:])

    result, batches = screen(served)

    assert_quarantined_and_no_retrain(served, result, "b2-latin1.csv")
    unreadable = failure(batches["b2-latin1.csv"], "UNREADABLE")
    assert f"byte 0xe9 at byte offset {offset + 3}" in unreadable["message"]
    assert batches["b2-latin1.csv"].snapshot_id is None


def test_bi07_a_redelivered_batch_is_quarantined_as_a_duplicate(served: Path) -> None:
    add_batch(served, "b1-again", synthetic_batch(1, 400, start_day=0))  # b1's rows, renamed

    result, batches = screen(served)

    assert_quarantined_and_no_retrain(served, result, "b1-again.parquet")
    again = failure(batches["b1-again.parquet"], "DUPLICATE_BATCH")
    original = batches["b1.parquet"]
    assert again["details"] == {"duplicate_of": f"{original.id} (b1.parquet)"}
    assert again["count"] == 400
