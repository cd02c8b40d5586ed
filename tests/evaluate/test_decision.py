"""The decision record: passed only when every gate passed, and it explains itself."""

from __future__ import annotations

import dataclasses
import json

import pytest

from retrainer.evaluate import DecisionRecord, GateResult


def record(*gates: GateResult) -> DecisionRecord:
    return DecisionRecord("roc_auc", 0.81, 0.79, 3, 250, gates)


OK = GateResult("scores", True, "roc_auc on the holdout is 0.8100", {"candidate": 0.81})
FLOOR = GateResult("min_metric", False, "roc_auc 0.8100 is not at least the floor 0.85")
CHAMP = GateResult("vs_champion", False, "may be worse than the champion by more than 0.005")


def test_passed_only_when_every_gate_passed() -> None:
    assert record(OK).passed
    assert not record(OK, FLOOR).passed
    assert not record(FLOOR, OK, CHAMP).passed


def test_summary_of_a_pass_lists_every_reason() -> None:
    passing = GateResult("vs_champion", True, "no champion yet")
    assert record(OK, passing).summary() == f"passed: {OK.reason}; {passing.reason}"


def test_summary_of_a_failure_lists_only_the_failed_gates_in_order() -> None:
    assert record(OK, FLOOR, CHAMP).summary() == f"failed: {FLOOR.reason}; {CHAMP.reason}"


def test_to_dict_is_json_ready_and_complete() -> None:
    rec = record(OK, FLOOR)
    data = json.loads(json.dumps(rec.to_dict()))
    assert data["passed"] is False
    assert data["summary"] == rec.summary()
    assert data["metric"] == "roc_auc" and data["holdout_rows"] == 250
    assert data["champion_version"] == 3 and data["champion_metric"] == 0.79
    assert data["gates"] == [
        {"name": "scores", "passed": True, "reason": OK.reason, "numbers": {"candidate": 0.81}},
        {"name": "min_metric", "passed": False, "reason": FLOOR.reason, "numbers": {}},
    ]


def test_records_and_gates_are_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        OK.passed = False  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        record(OK).gates = ()  # type: ignore[misc]
