"""The evaluate step in real cycles: every gate in the stored record, failures that leave
the champion serving (a trainer that raises or returns no model, a holdout too small for
the confidence), with the traceback kept in the run."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from conftest import add_batch, synthetic_batch
from retrainer.errors import EvaluationError, TrainingError
from retrainer.orchestrate import CycleResult, run_cycle
from retrainer.registry import CHAMPION
from retrainer.registry.tables import RunStep
from retrainer.workspace import Workspace

MODEL = "toy"
NewWorkspace = Callable[..., Path]

TRAINERS = """
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline


def good(frame, *, features, target, seed):
    numeric = ColumnTransformer([("numeric", "passthrough", ["x1", "x2"])])
    return make_pipeline(numeric, LogisticRegression()).fit(frame[features], frame[target])


def explodes(frame, *, features, target, seed):
    return helper_that_fails(len(frame))


def helper_that_fails(rows):
    raise RuntimeError(f"out of cheese after {rows} rows")


def no_model(frame, *, features, target, seed):
    return {"coef": [1.0, 2.0]}
"""


@pytest.fixture
def trainers(tmp_path: Path) -> Iterator[str]:
    """An importable module of entrypoints; yields its name."""
    folder = tmp_path / "userpkg"
    folder.mkdir()
    name = f"gate_trainers_{tmp_path.name.replace('-', '_')}"
    (folder / f"{name}.py").write_text(TRAINERS)
    sys.path.insert(0, str(folder))
    try:
        yield name
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop(name, None)


def edit(root: Path, old: str, new: str) -> None:
    path = root / "retrainer.yaml"
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def use_entrypoint(root: Path, entrypoint: str) -> None:
    path = root / "retrainer.yaml"
    lines = [
        line
        for line in path.read_text().splitlines()
        if not line.startswith(("  estimator:", "  params:", "  entrypoint:"))
    ]
    at = lines.index("train:") + 1
    lines.insert(at, f"  entrypoint: {entrypoint}")
    path.write_text("\n".join(lines) + "\n")


def cycle(root: Path) -> CycleResult:
    with Workspace.open(root) as ws:
        return run_cycle(ws, actor="t")


def failed_step(ws: Workspace, run_id: str) -> dict[str, Any]:
    return ws.db.transaction(
        lambda s: next(
            r.output
            for r in s.scalars(select(RunStep).where(RunStep.run_id == run_id))
            if r.status == "failed"
        )
    )


def first_champion(root: Path) -> None:
    add_batch(root, "b1", synthetic_batch(1, 400, start_day=0))
    assert cycle(root).promoted


@pytest.mark.parametrize(
    ("entrypoint", "message", "in_traceback"),
    [
        ("explodes", "out of cheese after", "helper_that_fails"),
        ("no_model", "returned dict, expected a fitted model with a predict() method", "no_model"),
    ],
)
def test_a_bad_trainer_fails_the_run_with_its_traceback_and_keeps_the_champion(
    make_workspace: NewWorkspace, trainers: str, entrypoint: str, message: str, in_traceback: str
) -> None:
    root = make_workspace()
    use_entrypoint(root, f"{trainers}:good")
    first_champion(root)
    use_entrypoint(root, f"{trainers}:{entrypoint}")
    add_batch(root, "b2", synthetic_batch(2, 700, start_day=1, flipped=True))

    with pytest.raises(TrainingError, match=re.escape(message)):
        cycle(root)

    with Workspace.open(root) as ws:
        [run] = ws.journal.runs(MODEL, limit=1)
        assert (run.status, run.outcome) == ("failed", "failed at step train")
        assert run.error is not None and message in run.error
        output = failed_step(ws, run.id)
        assert output["error"] == run.error
        assert "Traceback (most recent call last)" in output["traceback"]
        assert in_traceback in output["traceback"] and "TrainingError" in output["traceback"]
        assert ws.registry.get(MODEL, 2).status == "FAILED"
        assert ws.registry.get_alias(MODEL, CHAMPION) == 1


def test_a_holdout_too_small_for_the_confidence_fails_the_candidate_not_the_champion(
    make_workspace: NewWorkspace,
) -> None:
    root = make_workspace()
    first_champion(root)
    edit(root, "  bootstrap_resamples: 200", "  bootstrap_resamples: 1000\n  confidence: 0.99")
    add_batch(root, "b2", synthetic_batch(2, 700, start_day=1, flipped=True))

    with pytest.raises(EvaluationError, match="needs at least 200 rows of each class"):
        cycle(root)

    with Workspace.open(root) as ws:
        [run] = ws.journal.runs(MODEL, limit=1)
        assert (run.status, run.outcome) == ("failed", "failed at step evaluate")
        assert "EvaluationError" in failed_step(ws, run.id)["traceback"]
        assert ws.registry.get(MODEL, 2).status == "FAILED"  # never left PENDING
        assert ws.registry.get_alias(MODEL, CHAMPION) == 1


GATES = """  slices: {columns: [color, x2], min_size: 40, margin: 0.05}
  fairness: {sensitive: [color], demographic_parity_max: 0.5, equalized_odds_max: 0.5}
  robustness: {noise_sd: 0.1, missing_share: 0, swap_share: 0.05, max_drop: 0.1}
  servability: {latency_ms: 1.0e+9, sample_rows: 50}  # no timing assumption
  secondary: {accuracy: {min: 0.6, max_drop: 0.1}}
"""


def test_every_gate_is_in_the_stored_decision_record(make_workspace: NewWorkspace) -> None:
    root = make_workspace()
    edit(root, "  bootstrap_resamples: 200\n", "  bootstrap_resamples: 200\n" + GATES)
    first_champion(root)
    add_batch(root, "b2", synthetic_batch(2, 700, start_day=1))

    result = cycle(root)

    assert result.version == 2
    with Workspace.open(root) as ws:
        decision = ws.registry.get(MODEL, 2).decision
    statuses = {g["name"]: g["status"] for g in decision["gates"]}
    assert list(statuses) == [
        "scores",
        "vs_champion",
        "secondary:accuracy",
        "slices",
        "fairness",
        "robustness",
        "servability",
    ]
    assert all(s in ("pass", "fail") for s in statuses.values()), decision["summary"]
    assert statuses["servability"] == "pass", decision["summary"]
    assert decision["passed"] is result.promoted
    gates = {g["name"]: g for g in decision["gates"]}
    assert {r["column"] for r in gates["slices"]["details"]} == {"color", "x2"}
    assert {r["group"] for r in gates["fairness"]["details"]} == {"red", "green", "blue"}
    assert "mcnemar" in gates["vs_champion"]["numbers"]
    assert set(decision["extra"]["curves"]["roc"]) == {"candidate", "champion"}
    world = decision["extra"]["champion_holdouts"]
    assert world["verdict"] in ("stable", "world_changed") and world["original_rows"] > 0
