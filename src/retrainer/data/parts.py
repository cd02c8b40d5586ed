"""Datasets kept in parts: Parquet files read one at a time, where the executor runs.

:class:`ParquetFiles` is a list of Parquet files (local paths or fsspec URIs) read as one
dataset, one partition per file, in the order given. A file may carry the sha256 its
bytes must have (a snapshot blob of the artifact store: a changed or truncated blob is
refused, as :meth:`~retrainer.registry.artifacts.ArtifactStore.get` would) and a mask of
the rows to keep, stored packed (one bit a row), so that a training window selected
from many batches is described by a few bytes per batch and read lazily.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from retrainer.errors import ArtifactIntegrityError, DataSourceError

__all__ = [
    "MANIFEST_FORMAT",
    "ParquetFiles",
    "manifest_bytes",
    "pack_mask",
    "read_manifest",
    "unpack_mask",
]

MANIFEST_FORMAT = "retrainer.snapshot-parts.v1"
"""A snapshot kept in parts: its blob is this JSON manifest instead of Parquet."""

BoolArray = np.ndarray[Any, np.dtype[np.bool_]]


def pack_mask(mask: Any) -> bytes:
    """A boolean row mask as bytes (one bit a row)."""
    return np.packbits(np.asarray(mask, dtype=bool)).tobytes()


def unpack_mask(packed: bytes, rows: int) -> BoolArray:
    """:func:`pack_mask`'s bytes back as a mask of ``rows`` rows.

    Raises:
        ValueError: the bytes hold fewer than ``rows`` bits.
    """
    bits = np.frombuffer(packed, dtype=np.uint8)
    if bits.size * 8 < rows:
        raise ValueError(f"a row mask of {bits.size * 8} bits for {rows} rows")
    mask: BoolArray = np.unpackbits(bits, count=rows).astype(bool)
    return mask


@dataclass(frozen=True)
class ParquetFiles:
    """Parquet files read as one dataset (see the module docstring).

    Attributes:
        paths: Local paths or fsspec URIs, one partition each.
        columns: The columns to read (None: all).
        sha256: Per file, the sha256 its bytes must have (None: not checked).
        keep: Per file, the packed mask of rows to keep (None: every row).
    """

    paths: tuple[str, ...]
    columns: tuple[str, ...] | None = None
    sha256: tuple[str | None, ...] | None = None
    keep: tuple[bytes | None, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("sha256", "keep"):
            value = getattr(self, name)
            if value is not None and len(value) != len(self.paths):
                raise ValueError(f"expected one {name} per path, got {len(value)}")

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, index: int) -> pd.DataFrame:
        """Partition ``index`` as a pandas frame (only its kept rows).

        Raises:
            DataSourceError: the file is missing or not Parquet (the message names it).
            ArtifactIntegrityError: its bytes do not have the expected sha256.
        """
        path = self.paths[index]
        try:
            with fsspec.open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise DataSourceError(f"{path}: cannot read Parquet: {exc}") from exc
        expected = None if self.sha256 is None else self.sha256[index]
        if expected is not None and hashlib.sha256(data).hexdigest() != expected:
            raise ArtifactIntegrityError(
                f"{path}: its bytes no longer have sha256 {expected} (changed or truncated)"
            )
        try:
            columns = list(self.columns) if self.columns is not None else None
            frame: pd.DataFrame = pq.read_table(io.BytesIO(data), columns=columns).to_pandas()
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise DataSourceError(f"{path}: cannot read Parquet: {exc}") from exc
        packed = None if self.keep is None else self.keep[index]
        if packed is None:
            return frame
        return frame[unpack_mask(packed, len(frame))].reset_index(drop=True)

    def row_counts(self) -> list[int]:
        """Rows of each partition, without reading the data: the kept rows of a mask,
        else the row count in the file's Parquet footer.

        Raises:
            DataSourceError: a file is missing or not Parquet (the message names it).
        """
        counts = []
        for i, path in enumerate(self.paths):
            packed = None if self.keep is None else self.keep[i]
            if packed is not None:
                counts.append(int(np.unpackbits(np.frombuffer(packed, dtype=np.uint8)).sum()))
                continue
            try:
                with fsspec.open(path, "rb") as f:
                    counts.append(int(pq.ParquetFile(f).metadata.num_rows))
            except (OSError, pa.ArrowException, ValueError) as exc:
                raise DataSourceError(f"{path}: cannot read Parquet: {exc}") from exc
        return counts

    def part(self, index: int) -> ParquetFiles:
        """File ``index`` alone (what one task on a worker needs)."""
        return ParquetFiles(
            (self.paths[index],),
            self.columns,
            None if self.sha256 is None else (self.sha256[index],),
            None if self.keep is None else (self.keep[index],),
        )

    def select(self, columns: Sequence[str]) -> ParquetFiles:
        """The same files, reading only ``columns``."""
        return replace(self, columns=tuple(columns))

    def masked(self, keep: Sequence[bytes | None]) -> ParquetFiles:
        """The same files keeping only the rows of ``keep`` (packed masks over every row
        of each file, as :func:`pack_mask` makes them)."""
        if self.keep is not None:
            raise ValueError("these files are masked already")
        return replace(self, keep=tuple(keep))


def manifest_bytes(files: ParquetFiles) -> bytes:
    """The manifest of a snapshot kept in parts: each part's blob sha256 and packed row
    mask (base64), as canonical JSON. The parts must be blobs with their sha256."""
    if files.sha256 is None or any(h is None for h in files.sha256):
        raise ValueError("parts of a snapshot must be stored blobs with their sha256")
    keep = files.keep or (None,) * len(files)
    manifest = {
        "format": MANIFEST_FORMAT,
        "parts": [
            {"sha256": h, "keep": None if k is None else base64.b64encode(k).decode()}
            for h, k in zip(files.sha256, keep, strict=True)
        ],
    }
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()


def read_manifest(data: bytes, uri_of: Callable[[str], str]) -> ParquetFiles | None:
    """The parts a manifest names (``uri_of`` turns a blob's sha256 into its URI), or
    None when ``data`` is not a manifest (a whole frame's Parquet bytes).

    Raises:
        ValueError: ``data`` looks like a manifest but is not a valid one.
    """
    if not data.startswith(b"{"):
        return None
    try:
        manifest = json.loads(data)
        if manifest.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"format {manifest.get('format')!r}")
        shas = tuple(str(p["sha256"]) for p in manifest["parts"])
        keep = tuple(
            None if p["keep"] is None else base64.b64decode(p["keep"]) for p in manifest["parts"]
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(str(exc)) from exc
    return ParquetFiles(tuple(uri_of(h) for h in shas), sha256=shas, keep=keep)
