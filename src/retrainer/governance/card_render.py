"""A model card as a self-contained HTML or Markdown file, with its plots embedded.

The content is :func:`~retrainer.governance.card_view.card_sections` of a
:class:`~retrainer.governance.card.CardEvidence`; the templates
(``card_templates/card.html.j2`` and ``card.md.j2``) only lay it out. Plots are
matplotlib PNGs embedded as ``data:image/png;base64`` URIs in both formats, so a card is
one file that opens offline and hashes as one piece of evidence (GitHub's Markdown view
strips such images; open the ``.md`` in an editor's preview, or render ``.html``):

* the decision record's own plots (``evaluate.explain_html.decision_plots``): confidence
  intervals, ROC/PR curves or residuals, per-slice and per-group metric;
* drift at training time: each feature's effect against its threshold, on the newest
  batch scored before training;
* monitoring: the realised metric per batch, of the champion of the day before training
  and of this version after.

User text (owner, intended use, comments, reasons) is data, never a template; HTML
escapes it, Markdown escapes its markup characters. Rendering the same evidence twice
gives the same bytes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal

import jinja2
from matplotlib.figure import Figure

from retrainer.errors import DataSourceError
from retrainer.evaluate.explain_html import decision_plots
from retrainer.figures import plain, png_base64
from retrainer.governance.card import CardEvidence
from retrainer.governance.card_blocks import DRIFT_PLOT, MONITORING_PLOT
from retrainer.governance.card_view import card_sections
from retrainer.textfile import write_text_atomic

__all__ = ["FORMATS", "card_format", "render_card", "write_card"]

Format = Literal["html", "md"]
FORMATS: Final[dict[str, Format]] = {
    ".html": "html",
    ".htm": "html",
    ".md": "md",
    ".markdown": "md",
}
_STATUS = {"drift": "#b42318", "no_drift": "#1a7f37"}
_BEFORE, _AFTER = "#4c72b0", "#dd8452"
_MD_SPECIAL = re.compile(r"([\\`\[\]|<>&])")


def card_format(path: Path) -> Format:
    """The format a card path asks for, by its suffix. Raises DataSourceError naming the
    path for any other suffix."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataSourceError(
            f"{path}: expected a .html or .md file for the card, got {path.suffix or 'no suffix'!r}"
        )
    return fmt


def _drift_plot(e: Mapping[str, Any]) -> str | None:
    before = e["monitoring"]["before"]
    feats = [
        f
        for f in ((before[0].get("drift") or {}).get("features") or [] if before else [])
        if isinstance(f.get("effect"), int | float) and math.isfinite(f["effect"])
    ]
    if not feats:
        return None
    fig = Figure(figsize=(7.5, 0.9 + 0.35 * len(feats)), dpi=90)
    ax = fig.subplots()
    rows = list(reversed(feats))
    for i, f in enumerate(rows):
        ax.barh(i, f["effect"], color=_STATUS.get(str(f.get("status")), "#999"), height=0.6)
        if isinstance(f.get("min_effect"), int | float):
            ax.plot([f["min_effect"]], [i], "|", color="black", markersize=14, mew=2)
    ax.set_yticks(
        range(len(rows)), [plain(f"{f['feature']} ({f.get('effect_name', '')})") for f in rows]
    )
    ax.set_xlabel("effect size (bar; red: drifted) and its threshold (tick)")
    ax.set_title(plain(f"batch {before[0]['batch_id']} against the training rows"), fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return png_base64(fig)


def _monitoring_plot(e: Mapping[str, Any]) -> str | None:
    metric = str((e["record"].get("decision") or {}).get("metric", ""))
    m = e["monitoring"]
    fig = Figure(figsize=(7.5, 3.0), dpi=90)
    ax = fig.subplots()
    drawn = False
    for key, color, label in (
        ("before", _BEFORE, f"champion v{m['champion_at_training']} before training"),
        ("after", _AFTER, f"v{e['version']} after training"),
    ):
        points = sorted(
            (s["batch_id"], s["metrics"][metric])
            for s in m[key]
            if isinstance(s["metrics"].get(metric), int | float)
        )
        if points:
            ax.plot(*zip(*points, strict=True), "o-", color=color, label=plain(label), markersize=4)
            drawn = True
    if not drawn:
        return None
    if m["last_batch"] is not None:
        ax.axvline(m["last_batch"] + 0.5, color="#999", linestyle=":", label="trained here")
    ax.set_xlabel("batch")
    ax.set_ylabel(plain(f"{metric} (realised)"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return png_base64(fig)


def _plots(e: Mapping[str, Any]) -> dict[str, str]:
    plots = dict(decision_plots(e["record"].get("decision") or {}))
    for key, make in ((DRIFT_PLOT, _drift_plot), (MONITORING_PLOT, _monitoring_plot)):
        src = make(e)
        if src is not None:
            plots[key] = src
    return plots


def _md(value: Any) -> str:
    """Text for Markdown: characters that start HTML, links, code or table cells
    escaped (so user text stays text), line breaks as spaces."""
    return " ".join(_MD_SPECIAL.sub(r"\\\1", str(value)).split())


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("retrainer.governance", "card_templates"),
        autoescape=lambda name: bool(name and name.endswith(".html.j2")),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["md"] = _md
    return env


def render_card(evidence: CardEvidence, fmt: Format) -> str:
    """The card of ``evidence`` as an HTML page or a Markdown document."""
    e = evidence.data
    plots = _plots(e)
    decision_keys = [k for k in plots if k not in (DRIFT_PLOT, MONITORING_PLOT)]
    sections = card_sections(e, evidence.digest, decision_keys)
    template = _environment().get_template(f"card.{fmt}.j2")
    return template.render(
        title=f"Model card: {e['model']} v{e['version']}",
        sections=sections,
        plots=plots,
        statuses={"pass", "fail", "not_evaluable", "skipped", "drift", "no_drift"},
    )


def write_card(evidence: CardEvidence, path: Path) -> Path:
    """Render the card in the format ``path``'s suffix names and write it atomically.

    Raises:
        DataSourceError: another suffix, or ``path`` cannot be written (its folder is
            missing or read-only); the message names the path.
        DiskFullError: no space left.
    """
    fmt = card_format(path)
    if not path.parent.is_dir():
        raise DataSourceError(f"cannot write {path}: no folder {path.parent}")
    return write_text_atomic(path, render_card(evidence, fmt))
