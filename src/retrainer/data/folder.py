"""Folder sources: a folder of Parquet and/or CSV files, each file one batch.

The watermark is ``{"files": {relpath: sha256}}``; see :class:`FolderSource`.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from retrainer.data.batch import BatchRef
from retrainer.errors import DataSourceError

__all__ = ["FolderSource"]

log = logging.getLogger(__name__)

_FORMATS = {"parquet": (".parquet",), "csv": (".csv",)}


class FolderSource:
    """A folder of Parquet and/or CSV files; each file is one batch.

    Files are found recursively and ordered by relative path. Names (of the file or
    any folder on the way) starting with ``.`` or ``_``, and ``*.tmp`` files, are
    ignored, so writers can publish by writing a temp file and renaming it. The
    watermark is ``{"files": {relpath: sha256}}``; a file whose (path, sha256) pair
    is not in it is new, so a rewritten file is a new batch.
    """

    def __init__(self, path: Path, formats: set[str], *, uri: str | None = None) -> None:
        unknown = set(formats) - set(_FORMATS)
        if not formats or unknown:
            raise DataSourceError(
                f"folder source formats must be a non-empty subset of {sorted(_FORMATS)}; "
                f"got {sorted(formats)}"
            )
        self.path = Path(path)
        self.formats = frozenset(formats)
        self.uri = uri or f"file://{self.path}"

    def __repr__(self) -> str:
        return f"FolderSource({str(self.path)!r}, formats={sorted(self.formats)})"

    def discover(self, watermark: Mapping[str, Any] | None) -> list[BatchRef]:
        """Files whose (relative path, sha256) is not in the watermark, by path.

        Raises:
            DataSourceError: the folder does not exist, or the watermark is malformed.
        """
        seen = _folder_watermark(watermark)
        if not self.path.is_dir():
            raise DataSourceError(f"data folder does not exist: {self.path}")
        refs = []
        for rel in self._files():
            try:
                with (self.path / rel).open("rb") as handle:
                    digest = hashlib.file_digest(handle, "sha256").hexdigest()
            except OSError as exc:
                raise DataSourceError(f"cannot read {self.path / rel}: {exc}") from exc
            if seen.get(rel) != digest:
                refs.append(BatchRef(self.uri, rel, digest))
        return refs

    def read(self, ref: BatchRef) -> pd.DataFrame:
        """The file's rows; CSV decoded as UTF-8 and parsed by pandas, Parquet by pyarrow.

        Raises:
            DataSourceError: the file is gone, changed since discovery, is not valid
                UTF-8 (the message gives the byte offset), or cannot be parsed.
        """
        file = self.path / ref.key
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise DataSourceError(f"cannot read {file}: {exc.strerror or exc}") from exc
        if ref.fingerprint is not None and hashlib.sha256(data).hexdigest() != ref.fingerprint:
            raise DataSourceError(f"{file} changed since it was discovered; discover again")
        if file.suffix.lower() in _FORMATS["csv"]:
            return _read_csv(data, file)
        return _read_parquet(data, file)

    def advance(
        self, watermark: Mapping[str, Any] | None, ref: BatchRef, frame: pd.DataFrame
    ) -> dict[str, Any]:
        """The watermark with ``ref``'s (path, sha256) added; ``frame`` is not used."""
        if ref.fingerprint is None:
            raise DataSourceError(f"batch {ref.key!r} has no fingerprint; not from a folder")
        files = dict(_folder_watermark(watermark))
        files[ref.key] = ref.fingerprint
        return {"files": dict(sorted(files.items()))}

    def _files(self) -> list[str]:
        suffixes = tuple(s for f in sorted(self.formats) for s in _FORMATS[f])
        root = self.path.resolve()
        found = []
        for file in self.path.rglob("*"):
            rel = file.relative_to(self.path)
            if any(p.startswith((".", "_")) for p in rel.parts) or file.name.endswith(".tmp"):
                continue
            if not file.name.lower().endswith(suffixes) or not file.is_file():
                continue
            if not file.resolve().is_relative_to(root):
                log.warning("ignoring %s: it links outside %s", file, self.path)
                continue
            found.append(rel.as_posix())
        return sorted(found)


def _folder_watermark(watermark: Mapping[str, Any] | None) -> dict[str, str]:
    if not watermark:
        return {}
    files = watermark.get("files")
    if not isinstance(files, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in files.items()
    ):
        raise DataSourceError(
            f'folder watermark must look like {{"files": {{path: sha256}}}}; got {watermark!r}'
        )
    return dict(files)


def _read_csv(data: bytes, file: Path) -> pd.DataFrame:
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataSourceError(
            f"{file} is not valid UTF-8: byte 0x{data[exc.start]:02x} at byte offset "
            f"{exc.start} (line {line}): {exc.reason}"
        ) from exc
    if not decoded.strip():
        return pd.DataFrame()  # an empty file is an empty batch; the contract rejects it
    try:
        return pd.read_csv(io.StringIO(decoded.removeprefix("\ufeff")), low_memory=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise DataSourceError(f"cannot parse CSV {file}: {exc}") from exc


def _read_parquet(data: bytes, file: Path) -> pd.DataFrame:
    try:
        frame: pd.DataFrame = pq.read_table(io.BytesIO(data)).to_pandas()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataSourceError(f"cannot read Parquet {file}: {exc}") from exc
    return frame
