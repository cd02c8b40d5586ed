"""``retrainer init``: create a workspace folder with a spec (and example data)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from retrainer.data.snapshot import frame_to_parquet
from retrainer.errors import SpecError
from retrainer.quickstart.rainfall import load_rainfall
from retrainer.quickstart.templates import GENERIC_SPEC, RAINFALL_SPEC
from retrainer.workspace import SPEC_FILE

__all__ = ["APPROVAL_MODES", "BATCH_DIR", "EXAMPLES", "init_workspace", "write_batch"]

EXAMPLES = ("rainfall",)
APPROVAL_MODES = ("auto", "manual")
APPROVAL_LINE = "  mode: auto"
BATCH_DIR = Path("data") / "batches"
HISTORY_DIR = Path("data") / "history"


def write_batch(folder: Path, name: str, frame: pd.DataFrame) -> Path:
    """Write one batch file atomically (temp name, then rename): never read half-written."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{name}.parquet"
    tmp = folder / f".{name}.parquet.tmp"
    tmp.write_bytes(frame_to_parquet(frame))
    tmp.replace(final)
    return final


def init_workspace(
    directory: Path,
    *,
    example: str | None = None,
    warmup_years: int = 3,
    approval: str = "auto",
) -> Path:
    """Create ``directory/retrainer.yaml`` (and, for an example, its first batches).

    ``approval`` is the spec's ``approval.mode`` (``auto`` or ``manual``). Refuses to
    overwrite an existing spec. Returns the spec's path.
    """
    if example is not None and example not in EXAMPLES:
        raise SpecError(f"--example: expected one of {', '.join(EXAMPLES)}, got {example!r}")
    if approval not in APPROVAL_MODES:
        raise SpecError(
            f"--approval: expected one of {', '.join(APPROVAL_MODES)}, got {approval!r}"
        )
    spec_path = directory / SPEC_FILE
    if spec_path.exists():
        raise SpecError(f"{spec_path} already exists; not overwriting it")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / BATCH_DIR).mkdir(parents=True, exist_ok=True)
    if example == "rainfall":
        data = load_rainfall()
        history = directory / HISTORY_DIR  # every day, for 'retrainer backtest'
        history.mkdir(exist_ok=True)
        write_batch(history, "rainfall", data)
        for year, rows in data.groupby(data["date"].dt.year):
            if year >= data["date"].dt.year.iloc[0] + warmup_years:
                break
            write_batch(directory / BATCH_DIR, f"rain-{year}", rows)
    text = RAINFALL_SPEC if example == "rainfall" else GENERIC_SPEC
    spec_path.write_text(text.replace(APPROVAL_LINE, f"  mode: {approval}", 1))
    return spec_path
