"""Drift on the real rainfall data, with the quickstart's own spec.

The relationship (and several feature distributions) change at row 12,000
(1981-11-09). Drift must be detected within the first two yearly batches after that
row, and the drift trigger must not have retrained anything on the 5,000 rows before it.
The false-alarm count is asserted (zero) and printed with ``pytest -s``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest

from retrainer.orchestrate.monitoring import monitoring_history
from retrainer.workspace import Workspace

from .conftest import QuickstartRun

FIRST_DAY = date(1949, 1, 1)
CHANGE_ROW = 12_000


def year_of_row(row: int) -> int:
    return (FIRST_DAY + timedelta(days=row)).year


@pytest.fixture(scope="module")
def history(quickstart_run: QuickstartRun) -> Iterator[dict[int, dict[str, Any]]]:
    ws = Workspace.open(quickstart_run.workspace)
    try:
        rows = monitoring_history(ws, limit=1000)
        share = next(t.drift.share for t in ws.spec.triggers if t.drift is not None)
        assert share is not None
        yield {int(r["key"][5:9]): r | {"threshold": share} for r in rows}
    finally:
        ws.close()


def drift_fired(row: dict[str, Any]) -> bool:
    """The drift trigger's condition held on this batch (whichever trigger was listed first)."""
    return row["drift_share"] is not None and row["drift_share"] >= row["threshold"]


def test_drift_is_detected_within_two_batches_after_the_change(
    history: dict[int, dict[str, Any]],
) -> None:
    first_after = year_of_row(CHANGE_ROW) + 1  # the first batch wholly after the change
    detected = [y for y in (first_after, first_after + 1) if drift_fired(history[y])]
    assert detected, {y: history[y]["drift_share"] for y in (first_after, first_after + 1)}
    year = detected[0]
    assert history[year]["decision"]["fire"] is True
    assert len(history[year]["drifted"]) >= 4, history[year]["drifted"]


def test_no_drift_retrain_in_the_5000_rows_before_the_change(
    history: dict[int, dict[str, Any]],
) -> None:
    years = range(year_of_row(CHANGE_ROW - 5_000), year_of_row(CHANGE_ROW - 1) + 1)
    scored = [y for y in years if history[y]["drift_share"] is not None]
    false_alarms = [y for y in scored if drift_fired(history[y])]
    drift_retrains = [y for y in years if history[y]["decision"]["kind"] == "drift"]
    print(
        f"\nrainfall drift: {len(false_alarms)} false alarms in {len(scored)} batches "
        f"({years[0]}..{years[-1]}, rows {CHANGE_ROW - 5_000}..{CHANGE_ROW - 1}); "
        f"max drift share {max(history[y]['drift_share'] for y in scored):.0%}"
    )
    assert len(scored) >= 13
    assert false_alarms == [] and drift_retrains == []
