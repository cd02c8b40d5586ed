"""SQL sources: new rows of a table or query past a time watermark.

The watermark is ``{"time": <ISO string>, "time_type": <how to bind it back>}``;
see :class:`SqlSource`. Any SQLAlchemy dialect in :data:`SQL_DIALECTS` is accepted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

import pandas as pd
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

from retrainer.data.batch import BatchRef
from retrainer.errors import DataSourceError
from retrainer.registry.db import safe_url

__all__ = ["SQL_DIALECTS", "SqlSource", "parse_sql_url"]

SQL_DIALECTS = frozenset({"sqlite", "postgresql", "mysql", "mariadb", "mssql", "oracle", "duckdb"})
_SAFE_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
# a ":name" that SQLAlchemy's text() would take for a bind parameter
_TEXT_BIND = re.compile(r"(?<![:\w\\]):(?=\w)")


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
        self._url = parse_sql_url(url)
        self.uri = safe_url(self._url)
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


def parse_sql_url(url: str) -> URL:
    """``url`` parsed; plain ``postgresql://`` gets the psycopg (v3) driver.

    Raises:
        DataSourceError: not a database URL (the message masks any password).
    """
    try:
        parsed = make_url(url)
    except SQLAlchemyError as exc:
        # safe_url() cannot parse it either (it would print "<unparseable URL>"),
        # so mask the userinfo password textually and keep the rest for the user.
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
