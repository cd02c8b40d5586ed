"""Data sources: where new batches come from, and how far ingestion has got.

A :class:`Source` turns "what is new since the watermark" into a list of
:class:`BatchRef`, reads one batch as a DataFrame, and computes the next watermark.
Watermarks are plain JSON-serialisable dicts owned by the caller (the cycle runner
stores them); sources never persist anything themselves.

Backends are chosen by URI through an explicit :class:`SourceRegistry` built by the
composition root; there is no import-time global registry. The backends live in
:mod:`retrainer.data.folder` and :mod:`retrainer.data.sql`, the shared types in
:mod:`retrainer.data.batch`; all are re-exported here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol

from retrainer.data.batch import BatchRef, Source
from retrainer.data.folder import FolderSource
from retrainer.data.sql import SQL_DIALECTS, SqlSource, parse_sql_url
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

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*$")


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
    url = parse_sql_url(uri)
    db = url.database
    file_based = url.get_backend_name() in ("sqlite", "duckdb")
    if file_based and db and db != ":memory:" and not db.startswith("file:"):
        url = url.set(database=str(base_dir / Path(db).expanduser()))  # no-op when absolute
    return SqlSource(url.render_as_string(hide_password=False), query, time_column)
