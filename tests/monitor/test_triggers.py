"""Triggers: which one fires, in what order, and the plain reason with its numbers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from retrainer.monitor import TriggerContext, TriggerDecision, decide
from retrainer.spec import PipelineSpec


def spec(
    *triggers: dict[str, Any], task: str = "classification", metric: str = "roc_auc"
) -> PipelineSpec:
    return PipelineSpec.model_validate(
        {
            "model": {
                "name": "toy",
                "task": task,
                "target": "y",
                "features": {"numeric": ["x"]},
            },
            "data": {"source": "data", "holdout": {"by": "random"}},
            "triggers": list(triggers),
            "train": {"estimator": "sklearn.linear_model.LogisticRegression"},
            "evaluate": {"metric": metric},
        }
    )


def ctx(**kw: Any) -> TriggerContext:
    base: dict[str, Any] = {
        "has_champion": True,
        "accepted_rows_total": 5000,
        "rows_since_last_training": 0,
    }
    return TriggerContext(**(base | kw))


VOLUME = {"data_volume": {"rows": 600}}
AUC_BELOW = {"performance": {"below": 0.7, "min_rows": 50}}


# -- before the list: no data, no champion, manual --------------------------------------


def test_no_accepted_data_never_fires_even_when_asked() -> None:
    d = decide(spec(VOLUME), ctx(has_champion=False, accepted_rows_total=0, manual_reason="go"))
    assert d == TriggerDecision(False, "none", "no accepted data yet")


def test_no_champion_always_trains_whatever_the_list_says() -> None:
    d = decide(spec(), ctx(has_champion=False, accepted_rows_total=1234))
    assert d.fire and d.kind == "bootstrap"
    assert d.reason == "no champion yet: training version 1 on 1234 accepted rows"
    assert d.numbers == {"rows": 1234}


def test_a_manual_reason_fires_before_the_list_and_without_a_manual_entry() -> None:
    d = decide(spec(VOLUME), ctx(rows_since_last_training=10_000, manual_reason="new labels"))
    assert d.fire and d.kind == "manual"
    assert d.reason == "manual retrain: new labels"


# -- data_volume ------------------------------------------------------------------------


@pytest.mark.parametrize(("rows", "fires"), [(599, False), (600, True), (601, True)])
def test_data_volume_fires_at_the_threshold(rows: int, fires: bool) -> None:
    d = decide(spec(VOLUME), ctx(rows_since_last_training=rows))
    assert d.fire is fires
    if fires:
        assert d.kind == "data_volume"
        assert d.reason == f"{rows} new rows since the last training (threshold 600)"
        assert d.numbers == {"rows": rows, "threshold": 600}
    else:
        assert d.kind == "none"
        assert d.reason == "no trigger fired: 599/600 new rows"


# -- performance --------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "fires"), [(0.69, True), (0.7, False), (0.75, False)])
def test_performance_below_fires_strictly_below(value: float, fires: bool) -> None:
    d = decide(spec(AUC_BELOW), ctx(realised={"roc_auc": (value, 80)}))
    assert d.fire is fires
    if fires:
        assert d.kind == "performance"
        assert d.reason == "champion roc_auc 0.690 on the newest batch (80 rows) is below 0.7"
        assert d.numbers == {"metric": "roc_auc", "value": 0.69, "rows": 80, "threshold": 0.7}
    else:
        assert not d.numbers
        assert f"champion roc_auc {value:.3f} (80 rows) within bounds" in d.reason
        assert "below 0.7" in d.reason


@pytest.mark.parametrize(("value", "fires"), [(2.51, True), (2.5, False), (1.0, False)])
def test_performance_above_fires_strictly_above_for_a_lower_is_better_metric(
    value: float, fires: bool
) -> None:
    s = spec({"performance": {"above": 2.5, "min_rows": 10}}, task="regression", metric="rmse")
    d = decide(s, ctx(realised={"rmse": (value, 40)}))
    assert d.fire is fires
    if fires:
        assert d.reason == f"champion rmse {value:.3f} on the newest batch (40 rows) is above 2.5"
        assert d.numbers["threshold"] == 2.5
    else:
        assert "within bounds" in d.reason and "above 2.5" in d.reason


def test_both_bounds_given_either_crossing_fires() -> None:
    s = spec({"performance": {"below": 0.6, "above": 0.95, "min_rows": 1}})
    for value, word, bound in ((0.55, "below", 0.6), (0.97, "above", 0.95)):
        d = decide(s, ctx(realised={"roc_auc": (value, 5)}))
        assert d.fire and d.reason.endswith(f"is {word} {bound}")
    assert not decide(s, ctx(realised={"roc_auc": (0.8, 5)})).fire


@pytest.mark.parametrize("rows", [0, 49])
def test_too_few_labelled_rows_do_not_fire_and_say_so(rows: int) -> None:
    d = decide(spec(AUC_BELOW), ctx(realised={"roc_auc": (0.1, rows)}))
    assert not d.fire and d.kind == "none"
    assert d.reason == (
        f"no trigger fired: roc_auc: not enough labelled rows to judge ({rows} of 50)"
    )


def test_min_rows_is_inclusive() -> None:
    assert decide(spec(AUC_BELOW), ctx(realised={"roc_auc": (0.1, 50)})).fire


def test_no_realised_value_does_not_fire() -> None:
    d = decide(spec(AUC_BELOW), ctx(realised={"log_loss": (0.1, 500)}))
    assert not d.fire
    assert "roc_auc: not enough labelled rows to judge" in d.reason


def test_the_trigger_watches_its_own_metric_when_it_names_one() -> None:
    s = spec({"performance": {"metric": "accuracy", "below": 0.8, "min_rows": 10}})
    realised = {"roc_auc": (0.5, 100), "accuracy": (0.7, 100)}
    d = decide(s, ctx(realised=realised))
    assert d.fire and d.numbers["metric"] == "accuracy" and d.numbers["value"] == 0.7


# -- the list --------------------------------------------------------------------------


def test_the_first_trigger_in_the_list_that_fires_wins() -> None:
    both = ctx(rows_since_last_training=1000, realised={"roc_auc": (0.5, 100)})
    assert decide(spec(AUC_BELOW, VOLUME), both).kind == "performance"
    assert decide(spec(VOLUME, AUC_BELOW), both).kind == "data_volume"


def test_when_nothing_fires_every_trigger_says_why_in_order() -> None:
    s = spec(AUC_BELOW, VOLUME, {"manual": {}})
    d = decide(s, ctx(rows_since_last_training=12, realised={"roc_auc": (0.81234, 300)}))
    assert d.reason == (
        "no trigger fired: champion roc_auc 0.812 (300 rows) within bounds (fires below 0.7); "
        "12/600 new rows"
    )


def test_an_empty_list_says_none_is_configured() -> None:
    d = decide(spec(), ctx(rows_since_last_training=10**6))
    assert d == TriggerDecision(False, "none", "no trigger fired (none configured)")


def test_a_decision_is_json_ready() -> None:
    d = decide(spec(AUC_BELOW), ctx(realised={"roc_auc": (0.5, 100)}))
    assert json.loads(json.dumps(d.to_dict())) == {
        "fire": True,
        "kind": "performance",
        "reason": d.reason,
        "numbers": {"metric": "roc_auc", "value": 0.5, "rows": 100, "threshold": 0.7},
    }
