"""The decision record: passed only when no gate blocks, and it explains itself."""

from __future__ import annotations

import dataclasses
import json

import pytest

from retrainer.evaluate import DecisionRecord, GateResult


def record(*gates: GateResult) -> DecisionRecord:
    return DecisionRecord("roc_auc", 0.81, 0.79, 3, 250, gates)


OK = GateResult("scores", "pass", "roc_auc on the holdout is 0.8100", value=0.81)
FLOOR = GateResult(
    "min_metric",
    "fail",
    "roc_auc 0.8100 is not at least the floor 0.85",
    value=0.81,
    threshold=0.85,
)
CHAMP = GateResult("vs_champion", "fail", "may be worse than the champion by more than 0.005")
UNDEFINED = GateResult("scores", "not_evaluable", "roc_auc could not be computed (one class)")
FIRST = GateResult("vs_champion", "skipped", "no champion yet")


def test_passed_only_when_no_gate_blocks() -> None:
    assert record(OK).passed
    assert record(OK, FIRST).passed
    assert not record(OK, FLOOR).passed
    assert not record(FLOOR, OK, CHAMP).passed


def test_not_evaluable_blocks_never_a_silent_pass() -> None:
    assert not UNDEFINED.passed
    assert not record(UNDEFINED, FIRST).passed
    assert record(UNDEFINED).summary() == f"failed: {UNDEFINED.reason}"


def test_unknown_status_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"gate 'x'.*'maybe'"):
        GateResult("x", "maybe", "?")  # type: ignore[arg-type]


def test_summary_of_a_pass_lists_the_passing_reasons() -> None:
    passing = GateResult("vs_champion", "pass", "better than the champion")
    assert record(OK, passing, FIRST).summary() == f"passed: {OK.reason}; {passing.reason}"


def test_summary_of_a_failure_lists_only_the_blocking_gates_in_order() -> None:
    assert record(OK, FLOOR, CHAMP).summary() == f"failed: {FLOOR.reason}; {CHAMP.reason}"


def test_to_dict_is_json_ready_and_complete() -> None:
    rec = record(OK, FLOOR)
    data = json.loads(json.dumps(rec.to_dict()))
    assert data["passed"] is False
    assert data["summary"] == rec.summary()
    assert data["metric"] == "roc_auc" and data["holdout_rows"] == 250
    assert data["champion_version"] == 3 and data["champion_metric"] == 0.79
    assert data["gates"][1] == {
        "name": "min_metric",
        "status": "fail",
        "passed": False,
        "reason": FLOOR.reason,
        "value": 0.81,
        "threshold": 0.85,
        "ci_low": None,
        "ci_high": None,
        "numbers": {},
        "details": [],
    }
    assert data["gates"][0]["status"] == "pass" and data["gates"][0]["passed"] is True


def test_records_and_gates_are_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        OK.status = "fail"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        record(OK).gates = ()  # type: ignore[misc]


def test_the_stored_dict_is_strict_json_even_with_undefined_numbers() -> None:
    import json
    import math

    from retrainer.evaluate import DecisionRecord, GateResult

    gate = GateResult(
        "slices",
        "not_evaluable",
        "metric undefined",
        value=math.nan,
        numbers={"ci": [math.inf, 0.5]},
        details=({"candidate": math.nan, "rows": 3},),
    )
    rec = DecisionRecord("roc_auc", math.nan, None, None, 10, (gate,), extra={"x": (1.0, math.nan)})
    d = rec.to_dict()
    json.dumps(d, allow_nan=False)  # PostgreSQL's JSON refuses NaN
    assert d["candidate_metric"] is None
    assert d["gates"][0]["value"] is None and d["gates"][0]["numbers"] == {"ci": [None, 0.5]}
    assert d["gates"][0]["details"] == [{"candidate": None, "rows": 3}]
    assert d["extra"] == {"x": [1.0, None]}
