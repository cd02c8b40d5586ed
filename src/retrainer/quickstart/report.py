"""The quickstart's self-contained HTML report: a plot and the tables behind it.

The plot (matplotlib, embedded as a base64 PNG, so the file opens anywhere offline)
shows the metric of each year's batch with retraining (the champion of the day) and
without (version 1 forever), the date the data changed, and each promotion.
"""

from __future__ import annotations

import base64
import io
from importlib import resources
from pathlib import Path

import jinja2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from retrainer.quickstart.stream import QuickstartResult, story
from retrainer.textfile import write_text_atomic

__all__ = ["plot_png", "write_report"]

_TEMPLATE = "templates_html/report.html.j2"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _nan(value: float | None) -> float:
    return float("nan") if value is None else value


def plot_png(result: QuickstartResult) -> bytes:
    """The metric per year, with and without retraining, as PNG bytes."""
    years = [p.year for p in result.points]
    fig, ax = plt.subplots(figsize=(10, 4.2), dpi=110)
    ax.plot(
        years,
        [_nan(p.with_retraining) for p in result.points],
        "o-",
        color="#1f6feb",
        label="with retraining (champion of the day)",
        markersize=4,
    )
    ax.plot(
        years,
        [_nan(p.without_retraining) for p in result.points],
        "s--",
        color="#999999",
        label="without retraining (version 1)",
        markersize=3,
    )
    change_year = int(result.change_date[:4])
    ax.axvline(
        change_year, color="#b42318", linestyle=":", label=f"data changes ({result.change_date})"
    )
    promoted_years = [p.year for p in result.points if "promoted" in p.event and p.champion]
    for year in promoted_years:
        ax.axvline(year + 0.5, color="#1a7f37", alpha=0.25, linewidth=3)
    if promoted_years:
        ax.plot([], [], color="#1a7f37", alpha=0.4, linewidth=3, label="new champion promoted")
    ax.set_xlabel("year of the batch")
    ax.set_ylabel(result.metric)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def write_report(result: QuickstartResult, path: Path) -> Path:
    """Render the report to ``path`` (written atomically) and return it."""
    change_year = int(result.change_date[:4])
    after = [p for p in result.points if p.year > change_year]
    with_vals = [p.with_retraining for p in after if p.with_retraining is not None]
    without_vals = [p.without_retraining for p in after if p.without_retraining is not None]
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    source = resources.files("retrainer.quickstart").joinpath(_TEMPLATE).read_text("utf-8")
    html = env.from_string(source).render(
        r=result,
        fmt=_fmt,
        story=story(result),
        png=base64.b64encode(plot_png(result)).decode(),
        mean_with=sum(with_vals) / max(len(with_vals), 1),
        mean_without=sum(without_vals) / max(len(without_vals), 1),
        promoted=sum(v.promoted for v in result.versions),
    )
    return write_text_atomic(path, html)
