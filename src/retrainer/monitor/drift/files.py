"""Drift between two files: read them, decide each column's kind, build the report.

Used by ``retrainer drift REFERENCE CURRENT``. Column kinds follow the reference's
dtypes unless named: integer and float columns are numeric; strings, booleans and
pandas categoricals are categorical; dates and other types are skipped (listed in
:attr:`FileComparison.skipped`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from retrainer.errors import DataSourceError
from retrainer.monitor.drift.profile import ReferenceProfile
from retrainer.monitor.drift.report import DriftConfig, DriftReport, drift_report

__all__ = ["FileComparison", "compare_files", "infer_columns", "read_table"]

_PARQUET = (".parquet", ".pq")
_CSV = (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz", ".txt")


def read_table(path: Path) -> pd.DataFrame:
    """A Parquet file (or folder of them) or a CSV file as a frame.

    Raises:
        DataSourceError: the file is missing, of an unknown kind, or unreadable; the
            message names it.
    """
    name = path.name.lower()
    if not path.exists():
        raise DataSourceError(f"{path}: no such file")
    try:
        if path.is_dir() or name.endswith(_PARQUET):
            return pd.read_parquet(path)
        if name.endswith(_CSV):
            return pd.read_csv(path, low_memory=False)
    except (OSError, ValueError, ImportError) as exc:  # parser, arrow and decode errors
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataSourceError(f"cannot read {path}: {detail}") from exc
    raise DataSourceError(
        f"{path}: expected a Parquet (.parquet, .pq) or CSV (.csv, .csv.gz, ...) file"
    )


def infer_columns(
    reference: pd.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    categorical: Sequence[str] = (),
    where: str = "the reference",
) -> tuple[list[str], list[str], list[str]]:
    """(numeric, categorical, skipped) columns of ``reference`` (see the module docstring).

    Raises:
        DataSourceError: a named column is not in the reference.
    """
    wanted = list(reference.columns) if columns is None else list(dict.fromkeys(columns))
    unknown = [c for c in [*wanted, *categorical] if c not in reference.columns]
    if unknown:
        raise DataSourceError(
            f"{where} has no column {', '.join(map(repr, dict.fromkeys(unknown)))} "
            f"(it has {', '.join(map(repr, map(str, reference.columns)))})"
        )
    numeric: list[str] = []
    cats: list[str] = []
    skipped: list[str] = []
    forced = set(categorical)
    for col in wanted:
        dtype = reference[col].dtype
        if col in forced or pd.api.types.is_bool_dtype(dtype):
            cats.append(col)
        elif pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
            numeric.append(col)
        elif (
            pd.api.types.is_object_dtype(dtype)
            or pd.api.types.is_string_dtype(dtype)
            or isinstance(dtype, pd.CategoricalDtype)
        ):
            cats.append(col)
        else:
            skipped.append(col)
    return numeric, cats, skipped


@dataclass(frozen=True)
class FileComparison:
    """The report, with what produced it (for rendering and the HTML report)."""

    report: DriftReport
    profile: ReferenceProfile
    current: pd.DataFrame
    skipped: list[str]


def compare_files(
    reference: Path,
    current: Path,
    config: DriftConfig | None = None,
    *,
    columns: Sequence[str] | None = None,
    categorical: Sequence[str] = (),
) -> FileComparison:
    """Read both files, profile the reference and judge the current file against it.

    Raises:
        DataSourceError: a file cannot be read, or a named column is not in the
            reference (the message names the file).
    """
    config = config or DriftConfig()
    ref = read_table(reference)
    cur = read_table(current)
    numeric, cats, skipped = infer_columns(
        ref, columns=columns, categorical=categorical, where=str(reference)
    )
    try:
        profile = ReferenceProfile.build(
            ref,
            numeric,
            cats,
            psi_bins=config.psi_bins,
            sample_rows=0,  # the domain classifier samples the reference frame itself
            seed=config.seed,
        )
    except DataSourceError as exc:
        raise DataSourceError(f"{reference}: {exc.message}") from exc
    report = drift_report(profile, cur, config, reference_frame=ref)
    return FileComparison(report=report, profile=profile, current=cur, skipped=skipped)
