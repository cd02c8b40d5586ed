"""The HTML report of ``retrainer backtest``: one self-contained file, from the result.

The input is the JSON-ready dict :func:`~retrainer.backtest.run_backtest` returns (or
the same dict read back from its JSON file); every number shown comes from it. The page
has the settings, a summary table per policy (the best mean highlighted, by the
metric's direction), three matplotlib figures embedded as base64 PNGs (so the file opens
anywhere offline) and, per policy, the batches where a trigger fired:

1. the serving champion's metric per batch, one line per policy, the warm-up shaded,
   hollow markers where a policy retrained and filled ones where it promoted (the new
   model serves from the next batch);
2. drift signals of the policies that watch the monitor (``spec``, ``spec:PATH``,
   ``never``): the share of features drifted per batch, and a marker per trigger fired,
   its shape naming the trigger's kind;
3. cost: retrains and promotions, and training CPU seconds, per policy.

The x axis is the batch start date when every batch has one, else the batch index.
Policy names, reasons and summaries are data: the template escapes them and matplotlib
shows them as given. Rendering the same result twice gives the same text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
import matplotlib.dates as mdates
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from retrainer.errors import DataSourceError
from retrainer.figures import plain, png_base64
from retrainer.textfile import write_text_atomic

__all__ = ["render_html", "write_html"]

_TEMPLATE = "backtest.html.j2"
_KIND_MARKERS = ("^", "s", "D", "v", "P", "X", "*", "h")
_GREY = "#555555"

Result = Mapping[str, Any]


@dataclass(frozen=True)
class _XAxis:
    """Where each batch sits on the x axis: matplotlib date numbers of the batch starts
    when every batch has one, else the batch indexes; and the warm-up's span."""

    xs: dict[int, float]
    dated: bool
    warmup: tuple[float, float] | None

    def decorate(self, ax: Axes) -> None:
        """Shade the warm-up, label the axis and, for dates, format the ticks as dates."""
        if self.warmup is not None:
            ax.axvspan(*self.warmup, color="#000000", alpha=0.07, lw=0, label="warm-up")
        if self.dated:
            ax.xaxis_date()
        ax.set_xlabel("batch start" if self.dated else "batch index")


def _color(i: int) -> str:
    """The i-th colour of matplotlib's default cycle: one colour per policy, in every
    figure."""
    return f"C{i % 10}"


def _num(value: float | None, fmt: str = ".4f") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, fmt)


def _nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _date(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _day_number(d: datetime) -> float:
    """``d`` as matplotlib's date number (days since its epoch; naive times as UTC)."""
    return float(mdates.date2num(d))  # type: ignore[no-untyped-call]  # unannotated module


def _x_axis(batches: Sequence[Mapping[str, Any]]) -> _XAxis:
    starts = {int(b["index"]): _date(b.get("start")) for b in batches}
    dated = bool(starts) and all(d is not None for d in starts.values())
    xs = {i: _day_number(d) if dated and d is not None else float(i) for i, d in starts.items()}
    warm = [int(b["index"]) for b in batches if b.get("warmup")]
    after = [
        int(b["index"]) for b in batches if not b.get("warmup") and warm and b["index"] > warm[-1]
    ]
    span: tuple[float, float] | None = None
    if warm and not dated:
        span = xs[warm[0]] - 0.5, (xs[after[0]] - 0.5) if after else (xs[warm[-1]] + 0.5)
    elif warm:
        end = _date(batches[-1].get("end"))
        last = _day_number(end) if end is not None else xs[warm[-1]]
        span = xs[warm[0]], (xs[after[0]] if after else last)
    return _XAxis(xs, dated, span)


def _empty(ax: Axes, text: str) -> None:
    """Say why the plot has no data (its y ticks would mean nothing)."""
    ax.set_yticks([])
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color=_GREY)


def _records(policy: Mapping[str, Any], axis: _XAxis) -> list[Mapping[str, Any]]:
    """The policy's batches that are on the axis."""
    return [r for r in policy.get("per_batch", []) if int(r["index"]) in axis.xs]


def _points(
    ax: Axes,
    records: Sequence[Mapping[str, Any]],
    axis: _XAxis,
    key: str,
    marker: str,
    **style: Any,
) -> None:
    """Markers for ``records`` at their ``key`` value; where it is missing, on the x
    axis (at the bottom of the plot)."""
    xs = axis.xs
    at = [r for r in records if r.get(key) is not None]
    off = [r for r in records if r.get(key) is None]
    if at:
        ax.plot([xs[r["index"]] for r in at], [r[key] for r in at], marker, ls="none", **style)
    if off:
        ax.plot(
            [xs[r["index"]] for r in off],
            [0.02] * len(off),
            marker,
            ls="none",
            transform=ax.get_xaxis_transform(),
            clip_on=False,
            **style,
        )


def _finish(fig: Figure, ax: Axes, axis: _XAxis, ylabel: str) -> str:
    axis.decorate(ax)
    ax.set_ylabel(plain(ylabel))
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return png_base64(fig)


def _metric_plot(r: Result, axis: _XAxis) -> str:
    fig = Figure(figsize=(10, 4.2), dpi=90)
    ax = fig.subplots()
    scored = False
    for i, (name, p) in enumerate(r["policies"].items()):
        rows = _records(p, axis)
        values = [_nan(x["metric"]) for x in rows]
        color = _color(i)
        if any(not math.isnan(v) for v in values):
            scored = True
            ax.plot([axis.xs[x["index"]] for x in rows], values, ".-", color=color, ms=3, lw=1.3)
        ax.plot([], [], "-", color=color, label=plain(name))
        retrained = [x for x in rows if x.get("retrained") and not x.get("promoted")]
        _points(ax, retrained, axis, "metric", "o", mfc="white", mec=color, mew=1.4, ms=7)
        promoted = [x for x in rows if x.get("promoted")]
        _points(ax, promoted, axis, "metric", "o", color=color, ms=7)
    ax.plot([], [], "o", mfc="white", mec=_GREY, label="retrained, kept the champion")
    ax.plot([], [], "o", color=_GREY, label="promoted (serves from the next batch)")
    if not scored:
        _empty(ax, "no batch was scored: too few labelled rows in every batch")
    direction = "higher" if r["higher_is_better"] else "lower"
    return _finish(fig, ax, axis, f"{r['metric']} ({direction} is better)")


def _watching(r: Result) -> list[tuple[int, str, Mapping[str, Any]]]:
    """The policies that measured drift (their index keeps their colour)."""
    return [
        (i, name, p)
        for i, (name, p) in enumerate(r["policies"].items())
        if any(x.get("drift_share") is not None for x in p.get("per_batch", []))
    ]


def _drift_plot(r: Result, axis: _XAxis) -> str:
    fig = Figure(figsize=(10, 3.4), dpi=90)
    ax = fig.subplots()
    watching = _watching(r)
    kinds = sorted(
        {str(x["trigger"]) for _, _, p in watching for x in _records(p, axis) if x.get("trigger")}
    )
    marker = {k: _KIND_MARKERS[j % len(_KIND_MARKERS)] for j, k in enumerate(kinds)}
    for i, name, p in watching:
        rows = _records(p, axis)
        share = [_nan(x.get("drift_share")) for x in rows]
        color = _color(i)
        ax.plot([axis.xs[x["index"]] for x in rows], share, ".-", color=color, ms=3, lw=1.2)
        ax.plot([], [], "-", color=color, label=plain(name))
        for kind in kinds:
            fired = [x for x in rows if x.get("trigger") == kind]
            _points(ax, fired, axis, "drift_share", marker[kind], color=color, ms=8, alpha=0.85)
    for kind in kinds:
        ax.plot([], [], marker[kind], color=_GREY, ls="none", label=plain(f"trigger: {kind}"))
    if watching:
        ax.set_ylim(-0.03, 1.05)
    else:
        _empty(ax, "no policy here watches drift (spec, spec:PATH and never do)")
    return _finish(fig, ax, axis, "share of features drifted")


def _cost_plot(r: Result) -> str:
    names = list(r["policies"])
    p = [r["policies"][n] for n in names]
    colors = [_color(i) for i in range(len(names))]
    x = np.arange(len(names))
    labels = [plain(n) for n in names]
    fig = Figure(figsize=(10, 3.4), dpi=90)
    left, right = fig.subplots(1, 2)
    bars = left.bar(x - 0.2, [q["retrains"] for q in p], 0.4, color=colors, alpha=0.45)
    left.bar_label(bars, fontsize=8)
    bars = left.bar(x + 0.2, [q["promotions"] for q in p], 0.4, color=colors)
    left.bar_label(bars, fontsize=8)
    left.legend(
        handles=[
            Patch(color=_GREY, alpha=0.45, label="retrains"),
            Patch(color=_GREY, label="promotions"),
        ],
        fontsize=8,
    )
    left.set_title("retrains and promotions after the warm-up", fontsize=10)
    warm = [float(q.get("warmup_train_seconds") or 0.0) for q in p]
    train = [float(q.get("train_seconds") or 0.0) for q in p]
    right.bar(x, warm, 0.6, color=colors, alpha=0.3, hatch="//")
    bars = right.bar(x, train, 0.6, bottom=warm, color=colors)
    right.bar_label(
        bars, labels=[f"{w + t:.1f}" for w, t in zip(warm, train, strict=True)], fontsize=8
    )
    right.set_title("training CPU seconds", fontsize=10)
    right.legend(
        handles=[
            Patch(facecolor=_GREY, alpha=0.3, hatch="//", label="warm-up model"),
            Patch(color=_GREY, label="after the warm-up"),
        ],
        fontsize=8,
    )
    for ax in (left, right):
        ax.set_xticks(
            x,
            labels,
            rotation=20 if len(names) > 3 else 0,
            ha="right" if len(names) > 3 else "center",
        )
        ax.margins(y=0.15)
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return png_base64(fig)


def _best(r: Result) -> set[str]:
    """The policies with the best mean, by the metric's direction (ties all count)."""
    means = {n: p["mean"] for n, p in r["policies"].items() if p.get("mean") is not None}
    if not means:
        return set()
    best = max(means.values()) if r["higher_is_better"] else min(means.values())
    return {n for n, m in means.items() if m == best}


def _event(record: Mapping[str, Any], starts: Mapping[int, Any]) -> dict[str, str]:
    """One row of a policy's details: what fired after a batch and what came of it."""
    cand = record.get("candidate") or {}
    if "passed" in cand:
        decision = "passed" if cand["passed"] else "failed"
    else:
        decision = "no gates" if record.get("retrained") else "-"
    return {
        "index": str(record["index"]),
        "start": _setting(starts.get(int(record["index"]))),
        "served_by": f"v{record.get('model_version', '?')}",
        "metric": _num(record.get("metric")),
        "trigger": str(record.get("trigger") or "-"),
        "reason": str(record.get("reason") or ""),
        "error": str(record.get("error") or ""),
        "candidate": f"v{cand['version']}" if "version" in cand else "-",
        "holdout": _num(cand.get("holdout_metric")),
        "champion": _num(cand.get("champion_metric")),
        "decision": decision,
        "css": decision if decision in ("passed", "failed") else "",
        "summary": str(cand.get("summary") or ""),
        "promoted": "yes" if record.get("promoted") else "no",
    }


def _events(policy: Mapping[str, Any], starts: Mapping[int, Any]) -> list[dict[str, str]]:
    """The batches after which a trigger fired or a retrain ran (or failed)."""
    return [
        _event(x, starts)
        for x in policy.get("per_batch", [])
        if x.get("trigger") or x.get("retrained") or x.get("error")
    ]


def _setting(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value))
    return "-" if value is None else str(value)


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("retrainer.backtest", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(result: dict[str, Any]) -> str:
    """The backtest ``result`` as one HTML page (see the module docstring).

    Pure: reads ``result`` only, writes nothing. Raises KeyError when a key the
    result always has (``metric``, ``higher_is_better``, ``batches``, ``policies``) is
    missing.
    """
    batches = result["batches"]
    axis = _x_axis(batches)
    starts = {int(b["index"]): b.get("start") for b in batches}
    template = _environment().get_template(_TEMPLATE)
    return template.render(
        r=result,
        settings={k: _setting(v) for k, v in (result.get("settings") or {}).items()},
        n_warmup=sum(1 for b in batches if b.get("warmup")),
        period=(batches[0].get("start"), batches[-1].get("end")) if axis.dated else None,
        best=_best(result),
        events={n: _events(p, starts) for n, p in result["policies"].items()},
        figures={
            "metric": _metric_plot(result, axis),
            "drift": _drift_plot(result, axis),
            "cost": _cost_plot(result),
        },
        watching=[name for _, name, _ in _watching(result)],
        num=_num,
    )


def write_html(result: dict[str, Any], path: Path) -> Path:
    """Render :func:`render_html` to ``path`` atomically (a reader sees the old file or
    the new one) and return ``path``.

    Raises:
        DataSourceError: ``path`` cannot be written (its folder is missing or
            read-only); the message names the path.
        DiskFullError: no space left.
    """
    if not path.parent.is_dir():
        raise DataSourceError(f"cannot write {path}: no folder {path.parent}")
    return write_text_atomic(path, render_html(result))
