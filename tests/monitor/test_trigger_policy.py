"""Drift, schedule, ``drop`` and estimated-performance triggers; any/all; cooldown; limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from retrainer.errors import SpecError
from retrainer.monitor import DriftEvidence, TriggerContext, decide
from retrainer.monitor.triggers import schedule_tick
from retrainer.spec import PipelineSpec, parse_spec

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # a Wednesday


def spec(*triggers: dict[str, Any], policy: dict[str, Any] | None = None) -> PipelineSpec:
    return PipelineSpec.model_validate(
        {
            "model": {
                "name": "toy",
                "task": "classification",
                "target": "y",
                "features": {"numeric": ["x1", "x2"], "categorical": ["c"]},
            },
            "data": {"source": "data", "holdout": {"by": "random"}},
            "triggers": list(triggers),
            "retrain_policy": policy or {},
            "train": {"estimator": "sklearn.linear_model.LogisticRegression"},
        }
    )


def ctx(**kw: Any) -> TriggerContext:
    base: dict[str, Any] = {
        "has_champion": True,
        "accepted_rows_total": 5000,
        "rows_since_last_training": 0,
        "now": NOW,
        "champion_since": NOW - timedelta(days=30),
    }
    return TriggerContext(**(base | kw))


VOLUME = {"data_volume": {"rows": 600}}
DRIFT_SHARE = {"drift": {"share": 0.5}}


def drifted(*names: str, checked: int = 3, auc: float | None = None) -> DriftEvidence:
    return DriftEvidence(tuple(names), len(names) / checked, checked, auc)


# -- drift ----------------------------------------------------------------------------------


def test_drift_share_fires_at_the_threshold_and_names_the_features() -> None:
    d = decide(spec(DRIFT_SHARE), ctx(drift=drifted("x1", "c", checked=4)))
    assert d.fire and d.kind == "drift"
    assert d.reason == "drift: 2 of 4 features drifted (50% >= 50%)"
    assert d.numbers["drifted"] == ["x1", "c"]


def test_drift_below_the_share_does_not_fire_and_lists_what_drifted() -> None:
    d = decide(spec(DRIFT_SHARE), ctx(drift=drifted("x1", checked=3)))
    assert not d.fire
    assert d.reason == "no trigger fired: drift: 1 of 3 features drifted (x1)"


def test_a_watched_feature_fires_alone() -> None:
    d = decide(spec({"drift": {"features": ["x2"]}}), ctx(drift=drifted("x2", checked=3)))
    assert d.fire and "watched feature(s) drifted: x2" in d.reason
    quiet = decide(spec({"drift": {"features": ["x2"]}}), ctx(drift=drifted("x1", checked=3)))
    assert not quiet.fire


def test_domain_classifier_auc_fires() -> None:
    d = decide(spec({"drift": {"domain_auc": 0.7}}), ctx(drift=drifted(checked=3, auc=0.74)))
    assert d.fire and "domain classifier AUC 0.740 >= 0.7" in d.reason


def test_no_drift_evidence_is_not_a_no_drift_verdict() -> None:
    d = decide(spec(DRIFT_SHARE), ctx(drift=None))
    assert not d.fire
    assert "no batch checked against the champion yet" in d.reason


def test_drift_features_must_be_model_features() -> None:
    with pytest.raises(Exception, match=r"triggers\.0\.drift\.features"):
        spec({"drift": {"features": ["nope"]}})


# -- performance: drop from the holdout, estimated --------------------------------------------


def test_drop_from_the_champions_holdout_fires() -> None:
    s = spec({"performance": {"drop": 0.05, "min_rows": 10}})
    base = {"champion_holdout": {"roc_auc": 0.80}}
    assert not decide(s, ctx(realised={"roc_auc": (0.76, 100)}, **base)).fire
    d = decide(s, ctx(realised={"roc_auc": (0.74, 100)}, **base))
    assert d.fire and d.kind == "performance"
    assert "more than 0.05 worse than its holdout 0.800" in d.reason
    assert d.numbers["threshold"] == pytest.approx(0.75)


def test_drop_for_a_lower_is_better_metric_goes_up() -> None:
    s = spec({"performance": {"drop": 0.1, "metric": "log_loss", "min_rows": 10}})
    base = {"champion_holdout": {"log_loss": 0.40}}
    assert not decide(s, ctx(realised={"log_loss": (0.45, 100)}, **base)).fire
    assert decide(s, ctx(realised={"log_loss": (0.55, 100)}, **base)).fire


def test_estimated_performance_is_used_only_without_enough_labels() -> None:
    s = spec({"performance": {"below": 0.7, "min_rows": 50, "estimated": True}})
    d = decide(s, ctx(estimated={"roc_auc": (0.62, 400)}))
    assert d.fire and "estimated (CBPE) roc_auc 0.620" in d.reason
    assert d.numbers["estimated"] is True
    labelled = decide(s, ctx(realised={"roc_auc": (0.75, 100)}, estimated={"roc_auc": (0.6, 400)}))
    assert not labelled.fire  # realised, labelled evidence wins over the estimate
    off = spec({"performance": {"below": 0.7, "min_rows": 50}})
    assert not decide(off, ctx(estimated={"roc_auc": (0.62, 400)})).fire


# -- schedule ---------------------------------------------------------------------------------


def test_schedule_fires_once_after_downtime_then_waits_for_the_next_tick() -> None:
    weekly = {"schedule": {"cron": "0 3 * * 1", "timezone": "Europe/Berlin"}}
    # the champion is 30 days old: four Monday ticks were missed; one catch-up fires
    d = decide(spec(weekly), ctx())
    assert d.fire and d.kind == "schedule"
    tick = datetime.fromisoformat(d.numbers["tick"])
    assert tick == datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # Monday 03:00 in Berlin (CET)
    again = decide(spec(weekly), ctx(last_schedule_tick=tick))
    assert not again.fire
    assert "next at 2026-11-30 03:00 CET" in again.reason
    later = decide(spec(weekly), ctx(last_schedule_tick=tick, now=NOW + timedelta(days=5)))
    assert later.fire


def test_schedule_respects_the_time_zone() -> None:
    cron, now = "0 9 * * *", datetime(2026, 7, 1, 8, 30, tzinfo=UTC)
    assert schedule_tick(cron, "UTC", now) == datetime(2026, 6, 30, 9, 0, tzinfo=UTC)
    # 08:30 UTC is 10:30 in Berlin (CEST): today's 09:00 Berlin tick has passed
    assert schedule_tick(cron, "Europe/Berlin", now) == datetime(2026, 7, 1, 7, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("cron", "zone", "needle"),
    [
        ("61 * * * *", "UTC", "five-field cron"),
        ("* * * *", "UTC", "five-field cron"),
        ("0 3 * * 1", "Mars/Olympus", "IANA time zone"),
    ],
)
def test_bad_schedules_are_spec_errors(cron: str, zone: str, needle: str) -> None:
    text = f"""\
model: {{name: toy, task: classification, target: y, features: {{numeric: [x]}}}}
data: {{source: d, holdout: {{by: random}}}}
train: {{estimator: sklearn.linear_model.LogisticRegression}}
triggers:
  - schedule: {{cron: "{cron}", timezone: "{zone}"}}
"""
    with pytest.raises(SpecError) as info:
        parse_spec(text, source="s.yaml")
    assert "triggers.0.schedule (line 5)" in str(info.value)
    assert needle in str(info.value)


# -- combining, cooldown, limits --------------------------------------------------------------


def test_any_fires_on_one_and_reports_every_trigger_that_fired() -> None:
    d = decide(spec(VOLUME, DRIFT_SHARE), ctx(rows_since_last_training=700, drift=drifted("x1")))
    assert d.fire and d.kind == "data_volume"
    d = decide(
        spec(VOLUME, DRIFT_SHARE),
        ctx(rows_since_last_training=700, drift=drifted("x1", "x2", checked=3)),
    )
    assert d.fire and d.kind == "data_volume"
    assert [a["kind"] for a in d.numbers["also"]] == ["drift"]
    assert "700 new rows" in d.reason and "2 of 3 features drifted" in d.reason


def test_all_needs_every_automatic_trigger() -> None:
    s = spec(VOLUME, DRIFT_SHARE, {"manual": {}}, policy={"combine": "all"})
    d = decide(s, ctx(rows_since_last_training=700, drift=drifted("x1")))
    assert not d.fire
    assert d.reason.startswith("1 of 2 triggers fired and all are required")
    both = decide(s, ctx(rows_since_last_training=700, drift=drifted("x1", "x2")))
    assert both.fire


def test_cooldown_holds_a_firing_trigger_back_and_says_until_when() -> None:
    s = spec(VOLUME, policy={"cooldown": "12h"})
    recent = ctx(rows_since_last_training=700, last_training_at=NOW - timedelta(hours=2))
    d = decide(s, recent)
    assert not d.fire
    assert d.reason.startswith("cooling down: last retrain at 2026-11-25 10:00 UTC")
    assert "next possible at 2026-11-25 22:00 UTC" in d.reason
    assert "would have fired: 700 new rows" in d.reason
    old = ctx(rows_since_last_training=700, last_training_at=NOW - timedelta(hours=13))
    assert decide(s, old).fire


def test_manual_and_bootstrap_are_not_held_back_by_the_policy() -> None:
    s = spec(VOLUME, policy={"cooldown": "12h", "max_retrains": 1})
    busy = {"last_training_at": NOW, "retrains_in_period": 5}
    assert decide(s, ctx(manual_reason="hotfix", **busy)).fire
    assert decide(s, ctx(has_champion=False, **busy)).fire


def test_max_retrains_per_period() -> None:
    s = spec(VOLUME, policy={"max_retrains": 3, "per": "7d"})
    assert decide(s, ctx(rows_since_last_training=700, retrains_in_period=2)).fire
    d = decide(s, ctx(rows_since_last_training=700, retrains_in_period=3))
    assert not d.fire
    assert d.reason.startswith("retrain limit reached: 3 in the last 7 days (max_retrains 3)")
