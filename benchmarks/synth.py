"""Seeded synthetic reference/current frames for the drift benchmarks.

The columns are chosen to exercise what makes drift statistics slow or wrong in
practice: continuous and skewed distributions, heavy tails, integer values with many
ties, missing values, and string categories with long tails, unseen levels and
levels that disappear. A few columns are shifted in the current frame; the manifest
says which, so a report can be checked against the truth.

Only numpy and pyarrow are used, so the files can be written from any environment.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

N_NUMERIC = 50
CATEGORY_LEVELS = (5, 8, 12, 20, 30, 50, 100, 150, 200, 200)


@dataclass(frozen=True)
class ColumnSpec:
    """How one column is drawn, and how (if at all) the current frame differs."""

    name: str
    kind: str  # "numeric" or "categorical"
    family: str
    params: dict[str, float] = field(default_factory=dict)
    nan_share: float = 0.0
    shift: str = ""  # human description of the change in the current frame; "" = none


def column_specs(
    n_numeric: int = N_NUMERIC, levels: tuple[int, ...] = CATEGORY_LEVELS
) -> list[ColumnSpec]:
    """The fixed recipe: 50 numeric columns in 5 families, 10 categorical columns."""
    families = [
        ("normal", lambda i: {"loc": float(i), "scale": 1.0 + i % 5}),
        ("lognormal", lambda i: {"mean": 0.1 * (i % 7), "sigma": 0.5 + 0.1 * (i % 6)}),
        ("student_t", lambda i: {"df": 1.5 + (i % 4)}),  # heavy tails, df 1.5..4.5
        ("poisson", lambda i: {"lam": float(1 + 3 * (i % 7))}),  # integers with ties
        ("exponential", lambda i: {"scale": 1.0 + i % 3}),
    ]
    specs: list[ColumnSpec] = []
    for i in range(n_numeric):
        family, params = families[i % len(families)]
        nan_share = (0.01, 0.05, 0.2)[(i // 10) % 3] if i % 10 == 9 else 0.0
        specs.append(
            ColumnSpec(
                name=f"num_{i:02d}",
                kind="numeric",
                family=family,
                params=params(i),
                nan_share=nan_share,
            )
        )
    # Shifts: location, scale, integer rate, missing-value rate, heavy-tail location.
    shifts = {
        0: "location +0.05 sd",
        6: "lognormal sigma x1.1",
        3: "poisson rate +2%",
        19: "NaN share 5% -> 10% and location +0.1 sd",
        12: "student-t location +0.1",
    }
    for i, how in shifts.items():
        if i < n_numeric:
            specs[i] = ColumnSpec(**{**asdict(specs[i]), "shift": how})
    for j, k in enumerate(levels):
        shift = ""
        if j == 1:
            shift = "two levels swap frequency"
        elif j == 4:
            shift = "5 unseen levels take 3% of current"
        elif j == 7:
            shift = "the 20 rarest reference levels are absent from current"
        specs.append(
            ColumnSpec(
                name=f"cat_{j}",
                kind="categorical",
                family="zipf",
                params={"levels": float(k), "a": 1.1},
                nan_share=0.02 if j == 9 else 0.0,
                shift=shift,
            )
        )
    return specs


def _numeric(spec: ColumnSpec, rng: np.random.Generator, n: int, current: bool) -> np.ndarray:
    p = spec.params
    nan_share = spec.nan_share
    if spec.family == "normal":
        loc, scale = p["loc"], p["scale"]
        if current and spec.shift.startswith("location"):
            loc += 0.05 * scale
        x = rng.normal(loc, scale, n)
    elif spec.family == "lognormal":
        sigma = p["sigma"] * (1.1 if current and spec.shift else 1.0)
        x = rng.lognormal(p["mean"], sigma, n)
    elif spec.family == "student_t":
        x = rng.standard_t(p["df"], n) + (0.1 if current and spec.shift else 0.0)
    elif spec.family == "poisson":
        lam = p["lam"] * (1.02 if current and spec.shift else 1.0)
        x = rng.poisson(lam, n).astype(np.float64)
    elif spec.family == "exponential":
        x = rng.exponential(p["scale"], n)
        if current and spec.shift:
            x += 0.1 * p["scale"]
            nan_share = 0.10
    else:  # pragma: no cover - the recipe is fixed
        raise ValueError(spec.family)
    if nan_share:
        x[rng.random(n) < nan_share] = np.nan
    return x


def _zipf_probs(k: int, a: float) -> np.ndarray:
    w = 1.0 / np.arange(1, k + 1) ** a
    return w / w.sum()


def _categorical(spec: ColumnSpec, rng: np.random.Generator, n: int, current: bool) -> pa.Array:
    k = int(spec.params["levels"])
    labels = [f"{spec.name}_L{i:03d}" for i in range(k)]
    probs = _zipf_probs(k, spec.params["a"])
    if current and spec.shift.startswith("two levels"):
        probs[[0, 1]] = probs[[1, 0]]
    if current and spec.shift.startswith("5 unseen"):
        labels += [f"{spec.name}_NEW{i}" for i in range(5)]
        probs = np.concatenate((probs * 0.97, np.full(5, 0.03 / 5)))
    if current and spec.shift.startswith("the 20 rarest"):
        probs = probs.copy()
        probs[-20:] = 0.0
        probs /= probs.sum()
    codes = rng.choice(len(labels), size=n, p=probs).astype(np.int32)
    values = pc.take(pa.array(labels, pa.string()), pa.array(codes))
    if spec.nan_share:
        mask = pa.array(rng.random(n) < spec.nan_share)
        values = pc.if_else(mask, pa.scalar(None, pa.string()), values)
    return values


def make_table(specs: list[ColumnSpec], n: int, seed: int, current: bool) -> pa.Table:
    """One frame as an Arrow table; every column has its own seeded stream."""
    columns: dict[str, Any] = {}
    for idx, spec in enumerate(specs):
        rng = np.random.default_rng([seed, int(current), idx])
        if spec.kind == "numeric":
            columns[spec.name] = pa.array(_numeric(spec, rng, n, current))
        else:
            columns[spec.name] = _categorical(spec, rng, n, current)
    return pa.table(columns)


def write_frames(
    out_dir: Path,
    rows: int,
    seed: int,
    n_numeric: int = N_NUMERIC,
    levels: tuple[int, ...] = CATEGORY_LEVELS,
) -> dict[str, Any]:
    """Write reference.parquet, current.parquet and manifest.json; return the manifest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    specs = column_specs(n_numeric, levels)
    for name, current in (("reference", False), ("current", True)):
        pq.write_table(make_table(specs, rows, seed, current), out_dir / f"{name}.parquet")
    manifest = {
        "rows": rows,
        "seed": seed,
        "numeric": [s.name for s in specs if s.kind == "numeric"],
        "categorical": [s.name for s in specs if s.kind == "categorical"],
        "columns": [asdict(s) for s in specs],
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest
