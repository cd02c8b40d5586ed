"""Retention plan and apply on a workspace with a real history.

The history is made by real cycles under a clock the test moves: v1 champion, a small
batch quarantined, v2 a rejected baseline (never served), v3 champion after a concept
change (v1 becomes the previous champion and then archived), v4 champion (v3 the
previous champion). Predictions are logged in the store and in the Parquet log. Then
the clock jumps 400 days and retention runs.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from conftest import add_batch, synthetic_batch
from retrainer.deploy.predlog import LOG_DIR, PredictionLogWriter, PredictionRecord
from retrainer.errors import SpecError
from retrainer.governance.anchor import read_anchors, verify_audit
from retrainer.governance.retention import RetentionIncomplete, apply, plan
from retrainer.monitor.predictions import add_labels, log_predictions
from retrainer.orchestrate import run_cycle
from retrainer.registry import CHAMPION, list_events, rollback, verify_chain
from retrainer.registry.tables import Base, Batch, Label, Prediction, Snapshot
from retrainer.workspace import Workspace

MODEL = "toy"
T0 = datetime(2024, 1, 1, 12, tzinfo=UTC)
LOGREG = "estimator: sklearn.linear_model.LogisticRegression\n  params: {max_iter: 200}"
DUMMY = "estimator: sklearn.dummy.DummyClassifier\n  params: {strategy: prior}"
POLICY = """\
retention:
  raw_batches: 90d
  quarantine: 30d
  artifacts: 90d
  predictions: 200d
  documentation_window: 200d
"""


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, days: float) -> None:
        self.now += timedelta(days=days)


@dataclass
class History:
    root: Path
    clock: Clock

    def open(self) -> Workspace:
        return Workspace.open(self.root, clock=self.clock)

    def cycle(self, **kwargs: Any) -> Any:
        with self.open() as ws:
            return run_cycle(ws, actor="t", **kwargs)

    def spec(self, extra: str, *, hold: list[int] | None = None) -> None:
        text = (self.root / "retrainer.yaml").read_text().split("retention:")[0]
        if hold is not None:
            extra += f"  legal_hold: {hold}\n"
        (self.root / "retrainer.yaml").write_text(text + extra)


def build_history(root: Path) -> History:
    h = History(root, Clock())
    spec = root / "retrainer.yaml"
    spec.write_text(spec.read_text() + "audit:\n  anchor: anchor/head.jsonl\n")
    add_batch(root, "b1", synthetic_batch(1, 400, start_day=0))
    assert h.cycle().promoted  # v1
    h.clock.advance(5)
    add_batch(root, "b-small", synthetic_batch(9, 30, start_day=3))
    spec.write_text(spec.read_text().replace(LOGREG, DUMMY))
    rejected = h.cycle(manual_reason="a baseline")  # v2, never served
    assert (rejected.version, rejected.promoted) == (2, False)
    assert rejected.steps["contract"]["quarantined"]
    spec.write_text(spec.read_text().replace(DUMMY, LOGREG))
    h.clock.advance(5)
    add_batch(root, "b2", synthetic_batch(2, 400, start_day=10, flipped=True))
    assert h.cycle().promoted  # v3 (v1 previous)
    h.clock.advance(10)
    add_batch(root, "b3", synthetic_batch(3, 400, start_day=30, flipped=True))
    assert h.cycle(manual_reason="refresh").promoted  # v4 (v3 previous)
    with h.open() as ws:
        old = [
            {"prediction_id": f"old{i}", "predicted_at": T0 + timedelta(days=1, hours=i)}
            for i in range(3)
        ]
        log_predictions(ws.db, MODEL, 1, [{**r, "score": 0.7, "label": "1"} for r in old])
        log_predictions(
            ws.db,
            MODEL,
            1,
            [{"prediction_id": "old9", "predicted_at": T0 + timedelta(days=2), "score": 0.2}],
        )
        add_labels(ws.db, MODEL, [{"prediction_id": "old0", "label": 1}])
        add_labels(ws.db, MODEL, [{"prediction_id": "stray", "label": 0}])  # no prediction
        new = [{"prediction_id": "new0", "predicted_at": T0 + timedelta(days=399), "score": 0.1}]
        log_predictions(ws.db, MODEL, 4, new)
    writer = PredictionLogWriter(root / LOG_DIR)
    for version, when in ((1, T0 + timedelta(days=1)), (4, T0 + timedelta(days=399))):
        writer.submit([PredictionRecord(MODEL, version, f"p{version}", when, {"x1": 0.5})])
    writer.close()
    h.clock.advance(380)  # day 400
    h.spec(POLICY)
    return h


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def history(request: pytest.FixtureRequest, make_workspace: Callable[..., Path]) -> History:
    store = None if request.param == "sqlite" else request.getfixturevalue("pg_schema_url")
    return build_history(make_workspace(store=store))


@pytest.fixture
def sqlite_history(make_workspace: Callable[..., Path]) -> History:
    return build_history(make_workspace())


def state(ws: Workspace) -> dict[str, Any]:
    """Every row of every table, and every file under .retrainer/ with its size."""

    def rows(s: Any) -> dict[str, Any]:
        return {
            t.name: sorted(map(repr, s.execute(select(t)).all()))
            for t in Base.metadata.sorted_tables
        }

    files = {
        str(p.relative_to(ws.root)): p.stat().st_size
        for p in sorted((ws.root / ".retrainer").rglob("*"))
        if p.is_file() and not p.name.startswith("retrainer.db")
    }
    return {"rows": ws.db.transaction(rows), "files": files}


def events(ws: Workspace) -> list[Any]:
    return ws.db.transaction(lambda s: list(list_events(s, limit=100_000)))


def subjects(items: Any) -> set[str]:
    return {i.subject for i in items}


def test_plan_is_a_dry_run_that_names_what_is_due_and_what_is_kept(
    sqlite_history: History,
) -> None:
    with sqlite_history.open() as ws:
        before = state(ws)
        result = plan(ws)
        assert state(ws) == before  # nothing written, nothing deleted

    assert subjects(result.items) == {
        "toy/batch/1",
        "toy/batch/3",
        "toy/batch/4",
        "toy/batch/2",
        "toy:1",
        "toy:2",
        "toy/predictions/2024-01-02",
        "toy/predictions/2024-01-03",
        "toy/predictions/2024-01-21",  # the label that arrived for no prediction
        "toy/prediction_log/2024-01-02",
    }
    kinds = {i.subject: i.kind for i in result.items}
    assert kinds["toy/batch/2"] == "quarantine" and kinds["toy/batch/1"] == "batch"
    assert kinds["toy:1"] == kinds["toy:2"] == "artifact"
    for item in result.items:
        assert len(item.sha256) == 64 and item.size > 0 and item.reason
        assert item.age >= timedelta(days=200)
    kept = {k.subject: k.reasons for k in result.kept}
    assert kept["toy:4"] == ("champion",)
    assert kept["toy:3"] == ("previous champion (the rollback target)",)
    training = [why for s, r in kept.items() if s.startswith("toy/snapshot/") for why in r]
    assert sorted(training) == [
        "holdout data of toy:3, kept with it",
        "holdout data of toy:4, kept with it",
        "train data of toy:3, kept with it",
        "train data of toy:4, kept with it",
    ]
    assert "stopped serving 2024-01-11" in next(
        i.reason for i in result.items if i.subject == "toy:1"
    )
    assert "created 2024-01-06" in next(i.reason for i in result.items if i.subject == "toy:2")
    assert result.total_bytes == sum(i.size for i in result.items)


def test_apply_deletes_exactly_the_plan_audits_it_and_a_second_apply_is_a_no_op(
    history: History,
) -> None:
    with history.open() as ws:
        planned = plan(ws)
        v4_sha = ws.registry.get(MODEL, 4).artifact_sha256
        anchors_before = len(read_anchors(str(ws.anchor_uri)))
        first_new_event = len(events(ws)) + 1

        result = apply(ws, planned, "admin")

        assert {i.key for i, _ in result.deleted} == {i.key for i in planned.items}
        assert result.skipped == () and result.failed is None
        assert result.bytes_deleted == planned.total_bytes
        # the audit log: a seal with the head before, one event per item, a summary
        new = events(ws)[first_new_event - 1 :]
        assert [e.action for e in new] == (
            ["retention.seal"] + ["retention.delete"] * len(planned.items) + ["retention.apply"]
        )
        assert new[0].payload["head"] == new[0].prev_hash
        by_subject = {e.subject: e.payload for e in new if e.action == "retention.delete"}
        for item in planned.items:
            assert by_subject[item.subject]["sha256"] == item.sha256
            assert by_subject[item.subject]["size"] == item.size
            assert by_subject[item.subject]["kind"] == item.kind
            for blob in item.blobs:
                assert not ws.artifacts.exists(blob.sha256)
        assert new[-1].payload["deleted"] == len(planned.items)
        assert ws.db.transaction(verify_chain).ok
        verdict = verify_audit(ws.db, ws.anchor_uri)
        assert verdict.ok, verdict.problem
        anchors = read_anchors(str(ws.anchor_uri))
        assert len(anchors) == anchors_before + 2  # the sealed head, then the head after
        assert anchors[anchors_before].hash == new[0].hash

        # records stay, marked; the kept versions and their data are whole
        statuses = {v.version: v.status for v in ws.registry.versions(MODEL)}
        assert statuses == {1: "PURGED", 2: "PURGED", 3: "READY", 4: "READY"}
        for version in (1, 2):  # the record and its documentation (the spec it used) stay
            info = ws.registry.get(MODEL, version)
            assert info.decision and info.lineage["train_rows"] > 0
            assert ws.artifacts.exists(info.lineage["spec_artifact_sha256"])
        batches = ws.db.transaction(
            lambda s: {b.id: (b.status, b.reasons) for b in s.scalars(select(Batch))}
        )
        assert {b: st for b, (st, _) in batches.items()} == {
            1: "purged",
            2: "purged",
            3: "purged",
            4: "purged",
        }
        assert batches[2][1]["retention"]["status"] == "quarantined"
        assert batches[2][1]["failures"]  # the contract report stays
        for version in (3, 4):
            info = ws.registry.get(MODEL, version)
            assert info.artifact_sha256 is not None
            ws.artifacts.get(info.artifact_sha256)  # present and intact
            for key in ("train_snapshot", "holdout_snapshot"):
                assert len(ws.ledger.load_frame(ws.ledger.get_snapshot(info.lineage[key]))) > 0
        purged = ws.db.transaction(
            lambda s: s.scalar(select(func.count()).where(Snapshot.purged_at.is_not(None)))
        )
        assert purged == sum(len(i.snapshots) for i in planned.items)

        # predictions: the old days are gone from the store and the Parquet log
        ids = ws.db.transaction(lambda s: sorted(s.scalars(select(Prediction.prediction_id))))
        assert ids == ["new0"]
        assert ws.db.transaction(lambda s: list(s.scalars(select(Label.prediction_id)))) == []
        log_root = ws.root / LOG_DIR / f"model={MODEL}"
        assert sorted(p.name for p in log_root.iterdir()) == ["date=2025-02-03"]

        # running it again deletes nothing and writes nothing
        count = len(events(ws))
        again = apply(ws, plan(ws), "admin")
        assert (again.deleted, again.seal_event, again.summary_event) == ((), None, None)
        assert len(events(ws)) == count
        assert plan(ws).items == ()

        # the previous champion can still be rolled back to, and its model loads
        rollback(ws.registry, MODEL, actor="admin", reason="after retention")
        assert ws.registry.get_alias(MODEL, CHAMPION) == 3
        assert v4_sha is not None and ws.artifacts.get(v4_sha)


def test_a_cycle_after_retention_works_on_the_data_that_is_left(sqlite_history: History) -> None:
    with sqlite_history.open() as ws:
        apply(ws, plan(ws), "admin")
    add_batch(sqlite_history.root, "b4", synthetic_batch(4, 400, start_day=400, flipped=True))
    result = sqlite_history.cycle(manual_reason="after retention")
    assert result.status == "succeeded", result.outcome
    assert result.steps["datasets"]["train"]["row_count"] < 400  # only b4 is left to train on


def test_legal_hold_and_the_windows_keep_old_versions(sqlite_history: History) -> None:
    sqlite_history.spec(POLICY, hold=[1])
    with sqlite_history.open() as ws:
        held = plan(ws)
    kept = {k.subject: k.reasons for k in held.kept}
    assert kept["toy:1"] == ("legal hold",)
    assert "toy:1" not in subjects(held.items) and "toy:2" in subjects(held.items)
    assert any("legal hold" in r for r in kept["toy/predictions"])
    assert kept["toy/prediction_log/2024-01-02"] == ("legal hold: holds predictions of v1",)

    # the default documentation window (10 years) keeps v1, which served; keep_versions v2
    sqlite_history.spec(POLICY.replace("  documentation_window: 200d\n", "  keep_versions: 3\n"))
    with sqlite_history.open() as ws:
        windows = plan(ws)
        kept = {k.subject: k.reasons for k in windows.kept}
        assert kept["toy:1"] == (
            "documentation window: served until 2024-01-11, kept until 2034-01-08",
        )
        assert kept["toy:2"] == ("one of the newest 3 READY versions (keep_versions)",)
        assert not [i for i in windows.items if i.kind == "artifact"]
        apply(ws, windows, "admin")
        infos = {v: ws.registry.get(MODEL, v) for v in (1, 2)}
        for info in infos.values():
            assert info.status == "READY" and info.artifact_sha256 is not None
            ws.artifacts.get(info.artifact_sha256)


def test_apply_acts_on_a_fresh_plan_never_on_a_stale_one(sqlite_history: History) -> None:
    with sqlite_history.open() as ws:
        stale = plan(ws)
    sqlite_history.spec(POLICY, hold=[2])  # after the plan was made, v2 goes on hold
    with sqlite_history.open() as ws:
        result = apply(ws, stale, "admin")
        assert "toy:2" not in subjects(i for i, _ in result.deleted)
        assert dict(result.skipped)["toy:2"] == "no longer due: legal hold"
        assert ws.registry.get(MODEL, 2).status == "READY"
        assert len(result.deleted) == len(stale.items) - 1


def test_a_failure_midway_leaves_deleted_items_audited_and_the_rest_untouched(
    sqlite_history: History,
) -> None:
    with sqlite_history.open() as ws:
        planned = plan(ws)
        first, second, *rest = planned.items
        blob = ws.artifacts.path_of(second.blobs[0].sha256)
        saved = Path(blob).read_bytes()
        Path(blob).unlink()
        Path(blob).mkdir()  # a directory where the blob was: deleting it fails
        (Path(blob) / "x").write_text("x")

        with pytest.raises(RetentionIncomplete, match=second.subject) as info:
            apply(ws, planned, "admin")

        assert [i.subject for i, _ in info.value.result.deleted] == [first.subject]
        log = [(e.action, e.subject) for e in events(ws)]
        assert log[-4:] == [
            ("retention.delete", first.subject),
            ("retention.delete", second.subject),  # written before its blob, which failed
            ("retention.failed", second.subject),
            ("retention.apply", f"{MODEL}/retention"),
        ]
        assert not ws.artifacts.exists(first.blobs[0].sha256)
        for item in rest:  # untouched
            assert all(ws.artifacts.exists(b.sha256) for b in item.blobs)
        assert {v.version: v.status for v in ws.registry.versions(MODEL)}[1] == "READY"
        assert ws.db.transaction(verify_chain).ok

        shutil.rmtree(blob)
        Path(blob).write_bytes(saved)  # the cause is fixed; the blob is still there
        again = plan(ws)
        finish = next(i for i in again.items if i.subject == second.subject)
        assert finish.finish and finish.snapshots == ()
        done = apply(ws, again, "admin")
        assert {i.subject for i, _ in done.deleted} == {second.subject} | subjects(rest)
        assert not Path(blob).exists()
        assert plan(ws).items == ()
        assert ws.db.transaction(verify_chain).ok


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ("retention:\n  predictions: 30d\n", "predictions: 30d is inside the log window (183d)"),
        ("retention:\n  log_window: 90d\n", "log_window: expected at least 183d"),
        (
            "retention:\n  log_window: 365d\n  predictions: 200d\n",
            "predictions: 200d is inside the log window (365d)",
        ),
        ("retention:\n  legal_hold: [3, 3]\n", "legal_hold: a version is listed twice"),
    ],
)
def test_a_purge_inside_the_log_window_is_refused(
    make_workspace: Callable[..., Path], policy: str, message: str
) -> None:
    root = make_workspace()
    (root / "retrainer.yaml").write_text((root / "retrainer.yaml").read_text() + policy)
    with pytest.raises(SpecError, match="retention") as info:
        Workspace.open(root)
    assert message in str(info.value)


def test_a_seal_that_cannot_be_anchored_stops_before_anything_is_deleted(
    sqlite_history: History,
) -> None:
    with sqlite_history.open() as ws:
        planned = plan(ws)
        anchor = Path(str(ws.anchor_uri))
        anchor.unlink()
        anchor.mkdir()  # the anchor cannot be written
        with pytest.raises(RetentionIncomplete, match="nothing was deleted"):
            apply(ws, planned, "admin")
        assert [e.action for e in events(ws)][-1] == "retention.seal"
        for item in planned.items:
            assert all(ws.artifacts.exists(b.sha256) for b in item.blobs)
        assert {v.status for v in ws.registry.versions(MODEL)} == {"READY"}
        assert plan(ws).items == planned.items
