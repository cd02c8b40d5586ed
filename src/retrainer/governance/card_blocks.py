"""The vocabulary of a model card: how a stored value is shown, and the blocks sections
are made of (paragraphs, key-value lists, tables, plot slots), which the HTML and
Markdown templates both render.

Every number on a card goes through :func:`num`; nothing here counts or computes, so a
number on a card is a stored number as displayed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

__all__ = [
    "DRIFT_PLOT",
    "MONITORING_PLOT",
    "NOT_STATED",
    "Block",
    "ci",
    "gate",
    "kv",
    "num",
    "para",
    "plot",
    "score_table",
    "short",
    "status",
    "table",
    "vlabel",
    "when",
]

Block = dict[str, Any]
NOT_STATED: Final = "not stated in the spec"
DRIFT_PLOT: Final = "Drift at training time: each feature's effect size and threshold"
MONITORING_PLOT: Final = "Realised metric per batch, before and after training"


def num(value: Any) -> str:
    """A stored value as the card shows it: ints as they are, fractions to 4 significant
    digits (1 decimal from 1,000 up), ``-`` for none, ``yes``/``no`` for booleans."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.1f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def when(value: Any) -> str:
    """An ISO timestamp as ``2024-05-01 12:00:00`` (``UTC`` appended when it has a zone)."""
    if not value:
        return "-"
    try:
        t = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if t.tzinfo is None:
        return t.strftime("%Y-%m-%d %H:%M:%S")
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def short(sha: Any) -> str:
    """The first 12 characters of a hash, or ``-``."""
    return str(sha)[:12] if sha else "-"


def para(text: str, *, muted: bool = False) -> Block:
    """A paragraph (``muted``: a side note)."""
    return {"kind": "p", "text": text, "muted": muted}


def kv(rows: Iterable[tuple[str, Any]]) -> Block:
    """A two-column list of ``(label, value)``."""
    return {"kind": "kv", "rows": [(k, v if isinstance(v, str) else num(v)) for k, v in rows]}


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str = "") -> Block:
    """A table; values that are not text are shown with :func:`num`."""
    cells = [[v if isinstance(v, str) else num(v) for v in row] for row in rows]
    return {"kind": "table", "title": title, "columns": list(columns), "rows": cells}


def plot(key: str) -> Block:
    """The slot of the plot titled ``key`` (left out when there is no such plot)."""
    return {"kind": "plot", "key": key}


def gate(decision: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    """The decision record's gate called ``name``, or None."""
    return next((g for g in decision.get("gates") or [] if g.get("name") == name), None)


def ci(g: Mapping[str, Any]) -> str:
    """A gate's interval as ``[low, high]``, or ``-``."""
    lo, hi = g.get("ci_low"), g.get("ci_high")
    return "-" if lo is None or hi is None else f"[{num(lo)}, {num(hi)}]"


def status(g: Mapping[str, Any]) -> str:
    """A gate's status (``pass``, ``fail``, ``not_evaluable``, ``skipped``)."""
    return str(g.get("status") or ("pass" if g.get("passed") else "fail"))


def vlabel(version: Any) -> str:
    """``v3``, or ``none``."""
    return "none" if version is None else f"v{version}"


def score_table(scores: Sequence[Mapping[str, Any]], metric: str, title: str) -> Block:
    """Stored batch scores (``ScoreRecord.to_dict()``) as a table: the realised and the
    estimated ``metric``, labelled rows, the drift summary."""
    columns = ["batch", "model", f"{metric} realised", "labelled rows", "estimated", "drift"]
    rows = [
        [
            s["batch_id"],
            f"v{s['version']}",
            s["metrics"].get(metric),
            s["labelled"],
            (s.get("estimated") or {}).get(metric),
            (s.get("drift") or {}).get("summary", "-"),
            when(s["scored_at"]),
        ]
        for s in scores
    ]
    return table([*columns, "scored"], rows, title=title)
