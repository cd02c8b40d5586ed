"""The Parquet prediction log: batching, atomic files, drops, and reading it with DuckDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from retrainer.deploy.predlog import (
    PredictionLogWriter,
    PredictionRecord,
    copy_to_store,
    read_prediction_log,
)
from retrainer.monitor.predictions import add_labels
from retrainer.monitor.realised import realised_performance
from retrainer.registry import Database

T0 = datetime(2024, 3, 1, 23, 59, tzinfo=UTC)


def rec(i: int, *, model: str = "toy", at: datetime = T0) -> PredictionRecord:
    return PredictionRecord(
        model=model,
        version=1,
        prediction_id=f"p{i}",
        predicted_at=at,
        features={"x1": float(i), "color": "red"},
        label="1",
        score=0.75,
        probabilities={"0": 0.25, "1": 0.75},
    )


def test_rows_are_partitioned_by_model_and_date_and_read_back(tmp_path: Path) -> None:
    writer = PredictionLogWriter(tmp_path, flush_seconds=0.05)
    writer.start()
    later = T0 + timedelta(minutes=2)  # the next day
    writer.submit([rec(1), rec(2, at=later), rec(3, model="other")])
    writer.close()

    files = sorted(p.relative_to(tmp_path).parent.as_posix() for p in tmp_path.rglob("*.parquet"))
    assert files == [
        "model=other/date=2024-03-01",
        "model=toy/date=2024-03-01",
        "model=toy/date=2024-03-02",
    ]
    assert not list(tmp_path.rglob("*.tmp"))
    log = read_prediction_log(tmp_path, "toy")
    assert list(log["prediction_id"]) == ["p1", "p2"]
    assert list(log["date"]) == ["2024-03-01", "2024-03-02"]
    assert set(log["model"]) == {"toy"}
    assert log["score"].tolist() == [0.75, 0.75]
    assert writer.stats.written == 3 and writer.stats.dropped_total == 0

    assert list(read_prediction_log(tmp_path, "toy", since=later)["prediction_id"]) == ["p2"]
    assert read_prediction_log(tmp_path, "nothing").empty
    with pytest.raises(ValueError, match="timezone-aware"):
        read_prediction_log(tmp_path, "toy", since=datetime(2024, 1, 1))


def test_a_full_queue_drops_and_counts_without_blocking(tmp_path: Path) -> None:
    drops: list[tuple[str, int]] = []
    writer = PredictionLogWriter(tmp_path, max_queue=2, on_drop=lambda r, n: drops.append((r, n)))
    assert writer.submit([rec(i) for i in range(5)]) == 3  # not started: nothing drains
    assert writer.stats.dropped == {"queue_full": 3, "write_error": 0}
    assert drops == [("queue_full", 3)]
    writer.close()  # flushes the two queued rows
    assert list(read_prediction_log(tmp_path, "toy")["prediction_id"]) == ["p0", "p1"]


def test_a_write_failure_drops_counts_and_the_writer_keeps_going(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    writer = PredictionLogWriter(blocked / "log", flush_seconds=0.05)
    writer.start()
    writer.submit([rec(1), rec(2)])
    writer.close()
    assert writer.stats.dropped["write_error"] == 2
    assert writer.stats.last_error is not None and "NotADirectoryError" in writer.stats.last_error
    assert writer.stats.written == 0


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_queue"):
        PredictionLogWriter(tmp_path, max_queue=0)


def test_copy_to_store_feeds_realised_performance_and_skips_what_is_there(
    tmp_path: Path, db: Database
) -> None:
    writer = PredictionLogWriter(tmp_path / "log")
    rows = [rec(i) for i in range(4)]
    writer.submit(rows)
    writer.close()
    assert copy_to_store(db, tmp_path / "log", "toy") == 4
    assert copy_to_store(db, tmp_path / "log", "toy") == 0  # idempotent
    add_labels(db, "toy", [{"prediction_id": f"p{i}", "label": i % 2} for i in range(4)])
    perf = realised_performance(db, "toy", metric="accuracy", window="1d", min_labels=1)
    assert perf["labelled"].sum() == 4
    assert perf["value"].dropna().tolist() == [0.5]  # every row predicted "1"
