"""Matplotlib figures for self-contained HTML pages: PNG as base64, text shown as given."""

from __future__ import annotations

import base64
import io

from matplotlib.figure import Figure

__all__ = ["plain", "png_base64"]


def plain(text: str) -> str:
    """Text matplotlib shows as given: ``$`` would start mathtext."""
    return text.replace("$", r"\$")


def png_base64(fig: Figure) -> str:
    """The figure as a PNG, base64-encoded for a ``data:image/png;base64,`` source."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")
