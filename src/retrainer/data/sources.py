"""Data sources: where new batches come from, and how far ingestion has got.

A :class:`Source` turns "what is new since the watermark" into a list of
:class:`BatchRef`, reads one batch as a DataFrame, and computes the next watermark.
Watermarks are plain JSON-serialisable dicts owned by the caller (the cycle runner
stores them); sources never persist anything themselves.

Backends are chosen by URI through an explicit :class:`SourceRegistry` built by the
composition root; there is no import-time global registry.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import (
    ColumnElement,
    Select,
    bindparam,
    column,
    create_engine,
    literal_column,
    select,
    text,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from retrainer.errors import DataSourceError

__all__ = [
    "SQL_DIALECTS",
    "BatchRef",
    "FolderSource",
    "Source",
    "SourceBuilder",
    "SourceRegistry",
    "SqlSource",
]

log = logging.getLogger(__name__)

SQL_DIALECTS = frozenset({"sqlite", "postgresql", "mysql", "mariadb", "mssql", "oracle", "duckdb"})
_FORMATS = {"parquet": (".parquet",), "csv": (".csv",)}
_SAFE_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*$")
# a ":name" that SQLAlchemy's text() would take for a bind parameter
_TEXT_BIND = re.compile(r"(?<![:\w\\]):(?=\w)")


@dataclass(frozen=True)
class BatchRef:
    """One batch of new data, as discovered by a source.

    Attributes:
        source_uri: The URI of the source (passwords masked), for lineage.
        key: Folder sources: the file path relative to the folder (posix).
            SQL sources: the condition that selects the rows, e.g. ``"date > 2020-01-01"``.
        fingerprint: Folder sources: sha256 of the file bytes. SQL sources: ``None``.
    """

    source_uri: str
    key: str
    fingerprint: str | None


class Source(Protocol):
    """Where batches come from.

    Implementations hold no ingestion state: the watermark is passed in and out as a
    JSON-serialisable dict. ``discover`` and ``read`` have no side effects on the data
    or the watermark; both raise :class:`DataSourceError` when the source cannot be read.
    """

    uri: str

    def discover(self, watermark: Mapping[str, Any] | None) -> list[BatchRef]:
        """New batches since the watermark, oldest first. Does not mutate anything."""
        ...

    def read(self, ref: BatchRef) -> pd.DataFrame:
        """The rows of ``ref``, exactly as stored (no value is silently coerced)."""
        ...

    def advance(
        self, watermark: Mapping[str, Any] | None, ref: BatchRef, frame: pd.DataFrame
    ) -> dict[str, Any]:
        """The JSON-serialisable watermark after `ref` was ingested (pure function)."""
        ...


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


class SqlSource:
    """New rows of a SQL table or query, past a time watermark.

    ``query`` is a table name (``name`` or ``schema.name``) or a ``SELECT``/``WITH``
    statement. New rows are those with ``time_column`` greater than the watermark,
    ordered by it; rows whose time is NULL are never read. The watermark is
    ``{"time": <max time read, ISO string>, "time_type": <how to bind it back>}``.
    Rows inserted later with a time at or below the watermark are not picked up.
    A connection is opened per call and closed after it (no pool is kept).
    """

    def __init__(self, url: str, query: str, time_column: str) -> None:
        self._url = _parse_url(url)
        self.uri = self._url.render_as_string(hide_password=True)
        self.time_column = time_column
        with self._errors():
            self._engine = create_engine(self._url, poolclass=NullPool)
        preparer = self._engine.dialect.identifier_preparer
        stripped = query.strip().rstrip(";").strip()
        if _SAFE_TABLE.match(stripped):
            inner = "SELECT * FROM " + ".".join(preparer.quote(p) for p in stripped.split("."))
        elif re.match(r"(?is)^(select|with)\b", stripped):
            inner = _TEXT_BIND.sub(r"\\:", stripped)
        else:
            raise DataSourceError(
                f"SQL source query must be a table name or a SELECT statement; got {query!r}"
            )
        self._subquery = text(inner).columns(column(time_column)).subquery("q")

    def __repr__(self) -> str:
        return f"SqlSource({self.uri!r}, time_column={self.time_column!r})"

    def discover(self, watermark: Mapping[str, Any] | None) -> list[BatchRef]:
        """One batch when rows newer than the watermark exist, else none.

        Raises:
            DataSourceError: the database cannot be queried (URL shown without password).
        """
        where, key = self._where(watermark)
        stmt: Select[Any] = (
            select(literal_column("1")).select_from(self._subquery).where(where).limit(1)
        )
        with self._errors(), self._engine.connect() as conn:
            found = conn.execute(stmt).first() is not None
        return [BatchRef(self.uri, key, None)] if found else []

    def read(self, ref: BatchRef) -> pd.DataFrame:
        """The rows past the watermark in ``ref``, by time, values as the driver returns them."""
        where, _ = self._where(_watermark_from_key(ref.key, self.time_column))
        stmt: Select[Any] = (
            select(literal_column("*"))
            .select_from(self._subquery)
            .where(where)
            .order_by(self._subquery.c[self.time_column])
        )
        with self._errors(), self._engine.connect() as conn:
            result = conn.execute(stmt)
            names = list(result.keys())
            rows = [tuple(row) for row in result]
        return pd.DataFrame.from_records(rows, columns=names)

    def advance(
        self, watermark: Mapping[str, Any] | None, ref: BatchRef, frame: pd.DataFrame
    ) -> dict[str, Any]:
        """``{"time": max time in frame, "time_type": ...}``; unchanged when ``frame`` is empty."""
        if self.time_column not in frame.columns:
            raise DataSourceError(f"batch from {self.uri} has no time column {self.time_column!r}")
        times = frame[self.time_column].dropna()
        if times.empty:
            return dict(watermark or {})
        return _encode_time(times.max())

    def _where(self, watermark: Mapping[str, Any] | None) -> tuple[ColumnElement[bool], str]:
        col = self._subquery.c[self.time_column]
        if not watermark:
            return col.is_not(None), f"{self.time_column} > (start)"
        if "time" not in watermark:
            raise DataSourceError(
                f'SQL watermark must look like {{"time": ...}}; got {watermark!r}'
            )
        value = _decode_time(watermark)
        return col > bindparam("wm", value), _key_from_watermark(watermark, self.time_column)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """SQLAlchemy errors -> DataSourceError naming the URL, password masked."""
        try:
            yield
        except SQLAlchemyError as exc:
            detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            if self._url.password:
                detail = detail.replace(str(self._url.password), "***")
            raise DataSourceError(f"cannot query {self.uri}: {detail}") from exc


def _parse_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except SQLAlchemyError as exc:
        masked = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)
        raise DataSourceError(f"not a database URL: {masked}") from exc
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _encode_time(value: Any) -> dict[str, Any]:
    if isinstance(value, pd.Timestamp | datetime):
        return {"time": value.isoformat(), "time_type": "datetime"}
    if isinstance(value, date):
        return {"time": value.isoformat(), "time_type": "date"}
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        if hasattr(value, "item"):  # numpy scalar
            return _encode_time(value.item())
        raise DataSourceError(f"unsupported time value {value!r} ({type(value).__name__})")
    kind = "str" if isinstance(value, str) else "int" if isinstance(value, int) else "float"
    return {"time": str(value), "time_type": kind}


_TIME_DECODERS: dict[str, Callable[[str], Any]] = {
    "datetime": datetime.fromisoformat,
    "date": date.fromisoformat,
    "int": int,
    "float": float,
    "str": str,
}
_KEY_KIND = re.compile(r"(.*) \((date|int|float|str)\)", re.S)


def _decode_time(watermark: Mapping[str, Any]) -> Any:
    try:
        return _TIME_DECODERS[watermark.get("time_type", "str")](watermark["time"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataSourceError(f"malformed SQL watermark {dict(watermark)!r}") from exc


def _key_from_watermark(watermark: Mapping[str, Any], time_column: str) -> str:
    """``"<col> > <time>"``, with `` (<type>)`` appended unless the type is datetime."""
    kind = watermark.get("time_type", "str")
    return f"{time_column} > {watermark['time']}" + ("" if kind == "datetime" else f" ({kind})")


def _watermark_from_key(key: str, time_column: str) -> dict[str, Any] | None:
    prefix = f"{time_column} > "
    if not key.startswith(prefix):
        raise DataSourceError(f"batch key {key!r} is not from this SQL source")
    rest = key.removeprefix(prefix)
    if rest == "(start)":
        return None
    match = _KEY_KIND.fullmatch(rest)
    return (
        {"time": match[1], "time_type": match[2]}
        if match
        else {"time": rest, "time_type": "datetime"}
    )


class SourceBuilder(Protocol):
    """Builds a source from its URI; registered per scheme in a :class:`SourceRegistry`."""

    def __call__(
        self, uri: str, *, base_dir: Path, query: str | None, time_column: str | None
    ) -> Source: ...


class SourceRegistry:
    """Maps URI schemes to source builders. Build one with :meth:`default` at start-up.

    A plain path (no ``scheme://``) is a folder of Parquet and CSV files. For
    ``scheme+driver://`` URIs the exact scheme is looked up first, then its base.
    """

    def __init__(self) -> None:
        self._builders: dict[str, SourceBuilder] = {}

    @classmethod
    def default(cls) -> SourceRegistry:
        """A registry with folder schemes (parquet, csv, file) and the SQL dialects."""
        registry = cls()
        registry.register("parquet", _folder_builder({"parquet"}))
        registry.register("csv", _folder_builder({"csv"}))
        registry.register("file", _folder_builder({"parquet", "csv"}))
        for dialect in sorted(SQL_DIALECTS):
            registry.register(dialect, _sql_builder)
        return registry

    def register(self, scheme: str, builder: SourceBuilder, *, replace: bool = False) -> None:
        """Register ``builder`` for ``scheme`` (lower case, without ``://``).

        Raises:
            ValueError: the scheme is malformed, or taken and ``replace`` is false.
        """
        if not _SCHEME.match(scheme):
            raise ValueError(f"scheme must match {_SCHEME.pattern}; got {scheme!r}")
        if scheme in self._builders and not replace:
            raise ValueError(f"scheme {scheme!r} is already registered")
        self._builders[scheme] = builder

    def known_schemes(self) -> list[str]:
        """The registered schemes, sorted."""
        return sorted(self._builders)

    def build(
        self,
        uri: str,
        *,
        base_dir: Path,
        query: str | None = None,
        time_column: str | None = None,
    ) -> Source:
        """The source for ``uri``; relative paths resolve against ``base_dir``.

        Raises:
            DataSourceError: the scheme is unknown (the known ones are listed), or a
                SQL source lacks ``query``/``time_column``.
        """
        scheme, sep, _ = uri.partition("://")
        if not sep:
            return _folder_builder({"parquet", "csv"})(
                uri, base_dir=base_dir, query=query, time_column=time_column
            )
        scheme = scheme.lower()
        builder = self._builders.get(scheme) or self._builders.get(scheme.split("+")[0])
        if builder is None:
            known = ", ".join(f"{s}://" for s in self.known_schemes())
            raise DataSourceError(
                f"unknown data source scheme {scheme + '://'!r} in {uri.split('@')[-1]!r}; "
                f"known schemes: {known}, or a plain folder path"
            )
        return builder(uri, base_dir=base_dir, query=query, time_column=time_column)


def _folder_builder(formats: set[str]) -> SourceBuilder:
    def build(
        uri: str, *, base_dir: Path, query: str | None, time_column: str | None
    ) -> FolderSource:
        rest = uri.partition("://")[2] if "://" in uri else uri
        path = Path(rest).expanduser()
        return FolderSource(path if path.is_absolute() else base_dir / path, formats, uri=uri)

    return build


def _sql_builder(
    uri: str, *, base_dir: Path, query: str | None, time_column: str | None
) -> SqlSource:
    if not query or not time_column:
        raise DataSourceError(
            f"a SQL data source needs both a query (table or SELECT) and a time_column; "
            f"got query={query!r}, time_column={time_column!r}"
        )
    url = _parse_url(uri)
    db = url.database
    file_based = url.get_backend_name() in ("sqlite", "duckdb")
    if file_based and db and db != ":memory:" and not db.startswith("file:"):
        url = url.set(database=str(base_dir / Path(db).expanduser()))  # no-op when absolute
    return SqlSource(url.render_as_string(hide_password=False), query, time_column)
