"""Replaying policies over a history whose concept flips at a known batch.

``y`` follows ``x1`` for the first 2,000 days and ``-x1`` after (backkit): with
``rows:200`` batches the change arrives with batch 10. The static model collapses
there; retraining policies recover, at different costs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from backkit import SPEC, history, workspace

from retrainer.backtest import BacktestSettings, parse_batch_by, parse_policies, run_backtest
from retrainer.backtest.history import split_batches
from retrainer.backtest.replay import Known
from retrainer.errors import SpecError, TrainingError

CHANGE = 10  # the first batch of the new concept


def _run(
    root: Path, policies: str, frame: Any = None, spec: str = SPEC, **kw: Any
) -> dict[str, Any]:
    spec_path, data = workspace(root, frame, spec)
    settings = BacktestSettings(
        spec=spec_path,
        data=data,
        batch_by=parse_batch_by(kw.pop("batch_by", "rows:200")),
        policies=parse_policies(policies),
        workers=1,
        **({"warmup": 3} | kw),
    )
    return run_backtest(settings)


@pytest.fixture(scope="module")
def flip(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _run(tmp_path_factory.mktemp("flip"), "never,every_batch,periodic:5,spec")


def test_the_result_has_the_documented_shape(flip: dict[str, Any]) -> None:
    assert flip["metric"] == "roc_auc"
    assert [b["index"] for b in flip["batches"]] == list(range(20))
    assert {"index", "start", "end", "rows"} <= set(flip["batches"][0])
    assert [b["warmup"] for b in flip["batches"]] == [True] * 3 + [False] * 17
    assert list(flip["policies"]) == ["never", "every_batch", "periodic:5", "spec"]
    for p in flip["policies"].values():
        assert {"mean", "worst", "retrains", "promotions", "train_seconds", "per_batch"} <= set(p)
        assert [r["index"] for r in p["per_batch"]] == list(range(3, 20))  # warm-up unscored
        for r in p["per_batch"]:
            assert {"index", "metric", "model_version", "retrained"} <= set(r)
        scored = [r["metric"] for r in p["per_batch"]]
        assert p["mean"] == pytest.approx(np.mean(scored))
        assert p["worst"] == min(scored)
        assert p["retrains"] == sum(r["retrained"] for r in p["per_batch"])
        assert p["promotions"] == sum(r["promoted"] for r in p["per_batch"])


def test_the_static_model_collapses_when_the_concept_flips(flip: dict[str, Any]) -> None:
    never = flip["policies"]["never"]
    before = [r["metric"] for r in never["per_batch"] if r["index"] < CHANGE]
    after = [r["metric"] for r in never["per_batch"] if r["index"] >= CHANGE]
    assert min(before) > 0.85 and max(after) < 0.2
    assert {r["model_version"] for r in never["per_batch"]} == {1}
    assert never["retrains"] == never["promotions"] == 0 and never["train_seconds"] == 0.0
    # the monitor still watches the static model's inputs (for the report's drift plot)
    assert all(r["drift_share"] is not None for r in never["per_batch"])


def test_every_batch_retrains_and_promotes_after_each_batch(flip: dict[str, Any]) -> None:
    every = flip["policies"]["every_batch"]
    rows = every["per_batch"]
    assert every["retrains"] == every["promotions"] == len(rows)
    # a promotion serves from the next batch: versions 1, 2, 3, ...
    assert [r["model_version"] for r in rows] == list(range(1, len(rows) + 1))
    assert all(r["metric"] > 0.85 for r in rows if r["index"] >= CHANGE + 2)
    assert every["train_seconds"] > 0


def test_periodic_retrains_every_k_batches_and_its_gates_decide(flip: dict[str, Any]) -> None:
    rows = flip["policies"]["periodic:5"]["per_batch"]
    assert [r["index"] for r in rows if r["retrained"]] == [7, 12, 17]
    for r in rows:
        if r["retrained"]:
            assert {"passed", "summary", "champion_metric"} <= set(r["candidate"])
            assert r["promoted"] == r["candidate"]["passed"]


def test_the_spec_recovers_with_far_fewer_retrains(flip: dict[str, Any]) -> None:
    spec, every = flip["policies"]["spec"], flip["policies"]["every_batch"]
    rows = spec["per_batch"]
    fired = [r for r in rows if r["retrained"]]
    assert fired and fired[0]["index"] == CHANGE  # the first batch that shows the drop
    assert fired[0]["trigger"] == "performance" and "below 0.7" in fired[0]["reason"]
    assert all(r["metric"] > 0.85 for r in rows if r["index"] >= CHANGE + 3)
    assert spec["retrains"] <= every["retrains"] / 4
    assert spec["mean"] > flip["policies"]["never"]["mean"] + 0.3
    quiet = next(r for r in rows if r["index"] == CHANGE - 1)
    assert not quiet["retrained"] and "within bounds" in quiet["reason"]
    assert quiet["drift_share"] is not None


def test_late_labels_delay_the_retrain_and_the_recovery(tmp_path: Path) -> None:
    got = _run(tmp_path, "spec", label_delay=2)
    rows = got["policies"]["spec"]["per_batch"]
    first = next(r for r in rows if r["retrained"])
    assert first["index"] == CHANGE + 2  # batch 10's labels are known after batch 12
    assert rows[first["index"] - 3]["metric"] < 0.2  # the champion still serves, badly


def test_a_batch_that_fails_the_contract_is_scored_but_never_trained_on(tmp_path: Path) -> None:
    frame = history()
    frame.loc[12 * 200 + 5, "x1"] = np.inf  # batch 12: a numeric feature holds infinity
    got = _run(tmp_path, "every_batch,spec", frame)
    for name in ("every_batch", "spec"):
        rows = {r["index"]: r for r in got["policies"][name]["per_batch"]}
        assert rows[12]["accepted"] is False and all(
            r["accepted"] for i, r in rows.items() if i != 12
        )
    spec = {r["index"]: r for r in got["policies"]["spec"]["per_batch"]}
    assert spec[12]["reason"].startswith("quarantined: ")
    assert not spec[12]["retrained"]
    every = {r["index"]: r for r in got["policies"]["every_batch"]["per_batch"]}
    assert not every[12]["retrained"]  # nothing new to learn from: not twice on the same data
    assert "no new labelled batch since the last training" in every[12]["reason"]
    assert every[13]["retrained"] and every[13]["model_version"] == every[12]["model_version"]


def test_known_hides_labels_until_the_delay_has_passed() -> None:
    batches = split_batches(history(1_000), parse_batch_by("rows:200"), time_column="day")
    known = Known(tuple(batches[:4]), labelled_through=1, target="y")
    assert known.now == 3
    assert known.frame(1)["y"].notna().all()
    assert known.frame(2)["y"].isna().all() and known.frame(3)["y"].isna().all()
    assert known.frame(2)["x1"].equals(batches[2].frame["x1"])


def test_no_decision_looks_ahead(tmp_path: Path) -> None:
    """Changing every batch after batch k changes nothing recorded up to batch k."""
    k = 9
    base = history()
    future = base.copy()
    later = future.index >= (k + 1) * 200
    future.loc[later, "y"] = 1 - future.loc[later, "y"]  # labels flipped back,
    future.loc[later, "x2"] += 3.0  # a feature shifted,
    future = future[~(later & (future.index % 7 == 0))]  # rows dropped
    for delay in (0, 2):
        a = _run(tmp_path / f"a{delay}", "every_batch,periodic:3,spec", base, label_delay=delay)
        b = _run(tmp_path / f"b{delay}", "every_batch,periodic:3,spec", future, label_delay=delay)
        for name in a["policies"]:
            upto = [r for r in a["policies"][name]["per_batch"] if r["index"] <= k]
            assert upto == [r for r in b["policies"][name]["per_batch"] if r["index"] <= k], name
        # ... while the batches after k did change what happened there
        changed = a["policies"]["spec"]["per_batch"][-1] != b["policies"]["spec"]["per_batch"][-1]
        assert changed


def test_bad_settings_are_refused_before_any_policy_runs(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"--warmup 20: expected at least 1 and fewer than the 20"):
        _run(tmp_path, "never", warmup=20)
    with pytest.raises(SpecError, match=r"--label-delay: expected 0 or more"):
        _run(tmp_path, "never", label_delay=-1)
    with pytest.raises(
        TrainingError,
        match=r"none of the 3 warm-up batches passed the data "
        r"contract \(batch 0: TOO_FEW_ROWS",
    ):
        _run(tmp_path, "never", batch_by="rows:40")  # the contract wants 50 rows a batch
    frame = history().drop(columns=["x2"])
    with pytest.raises(SpecError, match=r"no column\(s\) x2 that the spec's model needs"):
        _run(tmp_path, "never", frame)
