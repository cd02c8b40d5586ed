"""The backtest's HTML report, from hand-built results (no replay: fast)."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest

from retrainer.backtest.report_html import render_html, write_html
from retrainer.errors import DataSourceError

_PNG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def _batches(n: int, warmup: int, *, dated: bool = True) -> list[dict[str, Any]]:
    return [
        {
            "index": i,
            "start": f"2020-{i + 1:02d}-01T00:00:00" if dated else None,
            "end": f"2020-{i + 1:02d}-28T00:00:00" if dated else None,
            "rows": 100,
            "labelled": 100,
            "warmup": i < warmup,
        }
        for i in range(n)
    ]


def _record(index: int, metric: float | None, version: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "index": index,
        "metric": metric,
        "labelled": 100,
        "model_version": version,
        "accepted": True,
        "retrained": False,
        "promoted": False,
        **extra,
    }


def _policy(
    description: str,
    records: list[dict[str, Any]],
    *,
    higher_is_better: bool = True,
    train_seconds: float = 0.0,
) -> dict[str, Any]:
    scored = [r["metric"] for r in records if r["metric"] is not None]
    worst = (min(scored) if higher_is_better else max(scored)) if scored else None
    return {
        "description": description,
        "mean": sum(scored) / len(scored) if scored else None,
        "worst": worst,
        "scored_batches": len(scored),
        "retrains": sum(r["retrained"] for r in records),
        "promotions": sum(r["promoted"] for r in records),
        "train_seconds": train_seconds,
        "warmup_train_seconds": 0.25,
        "wall_seconds": 1.5,
        "per_batch": records,
    }


def _result(
    policies: dict[str, dict[str, Any]],
    *,
    metric: str = "roc_auc",
    higher_is_better: bool = True,
    dated: bool = True,
) -> dict[str, Any]:
    return {
        "metric": metric,
        "higher_is_better": higher_is_better,
        "settings": {
            "spec": "retrainer.yaml",
            "data": "history.csv",
            "batch_by": "month" if dated else "rows:100",
            "policies": list(policies),
            "time_column": "date" if dated else None,
            "label_delay": 0,
            "warmup": 2,
            "min_labels": 20,
        },
        "batches": _batches(6, 2, dated=dated),
        "policies": policies,
        "wall_seconds": 4.25,
    }


def _typical() -> dict[str, Any]:
    never = _policy(
        "the warm-up model serves every batch",
        [
            _record(i, m, drift_share=s)
            for i, m, s in [(2, 0.81, 0.1), (3, 0.74, 0.4), (4, 0.62, 0.7), (5, 0.6, 0.8)]
        ],
    )
    spec = _policy(
        "triggers, retrain policy and gates of the spec",
        [
            _record(2, 0.81, drift_share=0.1, reason="no trigger fired"),
            _record(
                3,
                0.74,
                drift_share=0.5,
                trigger="drift",
                reason="drift: <script>alert(1)</script> 4 of 8",
                retrained=True,
                candidate={
                    "version": 2,
                    "holdout_metric": 0.7012,
                    "champion_metric": 0.7345,
                    "passed": False,
                    "summary": "failed: worse than the champion",
                },
            ),
            _record(
                4,
                0.66,
                drift_share=None,
                trigger="performance",
                reason="champion below 0.7",
                retrained=True,
                promoted=True,
                candidate={
                    "version": 3,
                    "holdout_metric": 0.8123,
                    "champion_metric": 0.6512,
                    "passed": True,
                    "summary": "passed: better",
                },
            ),
            _record(5, 0.8, version=3, drift_share=0.2, trigger="schedule", error="disk on fire"),
        ],
        train_seconds=3.5,
    )
    every = _policy(
        "retrain after every batch and promote without gates",
        [
            _record(
                i,
                m,
                version=i - 1,
                trigger="every_batch",
                reason="retrain after every batch",
                retrained=True,
                promoted=True,
                candidate={"version": i, "holdout_metric": None},
            )
            for i, m in [(2, 0.81), (3, 0.77), (4, 0.79), (5, 0.78)]
        ],
        train_seconds=12.0,
    )
    return _result({"never": never, "spec": spec, "every_batch": every})


def _row(html: str, policy: str) -> str:
    match = re.search(rf'<tr data-policy="{policy}"[^>]*>(.*?)</tr>', html, re.S)
    assert match, f"no summary row for {policy}"
    return match.group(0)


def _cells(row: str) -> list[str]:
    return [
        re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    ]


def _assert_figures(html: str) -> None:
    images = _PNG.findall(html)
    assert len(images) == 3
    assert all(base64.b64decode(src).startswith(b"\x89PNG") for src in images)


@pytest.fixture(scope="module")
def typical() -> tuple[dict[str, Any], str]:
    result = _typical()
    return result, render_html(result)


def test_three_figures_and_the_settings(typical: tuple[dict[str, Any], str]) -> None:
    _, html = typical
    _assert_figures(html)
    assert "Backtest: roc_auc of 3 retraining policies" in html
    assert "<tr><th>batch_by</th><td>month</td></tr>" in html
    assert "<tr><th>policies</th><td>never, spec, every_batch</td></tr>" in html
    assert "6 (2 warm-up" in html
    assert "2020-01-01T00:00:00 to 2020-06-28T00:00:00" in html
    assert "4.2 s" in html  # wall_seconds 4.25, one decimal


def test_summary_rows_carry_each_policys_numbers(typical: tuple[dict[str, Any], str]) -> None:
    result, html = typical
    for name, p in result["policies"].items():
        cells = _cells(_row(html, name))
        assert cells[1] == f"{p['mean']:.4f}"
        assert cells[2] == f"{p['worst']:.4f}"
        assert cells[3] == f"{p['scored_batches']} of {len(p['per_batch'])}"
        assert cells[4:6] == [str(p["retrains"]), str(p["promotions"])]
        assert cells[6].startswith(f"{p['train_seconds']:.1f}")
        assert cells[8] == p["description"]
    assert _cells(_row(html, "spec"))[4:6] == ["2", "1"]


def test_best_mean_is_highlighted(typical: tuple[dict[str, Any], str]) -> None:
    _, html = typical
    assert 'class="best"' in _row(html, "every_batch")
    assert html.count('class="best"') == 1
    assert "(best mean)" in _row(html, "every_batch")


def test_user_text_is_escaped(typical: tuple[dict[str, Any], str]) -> None:
    _, html = typical
    assert "<script>" not in html
    assert "drift: &lt;script&gt;alert(1)&lt;/script&gt; 4 of 8" in html


def test_details_list_the_batches_where_a_policy_acted(
    typical: tuple[dict[str, Any], str],
) -> None:
    _, html = typical
    details = dict(re.findall(r"<details[^>]*><summary><b>(.*?)</b>(.*?)</details>", html, re.S))
    assert set(details) == {"never", "spec", "every_batch"}
    assert "did not retrain" in details["never"]
    spec = details["spec"]
    assert "2 retrains" in spec and "3 batches with a trigger or a retrain" in spec
    for text in ("0.7012", "0.7345", "failed: worse than the champion", "0.8123", "passed: better"):
        assert text in spec
    assert "error:</span> disk on fire" in spec
    assert details["every_batch"].count("no gates") == 4


def test_write_html_writes_the_same_page(
    typical: tuple[dict[str, Any], str], tmp_path: Path
) -> None:
    result, html = typical
    path = write_html(result, tmp_path / "backtest.html")
    assert path == tmp_path / "backtest.html"
    assert path.read_text(encoding="utf-8") == html  # rendering is deterministic
    assert [p.name for p in tmp_path.iterdir()] == ["backtest.html"]  # no temporary left
    with pytest.raises(DataSourceError, match="no folder"):
        write_html(result, tmp_path / "missing" / "backtest.html")


def test_all_metrics_null_renders() -> None:
    records = [_record(i, None) for i in range(2, 6)]
    records[1] |= {"trigger": "every_batch", "retrained": True, "promoted": True}
    html = render_html(_result({"every_batch": _policy("every batch", records)}))
    _assert_figures(html)
    cells = _cells(_row(html, "every_batch"))
    assert cells[1:4] == ["-", "-", "0 of 4"]
    assert 'class="best"' not in html
    assert "No policy in this backtest measured drift" in html


def test_no_dates_uses_batch_indexes() -> None:
    never = _policy("never", [_record(i, 0.7 + i / 100, drift_share=0.1) for i in range(2, 6)])
    html = render_html(_result({"never": never}, dated=False))
    _assert_figures(html)
    assert "<th>period</th>" not in html
    assert "<tr><th>time_column</th><td>-</td></tr>" in html


def test_lower_is_better_highlights_the_lowest_mean() -> None:
    records = {"a": [3.0, 5.0, 4.0, 4.0], "b": [2.0, 2.5, 6.0, 1.5], "c": [9.0, 9.0, 9.0, 9.0]}
    policies = {
        name: _policy(name, [_record(i + 2, m) for i, m in enumerate(ms)], higher_is_better=False)
        for name, ms in records.items()
    }
    html = render_html(_result(policies, metric="rmse", higher_is_better=False))
    _assert_figures(html)
    assert "lower rmse is better" in html and "worst is the highest" in html
    assert 'class="best"' in _row(html, "b")
    assert html.count('class="best"') == 1
    assert _cells(_row(html, "b"))[1:3] == ["3.0000", "6.0000"]
