"""Rendering for the CLI: rich tables for people, JSON for machines. No logic here."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["fmt_metric", "print_json", "table"]


def print_json(console: Console, data: Any) -> None:
    """Machine-readable output: one JSON document on stdout."""
    console.file.write(json.dumps(data, indent=2, default=str, sort_keys=False) + "\n")


def fmt_metric(value: Any) -> str:
    """A metric to 4 places, or '-'."""
    return "-" if value is None else f"{float(value):.4f}"


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    numeric: Iterable[str] = (),
    no_wrap: Iterable[str] = (),
) -> Table:
    """A rich table; ``numeric`` columns are right-aligned, ``no_wrap`` ones never wrap."""
    right, keep = set(numeric), set(no_wrap)
    t = Table(
        title=None if title is None else Text(title, style="bold"),
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        show_edge=False,
    )
    for col in columns:
        t.add_column(
            col,
            justify="right" if col in right else "left",
            overflow="fold",
            no_wrap=col in keep,
        )
    for row in rows:
        t.add_row(*(Text("-" if v is None else str(v)) for v in row))  # text, never markup
    return t
