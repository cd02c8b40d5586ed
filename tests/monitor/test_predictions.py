"""Prediction log, labels and realised performance, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import importlib
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, select, text

from retrainer.errors import ConflictError, RetrainerError
from retrainer.evaluate.metrics import score
from retrainer.monitor import (
    InvalidRecordsError,
    LabelReport,
    add_labels,
    log_predictions,
    realised_performance,
)
from retrainer.registry import Database, build_engine, list_events, verify_chain
from retrainer.registry.tables import Label, Prediction

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def predictions(
    n: int, *, seed: int = 0, start: datetime = T0, step: timedelta = timedelta(minutes=30)
) -> pd.DataFrame:
    """``n`` binary predictions: id, time, positive-class score, predicted label (0/1)."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(size=n)
    return pd.DataFrame(
        {
            "prediction_id": [f"p{i}" for i in range(n)],
            "predicted_at": [start + i * step for i in range(n)],
            "score": p,
            "label": (p >= 0.5).astype(int),
        }
    )


def truth_for(frame: pd.DataFrame, *, seed: int = 1) -> pd.DataFrame:
    """Labels drawn from the scores (so the model is calibrated)."""
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=len(frame)) < frame["score"].to_numpy()).astype(int)
    return pd.DataFrame({"prediction_id": frame["prediction_id"], "label": y})


def stored(db: Database, table: type[Prediction] | type[Label]) -> dict[str, Any]:
    def read(s: Any) -> dict[str, Any]:
        return {r.prediction_id: r for r in s.scalars(select(table))}

    return db.transaction(read)


# --- the prediction log ---------------------------------------------------------------------


def test_logged_predictions_read_back_as_written(db: Database) -> None:
    cest = timezone(timedelta(hours=2))
    rows = [
        {"prediction_id": "a", "predicted_at": datetime(2024, 3, 1, 14, tzinfo=cest), "score": 0.8},
        {"prediction_id": 7, "label": "yes", "probabilities": {"yes": 0.7, "no": 0.3}},
        {"prediction_id": "c", "predicted_at": "2024-03-01T12:30:00+00:00", "label": np.int64(1)},
    ]
    assert log_predictions(db, "rain", 3, rows, at=T0) == 3
    got = stored(db, Prediction)
    assert set(got) == {"a", "7", "c"}
    assert got["a"].predicted_at == datetime(2024, 3, 1, 12, tzinfo=UTC)
    assert (got["a"].score, got["a"].label, got["a"].probabilities) == (0.8, None, None)
    assert got["7"].predicted_at == T0  # the call's default time
    assert (got["7"].label, got["7"].probabilities) == ("yes", {"yes": 0.7, "no": 0.3})
    assert got["c"].label == "1" and got["c"].version == 3
    assert got["c"].predicted_at == datetime(2024, 3, 1, 12, 30, tzinfo=UTC)
    with db.engine.connect() as conn:  # missing outputs are SQL NULL, not JSON null
        nulls = "SELECT COUNT(*) FROM predictions WHERE probabilities IS NULL AND score IS NULL"
        assert conn.execute(text(nulls)).scalar() == 1


def test_predicted_at_defaults_to_the_store_clock(db: Database) -> None:
    db.clock = lambda: datetime(2024, 5, 5, 8, tzinfo=UTC)
    log_predictions(db, "rain", 1, [{"prediction_id": "x", "score": 0.1}])
    assert stored(db, Prediction)["x"].predicted_at == datetime(2024, 5, 5, 8, tzinfo=UTC)


def test_a_frame_is_logged_in_one_call(db: Database) -> None:
    frame = predictions(50)
    assert log_predictions(db, "rain", 2, frame) == 50
    got = stored(db, Prediction)
    assert got["p49"].predicted_at == T0 + 49 * timedelta(minutes=30)
    assert got["p3"].score == pytest.approx(frame["score"][3])


def test_ids_repeated_in_one_call_are_refused_by_name(db: Database) -> None:
    rows = [{"prediction_id": i, "score": 0.5} for i in ("a", "b", "a")]
    with pytest.raises(InvalidRecordsError, match="prediction_id 'a' repeated in the call"):
        log_predictions(db, "rain", 1, rows)
    assert stored(db, Prediction) == {}


def test_ids_already_logged_conflict_and_nothing_of_the_call_is_written(db: Database) -> None:
    log_predictions(db, "rain", 1, [{"prediction_id": "a", "score": 0.2}])
    log_predictions(db, "other", 1, [{"prediction_id": "b", "score": 0.2}])  # another model
    again = [{"prediction_id": p, "score": 0.9} for p in ("b", "c", "a")]
    with pytest.raises(ConflictError, match="prediction_id 'a' already logged for model 'rain'"):
        log_predictions(db, "rain", 2, again)
    assert set(stored(db, Prediction)) == {"a", "b"}
    assert stored(db, Prediction)["a"].score == 0.2


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"prediction_id": "x", "score": 0.5, "proba": 0.5}, "unexpected column 'proba'"),
        ({"score": 0.5}, "missing required column 'prediction_id'"),
        ({"prediction_id": "x"}, r"prediction_id 'x'\): has no output"),
        ({"prediction_id": "x", "score": float("inf")}, "'score' must be finite"),
        ({"prediction_id": "x", "score": "high"}, "'score' must be a number"),
        ({"prediction_id": "x", "score": True}, "'score' must be a number"),
        ({"prediction_id": "", "score": 0.5}, "'prediction_id' must be a non-empty"),
        ({"prediction_id": 1.5, "score": 0.5}, "'prediction_id' must be a non-empty"),
        ({"prediction_id": "x" * 129, "score": 0.5}, "longer than 128"),
        ({"prediction_id": "x", "label": [1, 2]}, "'label': expected a label"),
        ({"prediction_id": "x", "probabilities": {"a": 1.5}}, r"'probabilities'\['a'\]"),
        ({"prediction_id": "x", "probabilities": [0.2, 0.8]}, "'probabilities' must be"),
        (
            {"prediction_id": "x", "score": 0.5, "predicted_at": datetime(2024, 1, 1)},
            "'predicted_at': expected a timezone-aware datetime, got naive",
        ),
        (
            {"prediction_id": "x", "score": 0.5, "predicted_at": "yesterday"},
            "not an ISO 8601 timestamp",
        ),
    ],
)
def test_malformed_predictions_are_refused_naming_row_id_and_column(
    db: Database, record: dict[str, Any], message: str
) -> None:
    rows = [{"prediction_id": "ok", "score": 0.5}, record]
    with pytest.raises(InvalidRecordsError, match=message) as info:
        log_predictions(db, "rain", 1, rows)
    assert "row 1" in str(info.value)
    assert isinstance(info.value, RetrainerError) and info.value.code == "INVALID_RECORDS"
    assert stored(db, Prediction) == {}


def test_a_frame_with_naive_timestamps_is_refused(db: Database) -> None:
    frame = predictions(3)
    frame["predicted_at"] = pd.date_range("2024-01-01", periods=3, freq="h")
    with pytest.raises(InvalidRecordsError, match=r"row 0 .*'p0'.*naive"):
        log_predictions(db, "rain", 1, frame)


def test_bad_model_or_version_is_refused(db: Database) -> None:
    with pytest.raises(InvalidRecordsError, match="version must be a positive integer"):
        log_predictions(db, "rain", 0, [{"prediction_id": "a", "score": 0.1}])
    with pytest.raises(InvalidRecordsError, match="model must be a name"):
        log_predictions(db, "", 1, [{"prediction_id": "a", "score": 0.1}])
    with pytest.raises(InvalidRecordsError, match="expected a DataFrame or an iterable"):
        log_predictions(db, "rain", 1, {"prediction_id": "a"})  # type: ignore[arg-type]


# --- labels ---------------------------------------------------------------------------------


def test_labels_for_unknown_ids_are_kept_and_join_once_logged(db: Database) -> None:
    log_predictions(db, "rain", 1, predictions(4))
    report = add_labels(
        db, "rain", [{"prediction_id": "p0", "label": 1}, {"prediction_id": "z", "label": 0}]
    )
    assert report == LabelReport(
        received=2, inserted=2, replaced=0, unchanged=0, matched=1, unmatched=1
    )
    assert stored(db, Label)["z"].label == 0
    late = pd.DataFrame(
        {"prediction_id": ["z"], "predicted_at": [T0], "score": [0.3], "label": [0]}
    )
    log_predictions(db, "rain", 1, late)
    perf = realised_performance(db, "rain", metric="accuracy", min_labels=1)
    assert perf["labelled"].sum() == 2


def test_the_same_label_again_is_a_no_op(db: Database) -> None:
    log_predictions(db, "rain", 1, predictions(3))
    first = add_labels(db, "rain", truth_for(predictions(3)))
    assert (first.inserted, first.matched) == (3, 3)
    # a pandas column with a gap turns 1 into 1.0: still the same label
    again = truth_for(predictions(3)).astype({"label": float})
    second = add_labels(db, "rain", again)
    assert (second.inserted, second.unchanged, second.replaced) == (0, 3, 0)


def test_a_different_label_is_refused_unless_replace_which_is_audited(db: Database) -> None:
    log_predictions(db, "rain", 1, predictions(3))
    add_labels(db, "rain", [{"prediction_id": "p1", "label": "no"}])
    relabel = [{"prediction_id": "p1", "label": "yes"}, {"prediction_id": "p2", "label": "no"}]
    with pytest.raises(ConflictError, match="prediction_id 'p1' of model 'rain' already labelled"):
        add_labels(db, "rain", relabel)
    assert set(stored(db, Label)) == {"p1"}  # nothing of the refused call was written
    assert stored(db, Label)["p1"].label == "no"

    report = add_labels(db, "rain", relabel, replace=True, actor="alice")
    assert (report.replaced, report.inserted) == (1, 1)
    assert stored(db, Label)["p1"].label == "yes"
    events = db.transaction(lambda s: list_events(s, subject_prefix="rain/labels"))
    assert [(e.action, e.actor) for e in events] == [("labels.replaced", "alice")]
    assert events[0].payload["changes"] == [{"prediction_id": "p1", "from": "no", "to": "yes"}]
    assert db.transaction(verify_chain).ok


def test_two_labels_for_one_id_in_a_call_are_refused(db: Database) -> None:
    rows = [{"prediction_id": "a", "label": 1}, {"prediction_id": "a", "label": 0}]
    with pytest.raises(InvalidRecordsError, match="'a' has two different labels"):
        add_labels(db, "rain", rows)
    twice = add_labels(db, "rain", [{"prediction_id": "a", "label": 1}] * 2)
    assert twice.received == 1


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"prediction_id": "a"}, r"row 0 \(prediction_id 'a'\): no 'label'"),
        ({"prediction_id": "a", "label": None}, "no 'label'"),
        ({"prediction_id": "a", "label": float("nan")}, "no 'label'"),
        ({"prediction_id": "a", "label": {"x": 1}}, "'label': expected a label"),
        ({"prediction_id": "a", "label": 1, "extra": 2}, "unexpected column 'extra'"),
    ],
)
def test_malformed_labels_are_refused(db: Database, record: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRecordsError, match=message):
        add_labels(db, "rain", [record])


def test_concurrent_writers_of_the_same_labels_both_succeed(db: Database) -> None:
    labels = truth_for(predictions(2000))
    reports: list[LabelReport] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        try:
            barrier.wait(timeout=30)
            reports.append(add_labels(db, "rain", labels))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert [r.received for r in reports] == [2000, 2000]
    assert sum(r.inserted for r in reports) == 2000
    assert len(stored(db, Label)) == 2000


# --- realised performance -------------------------------------------------------------------


def test_each_window_is_scored_by_the_evaluate_metric_on_its_labelled_rows(
    db: Database,
) -> None:
    frame = predictions(144)  # three UTC days, every 30 minutes
    log_predictions(db, "rain", 1, frame)
    everything = truth_for(frame)
    truth = pd.concat([everything.iloc[::5], everything.iloc[1::5]])  # 40 % labelled
    add_labels(db, "rain", truth)
    joined = frame.merge(truth, on="prediction_id", suffixes=("", "_true"))
    day = (joined["predicted_at"] - T0) // timedelta(days=1)
    for metric in ("roc_auc", "accuracy", "f1", "log_loss"):
        perf = realised_performance(db, "rain", metric=metric, min_labels=5)
        assert perf.attrs["metric"] == metric
        assert list(perf["window_start"]) == [T0 + timedelta(days=d) for d in range(3)]
        assert list(perf["predicted"]) == [48, 48, 48]
        for d in range(3):
            part = joined[day == d]
            y = part["label_true"].astype(str).to_numpy()
            if metric in ("roc_auc", "log_loss"):
                expected = score(metric, y, part["score"].to_numpy())
            else:
                expected = score(metric, y, part["label"].astype(str).to_numpy())
            row = perf.iloc[d]
            assert row["labelled"] == len(part)
            assert row["coverage"] == pytest.approx(len(part) / 48)
            assert row["value"] == pytest.approx(expected), (metric, d)
            assert row["note"] is None


def test_missing_values_say_why(db: Database) -> None:
    frame = predictions(6, step=timedelta(hours=12))  # two per day over three days
    log_predictions(db, "rain", 1, frame)
    # day 1: both labelled, one class only -> ROC AUC undefined; day 2: one label
    add_labels(
        db,
        "rain",
        [
            {"prediction_id": "p0", "label": 1},
            {"prediction_id": "p1", "label": 1},
            {"prediction_id": "p2", "label": 0},
        ],
    )
    perf = realised_performance(db, "rain", metric="roc_auc", min_labels=2)
    assert list(perf["labelled"]) == [2, 1, 0]
    assert perf["value"].isna().all()
    notes = list(perf["note"])
    assert notes[0].startswith("roc_auc undefined")
    assert notes[1] == "too few labels to score (1 < 2)"
    assert notes[2] == "too few labels to score (0 < 2)"


def test_every_window_in_the_range_is_listed_even_empty_ones(db: Database) -> None:
    first = predictions(2, start=T0)
    later = predictions(2, start=T0 + timedelta(days=3)).assign(prediction_id=["q0", "q1"])
    log_predictions(db, "rain", 1, pd.concat([first, later]))
    perf = realised_performance(db, "rain", metric="accuracy")
    assert list(perf["predicted"]) == [2, 0, 0, 2]
    assert perf["coverage"].isna().tolist() == [False, True, True, False]
    assert list(perf["note"][1:3]) == ["no predictions", "no predictions"]

    ranged = realised_performance(
        db,
        "rain",
        metric="accuracy",
        window=timedelta(hours=12),
        since=T0 - timedelta(hours=12),
        until=T0 + timedelta(days=1),
    )
    assert list(ranged["window_start"]) == [T0 + timedelta(hours=h) for h in (-12, 0, 12)]
    assert list(ranged["predicted"]) == [0, 2, 0]
    assert realised_performance(db, "nobody", metric="accuracy").empty


def test_since_is_inclusive_until_exclusive_and_version_filters(db: Database) -> None:
    log_predictions(db, "rain", 1, predictions(4, step=timedelta(hours=6)))
    v2 = predictions(4, start=T0 + timedelta(days=1), step=timedelta(hours=6))
    log_predictions(db, "rain", 2, v2.assign(prediction_id=[f"v{i}" for i in range(4)]))
    one_day = realised_performance(
        db,
        "rain",
        metric="accuracy",
        since=T0 + timedelta(hours=6),
        until=T0 + timedelta(days=1, hours=6),
        window="1d",
    )
    assert list(one_day["predicted"]) == [4]  # 06:00, 12:00, 18:00 and the next 00:00
    v2_only = realised_performance(db, "rain", metric="accuracy", version=2)
    assert list(v2_only["window_start"]) == [T0 + timedelta(days=1)]
    assert list(v2_only["predicted"]) == [4]


def test_multiclass_roc_auc_from_logged_probabilities(db: Database) -> None:
    rng = np.random.default_rng(5)
    classes = ["a", "b", "c"]
    proba = rng.dirichlet([1, 1, 1], size=300)
    truth = [rng.choice(classes, p=p) for p in proba]
    rows = [
        {
            "prediction_id": i,
            "predicted_at": T0,
            "probabilities": dict(zip(classes, p, strict=True)),
        }
        for i, p in enumerate(proba)
    ]
    log_predictions(db, "iris", 1, rows)
    add_labels(db, "iris", [{"prediction_id": i, "label": t} for i, t in enumerate(truth)])
    perf = realised_performance(db, "iris", metric="roc_auc")
    assert perf["value"][0] == pytest.approx(score("roc_auc", np.array(truth), proba))


def test_regression_metrics_use_the_logged_value(db: Database) -> None:
    rng = np.random.default_rng(6)
    value = rng.normal(size=100)
    actual = value + rng.normal(scale=0.5, size=100)
    log_predictions(
        db,
        "price",
        1,
        [{"prediction_id": i, "predicted_at": T0, "score": v} for i, v in enumerate(value)],
    )
    add_labels(db, "price", [{"prediction_id": i, "label": float(a)} for i, a in enumerate(actual)])
    perf = realised_performance(db, "price", metric="rmse")
    assert perf["value"][0] == pytest.approx(score("rmse", actual, value))


def test_label_metrics_compare_labels_as_text(db: Database) -> None:
    rows = [
        {"prediction_id": "a", "predicted_at": T0, "label": True},
        {"prediction_id": "b", "predicted_at": T0, "label": np.bool_(False)},
        {"prediction_id": "c", "predicted_at": T0, "label": 1},
    ]
    log_predictions(db, "flags", 1, rows)
    add_labels(
        db,
        "flags",
        [
            {"prediction_id": "a", "label": True},
            {"prediction_id": "b", "label": True},
            {"prediction_id": "c", "label": 1.0},
        ],
    )
    perf = realised_performance(db, "flags", metric="accuracy", min_labels=1)
    assert perf["value"][0] == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metric": "auc"}, "unknown metric 'auc'"),
        ({"metric": "accuracy", "window": "daily"}, "expected a duration"),
        ({"metric": "accuracy", "window": timedelta(0)}, "positive duration"),
        ({"metric": "accuracy", "since": datetime(2024, 1, 1)}, "naive"),
        ({"metric": "accuracy", "since": T0, "until": T0}, "must be after since"),
        (
            {"metric": "accuracy", "window": "1s", "since": T0, "until": T0 + timedelta(days=3)},
            "at most 100000",
        ),
    ],
)
def test_bad_arguments_are_refused(db: Database, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        realised_performance(db, "rain", **kwargs)


# --- volume ---------------------------------------------------------------------------------


def test_one_hundred_thousand_predictions_and_labels(db: Database) -> None:
    """Bulk inserts in chunks: measured about 3 s each on SQLite, 3-5 s on PostgreSQL."""
    n = 100_000
    frame = predictions(n, step=timedelta(seconds=30))
    started = time.perf_counter()
    assert log_predictions(db, "big", 1, frame) == n
    logged = time.perf_counter()
    report = add_labels(db, "big", truth_for(frame))
    labelled = time.perf_counter()
    perf = realised_performance(db, "big", metric="roc_auc", window="1d")
    done = time.perf_counter()
    assert (report.inserted, report.matched) == (n, n)
    assert perf["predicted"].sum() == n and perf["labelled"].sum() == n
    assert perf["value"].between(0.75, 0.92).all()
    timings = (logged - started, labelled - logged, done - labelled)
    assert max(timings) < 30, timings
    with pytest.raises(ConflictError, match="prediction_id 'p99999' already logged"):
        log_predictions(db, "big", 1, frame.iloc[-1:])


# --- the migration ----------------------------------------------------------------------------


def _alembic() -> Config:
    cfg = Config()
    module = importlib.import_module("retrainer.registry.migrate")
    location = Path(str(module.__file__)).parent / "migrations"
    cfg.set_main_option("script_location", str(location))
    return cfg


def _run(db: Database, fn: Any, revision: str) -> None:
    cfg = _alembic()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        fn(cfg, revision)


def test_migration_0002_adds_and_removes_the_tables_keeping_other_rows(
    store_url: str, tmp_path: Path
) -> None:
    db = Database(build_engine(store_url, base_dir=tmp_path))
    try:
        _run(db, command.upgrade, "0001")
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO watermarks (model, source_uri, value, updated_at) "
                    "VALUES ('rain', 'data/', '{}', :at)"
                ),
                {"at": T0},
            )
        _run(db, command.upgrade, "0002")
        tables = set(inspect(db.engine).get_table_names())
        assert {"predictions", "labels", "watermarks"} <= tables
        indexes = {i["name"] for i in inspect(db.engine).get_indexes("predictions")}
        assert "ix_predictions_model_predicted_at" in indexes
        _run(db, command.downgrade, "0001")
        assert not {"predictions", "labels"} & set(inspect(db.engine).get_table_names())
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT model FROM watermarks")).scalar() == "rain"
    finally:
        db.dispose()
