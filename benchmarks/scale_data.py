"""The seeded synthetic dataset of benchmarks/dask_scale.py (issue 8).

N rows x 30 columns, written as Parquet files of :data:`PART_ROWS` rows, one chunk at a
time: 25 float32 features driven by 4 latent factors (5 exponentiated, 3 rounded to
integers, 2 with missing values), 3 string categoricals with Zipf-distributed levels, a
timestamp and an int8 label that depends on 10 features, one categorical and an
interaction. The "current" dataset shifts the columns in :data:`SHIFTS`. Each chunk has
its own generator, so a smaller dataset is a prefix of a larger one.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

GENERATOR_VERSION = 1
SHIFT_VERSION = 2
"""Bumped when only the current dataset's shifts change (the references stay valid)."""
PART_ROWS = 1_000_000
N_NUMERIC = 25
N_LATENT = 4
NUMERIC = [f"num_{i:02d}" for i in range(N_NUMERIC)]
CATEGORY_LEVELS = {"cat_a": 5, "cat_b": 12, "cat_c": 40}
CATEGORICAL = list(CATEGORY_LEVELS)
TIMESTAMP = "event_time"
TARGET = "label"
FEATURES = NUMERIC + CATEGORICAL
COLUMNS = [TIMESTAMP, *NUMERIC, *CATEGORICAL, TARGET]
LOGNORMAL = range(5, 10)
"""Columns exponentiated: skewed, positive."""
INTEGER = range(10, 13)
"""Columns rounded to integers: many ties."""
NAN_SHARE = {"num_20": 0.01, "num_21": 0.05}
START = np.datetime64("2025-01-01T00:00:00", "ms")
SHIFTS = {
    "num_00": "location +1.5 (about 0.8 sd)",
    "num_05": "log-space scale x2",
    "num_12": "integer values +4 (about 1 sd)",
    "cat_b": "levels L00 and L05 swap frequencies",
    "cat_c": "unseen level NEW takes 3%",
}
"""Columns changed in the current dataset (the truth a drift report can be checked against)."""


def levels(column: str) -> list[str]:
    """The reference levels of a categorical column, most frequent first."""
    return [f"L{i:02d}" for i in range(CATEGORY_LEVELS[column])]


def _recipe(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Loadings on the latent factors, noise scales and label weights (fixed per seed)."""
    rng = np.random.default_rng([seed, 0])
    loadings = rng.normal(0.0, 0.7, size=(N_NUMERIC, N_LATENT)).astype(np.float32)
    noise = rng.uniform(0.5, 1.5, size=N_NUMERIC).astype(np.float32)
    weights = np.zeros(N_NUMERIC, dtype=np.float32)
    informative = rng.choice(N_NUMERIC, size=10, replace=False)
    weights[informative] = rng.normal(0.0, 0.4, size=10)
    return loadings, noise, weights


def _zipf(k: int) -> np.ndarray:
    p = 1.0 / np.arange(1, k + 1)
    return p / p.sum()


def make_chunk(seed: int, index: int, first_row: int, rows: int, *, current: bool) -> pa.Table:
    """Rows ``first_row .. first_row + rows`` of a dataset, drawn from their own generator.

    Chunk ``index`` is the same whatever the dataset's size, so a smaller dataset is a
    prefix of a larger one.
    """
    loadings, noise, weights = _recipe(seed)
    rng = np.random.default_rng([seed, 1 + int(current), index])
    latent = rng.standard_normal((rows, N_LATENT), dtype=np.float32)
    x = latent @ loadings.T
    x += rng.standard_normal((rows, N_NUMERIC), dtype=np.float32) * noise
    cats = {}
    for name, k in CATEGORY_LEVELS.items():
        p = _zipf(k)
        if current and name == "cat_b":
            p[[0, 5]] = p[[5, 0]]
        cats[name] = rng.choice(k, size=rows, p=p).astype(np.int32)
    effect = np.linspace(-0.6, 0.6, CATEGORY_LEVELS["cat_a"], dtype=np.float32)
    logit = x @ weights + effect[cats["cat_a"]] + 0.3 * x[:, 0] * x[:, 1] - 0.2
    label = (rng.random(rows, dtype=np.float32) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int8)
    if current:
        x[:, 0] += 1.5
        x[:, 5] *= 2.0
    for i in LOGNORMAL:
        np.exp(0.5 * x[:, i], out=x[:, i])
    for i in INTEGER:
        np.round(x[:, i] * 2.0 + 5.0, out=x[:, i])
    if current:
        x[:, 12] += 4.0
    for name, share in NAN_SHARE.items():
        x[rng.random(rows) < share, NUMERIC.index(name)] = np.nan

    arrays: dict[str, pa.Array] = {
        TIMESTAMP: pa.array(START + np.arange(first_row, first_row + rows).astype("timedelta64[s]"))
    }
    for i, name in enumerate(NUMERIC):
        arrays[name] = pa.array(np.ascontiguousarray(x[:, i]))
    for name, codes in cats.items():
        dictionary = levels(name)
        if current and name == "cat_c":
            codes[rng.random(rows) < 0.03] = len(dictionary)
            dictionary = [*dictionary, "NEW"]
        arr = pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(dictionary))
        arrays[name] = arr.cast(pa.string())
    arrays[TARGET] = pa.array(label)
    return pa.table({c: arrays[c] for c in COLUMNS})


@dataclass(frozen=True)
class Dataset:
    """Parquet files written by :func:`ensure_dataset`."""

    folder: Path
    rows: int
    paths: tuple[str, ...]
    part_rows: tuple[int, ...]
    generated_s: float | None = None


def ensure_dataset(folder: Path, rows: int, seed: int, *, current: bool) -> Dataset:
    """Write ``rows`` rows to ``folder`` unless its manifest says they are there already."""
    manifest_path = folder / "manifest.json"
    version = f"{GENERATOR_VERSION}.{SHIFT_VERSION}" if current else GENERATOR_VERSION
    want = {"rows": rows, "seed": seed, "current": current, "generator": version}
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if {k: manifest.get(k) for k in want} == want:
            files = [str(folder / f) for f in manifest["files"]]
            if all(Path(f).exists() for f in files):
                return Dataset(folder, rows, tuple(files), tuple(manifest["part_rows"]))
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path.unlink(missing_ok=True)
    for old in folder.glob("part-*.parquet"):
        old.unlink()
    t0 = time.perf_counter()
    offset = 0 if not current else 10**9  # current rows come after any reference
    files, part_rows = [], []
    for index in range(math.ceil(rows / PART_ROWS)):
        first = index * PART_ROWS
        n = min(PART_ROWS, rows - first)
        table = make_chunk(seed, index, offset + first, n, current=current)
        name = f"part-{index:05d}.parquet"
        pq.write_table(table, folder / name, row_group_size=250_000)
        del table
        files.append(name)
        part_rows.append(n)
    elapsed = time.perf_counter() - t0
    manifest = {
        **want,
        "files": files,
        "part_rows": part_rows,
        "columns": COLUMNS,
        "numeric": NUMERIC,
        "categorical": CATEGORICAL,
        "target": TARGET,
        "timestamp": TIMESTAMP,
        "shifts": SHIFTS if current else {},
        "generated_s": elapsed,
    }
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return Dataset(folder, rows, tuple(str(folder / f) for f in files), tuple(part_rows), elapsed)


def datasets(data_dir: Path, rows: int, seed: int, share: float) -> tuple[Dataset, Dataset]:
    """The reference and the current dataset for ``rows`` reference rows."""
    reference = ensure_dataset(data_dir / f"reference-{rows}-s{seed}", rows, seed, current=False)
    n_current = max(1, round(rows * share))
    current = ensure_dataset(
        data_dir / f"current-{n_current}-s{seed}", n_current, seed, current=True
    )
    return reference, current
