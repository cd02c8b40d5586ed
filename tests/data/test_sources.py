"""Folder and SQL sources, watermarks, and the URI registry (real files and databases)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from retrainer.data.sources import (
    BatchRef,
    FolderSource,
    Source,
    SourceRegistry,
    SqlSource,
)
from retrainer.errors import DataSourceError

PG_URL = os.environ.get(
    "RETRAINER_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def write_parquet(path: Path, frame: pd.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


def ingest_all(source: Source, watermark: dict[str, Any] | None) -> dict[str, Any]:
    for ref in source.discover(watermark):
        watermark = source.advance(watermark, ref, source.read(ref))
    assert watermark is not None
    return watermark


# --- folder source -------------------------------------------------------------------


def test_folder_discovers_every_file_ordered_by_relative_path(tmp_path: Path) -> None:
    write_csv(tmp_path / "b.csv", pd.DataFrame({"x": [2]}))
    write_parquet(tmp_path / "a.parquet", pd.DataFrame({"x": [1]}))
    write_csv(tmp_path / "2024" / "01.csv", pd.DataFrame({"x": [3]}))
    source = FolderSource(tmp_path, {"parquet", "csv"})

    refs = source.discover(None)

    assert [r.key for r in refs] == ["2024/01.csv", "a.parquet", "b.csv"]
    assert all(r.source_uri == source.uri and len(r.fingerprint or "") == 64 for r in refs)
    assert [source.read(r)["x"].tolist() for r in refs] == [[3], [1], [2]]


def test_folder_advanced_watermark_makes_next_discover_empty(tmp_path: Path) -> None:
    write_csv(tmp_path / "a.csv", pd.DataFrame({"x": [1]}))
    write_csv(tmp_path / "b.csv", pd.DataFrame({"x": [2]}))
    source = FolderSource(tmp_path, {"csv"})

    watermark = ingest_all(source, None)

    assert source.discover(watermark) == []
    assert json.loads(json.dumps(watermark)) == watermark
    assert set(watermark["files"]) == {"a.csv", "b.csv"}


def test_folder_discover_and_advance_do_not_mutate_the_watermark(tmp_path: Path) -> None:
    write_csv(tmp_path / "a.csv", pd.DataFrame({"x": [1]}))
    source = FolderSource(tmp_path, {"csv"})
    watermark: dict[str, object] = {"files": {}}
    ref = source.discover(watermark)[0]
    source.advance(watermark, ref, source.read(ref))
    assert watermark == {"files": {}}


def test_folder_new_file_is_a_new_batch(tmp_path: Path) -> None:
    write_csv(tmp_path / "a.csv", pd.DataFrame({"x": [1]}))
    source = FolderSource(tmp_path, {"csv"})
    watermark = ingest_all(source, None)

    write_csv(tmp_path / "b.csv", pd.DataFrame({"x": [2]}))

    assert [r.key for r in source.discover(watermark)] == ["b.csv"]


def test_folder_rewritten_file_reappears_as_a_new_batch(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", pd.DataFrame({"x": [1]}))
    source = FolderSource(tmp_path, {"csv"})
    watermark = ingest_all(source, None)
    old = watermark["files"]["a.csv"]

    write_csv(path, pd.DataFrame({"x": [1, 2]}))
    refs = source.discover(watermark)

    assert [r.key for r in refs] == ["a.csv"]
    assert refs[0].fingerprint != old
    assert source.read(refs[0])["x"].tolist() == [1, 2]


def test_folder_ignores_hidden_temp_and_underscore_files(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [1]})
    for name in [".hidden.csv", "_partial.csv", "b.csv.tmp", "c.tmp", "notes.txt"]:
        write_csv(tmp_path / name, frame)
    write_csv(tmp_path / ".cache" / "d.csv", frame)
    write_csv(tmp_path / "_staging" / "e.csv", frame)
    write_csv(tmp_path / "kept.csv", frame)

    refs = FolderSource(tmp_path, {"csv", "parquet"}).discover(None)

    assert [r.key for r in refs] == ["kept.csv"]


def test_folder_formats_select_files(tmp_path: Path) -> None:
    write_csv(tmp_path / "a.csv", pd.DataFrame({"x": [1]}))
    write_parquet(tmp_path / "b.parquet", pd.DataFrame({"x": [1]}))
    assert [r.key for r in FolderSource(tmp_path, {"parquet"}).discover(None)] == ["b.parquet"]
    assert [r.key for r in FolderSource(tmp_path, {"csv"}).discover(None)] == ["a.csv"]
    with pytest.raises(DataSourceError, match="json"):
        FolderSource(tmp_path, {"json"})


def test_folder_ignores_symlinks_that_leave_the_folder(tmp_path: Path) -> None:
    outside = write_csv(tmp_path / "outside" / "secret.csv", pd.DataFrame({"x": [1]}))
    root = tmp_path / "data"
    write_csv(root / "a.csv", pd.DataFrame({"x": [1]}))
    (root / "link.csv").symlink_to(outside)
    assert [r.key for r in FolderSource(root, {"csv"}).discover(None)] == ["a.csv"]


def test_folder_missing_raises_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such"
    with pytest.raises(DataSourceError, match="does not exist") as info:
        FolderSource(missing, {"csv"}).discover(None)
    assert str(missing) in str(info.value)


def test_folder_malformed_watermark_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="folder watermark"):
        FolderSource(tmp_path, {"csv"}).discover({"time": "2020-01-01"})


def test_csv_with_invalid_utf8_names_file_and_byte_offset(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(b"a,b\n1,caf\xe9\n")  # latin-1 e-acute at byte offset 9
    source = FolderSource(tmp_path, {"csv"})
    with pytest.raises(DataSourceError) as info:
        source.read(source.discover(None)[0])
    message = str(info.value)
    assert str(path) in message
    assert "byte offset 9" in message
    assert "line 2" in message


def test_csv_parse_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("a,b\n1,2\n3,4,5,6\n", encoding="utf-8")
    source = FolderSource(tmp_path, {"csv"})
    with pytest.raises(DataSourceError, match="cannot parse CSV") as info:
        source.read(source.discover(None)[0])
    assert str(path) in str(info.value)


def test_csv_values_are_not_coerced(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x,y\n1,a\n12a,b\n3,c\n", encoding="utf-8")
    source = FolderSource(tmp_path, {"csv"})
    frame = source.read(source.discover(None)[0])
    assert frame["x"].tolist() == ["1", "12a", "3"]
    assert not pd.api.types.is_numeric_dtype(frame["x"])


def test_empty_csv_file_reads_as_an_empty_frame(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_bytes(b"")
    source = FolderSource(tmp_path, {"csv"})
    assert source.read(source.discover(None)[0]).empty


def test_corrupt_parquet_names_the_file(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "a.parquet", pd.DataFrame({"x": range(100)}))
    data = bytearray(path.read_bytes())
    path.write_bytes(bytes(data[: len(data) // 2]) + b"garbage")
    source = FolderSource(tmp_path, {"parquet"})
    with pytest.raises(DataSourceError, match="cannot read Parquet") as info:
        source.read(source.discover(None)[0])
    assert str(path) in str(info.value)


def test_read_refuses_a_file_changed_since_discovery(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", pd.DataFrame({"x": [1]}))
    source = FolderSource(tmp_path, {"csv"})
    ref = source.discover(None)[0]
    write_csv(path, pd.DataFrame({"x": [1, 2]}))
    with pytest.raises(DataSourceError, match="changed since it was discovered"):
        source.read(ref)


# --- registry ------------------------------------------------------------------------


def test_registry_builds_folder_sources_from_uris(tmp_path: Path) -> None:
    registry = SourceRegistry.default()
    cases = {
        "parquet://data/batches/": (tmp_path / "data/batches", {"parquet"}),
        "csv://data": (tmp_path / "data", {"csv"}),
        f"file://{tmp_path}/abs": (tmp_path / "abs", {"parquet", "csv"}),
        "relative/dir": (tmp_path / "relative/dir", {"parquet", "csv"}),
        str(tmp_path / "plain"): (tmp_path / "plain", {"parquet", "csv"}),
    }
    for uri, (path, formats) in cases.items():
        source = registry.build(uri, base_dir=tmp_path)
        assert isinstance(source, FolderSource), uri
        assert (source.path, set(source.formats), source.uri) == (path, formats, uri)


def test_registry_unknown_scheme_lists_the_known_schemes(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError) as info:
        SourceRegistry.default().build("ftp://host/data", base_dir=tmp_path)
    message = str(info.value)
    assert "'ftp://'" in message
    for scheme in ["parquet://", "csv://", "file://", "sqlite://", "postgresql://"]:
        assert scheme in message


def test_registry_sql_schemes_by_dialect_base_name(tmp_path: Path) -> None:
    registry = SourceRegistry.default()
    source = registry.build(
        "postgresql+psycopg://u:pw@db.example/x", base_dir=tmp_path, query="t", time_column="ts"
    )
    assert isinstance(source, SqlSource)
    assert "pw" not in source.uri and "***" in source.uri
    with pytest.raises(DataSourceError, match="time_column"):
        registry.build("sqlite:///x.db", base_dir=tmp_path, query="t")


def test_registry_resolves_relative_sqlite_paths_against_base_dir(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'rel.db'}")
    pd.DataFrame({"ts": [1, 2]}).to_sql("t", engine, index=False)
    engine.dispose()
    source = SourceRegistry.default().build(
        "sqlite:///rel.db", base_dir=tmp_path, query="t", time_column="ts"
    )
    assert source.uri == f"sqlite:///{tmp_path / 'rel.db'}"
    assert len(source.discover(None)) == 1


def test_registry_accepts_third_party_schemes(tmp_path: Path) -> None:
    registry = SourceRegistry.default()

    def build(uri: str, *, base_dir: Path, query: str | None, time_column: str | None) -> Source:
        return FolderSource(base_dir / uri.partition("://")[2], {"csv"}, uri=uri)

    registry.register("mystore", build)
    assert "mystore" in registry.known_schemes()
    assert registry.build("mystore://x", base_dir=tmp_path).uri == "mystore://x"
    with pytest.raises(ValueError, match="already registered"):
        registry.register("mystore", build)
    assert "mystore" not in SourceRegistry.default().known_schemes()  # no global state


# --- SQL source ----------------------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    engine = sa.create_engine(url)
    pd.DataFrame(
        {
            "event time": pd.to_datetime(["2020-01-02", "2020-01-01", "2020-01-03"]),
            "x": [2, 1, 3],
            "note": ["b", "a:b", " :c"],
        }
    ).to_sql("events", engine, index=False)
    engine.dispose()
    yield url


def append_sqlite(url: str, frame: pd.DataFrame) -> None:
    engine = sa.create_engine(url)
    frame.to_sql("events", engine, index=False, if_exists="append")
    engine.dispose()


def test_sql_watermark_reads_only_new_rows_in_time_order(sqlite_url: str) -> None:
    source = SqlSource(sqlite_url, "events", "event time")

    refs = source.discover(None)
    assert len(refs) == 1 and refs[0].fingerprint is None
    first = source.read(refs[0])
    assert first["x"].tolist() == [1, 2, 3]
    watermark = source.advance(None, refs[0], first)
    assert json.loads(json.dumps(watermark)) == watermark
    assert source.discover(watermark) == []

    append_sqlite(
        sqlite_url,
        pd.DataFrame(
            {
                "event time": pd.to_datetime(["2020-01-05", "2020-01-02", "2020-01-04"]),
                "x": [5, 0, 4],
                "note": ["e", "late", "d"],
            }
        ),
    )
    refs = source.discover(watermark)
    assert len(refs) == 1 and refs[0].key.startswith("event time > 2020-01-03")
    second = source.read(refs[0])
    assert second["x"].tolist() == [4, 5]  # the late row at or before the watermark is not re-read
    assert source.discover(source.advance(watermark, refs[0], second)) == []


def test_sql_select_query_keeps_colons_literal(sqlite_url: str) -> None:
    source = SqlSource(sqlite_url, "SELECT * FROM events WHERE note != ' :zz';", "event time")
    frame = source.read(source.discover(None)[0])
    assert frame["note"].tolist() == ["a:b", "b", " :c"]


def test_sql_integer_time_column_and_null_times(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'n.db'}"
    engine = sa.create_engine(url)
    pd.DataFrame({"t": [3, None, 1], "v": [30.0, 0.0, 10.0]}).to_sql("m", engine, index=False)
    engine.dispose()
    source = SqlSource(url, "m", "t")
    frame = source.read(source.discover(None)[0])
    assert frame["v"].tolist() == [10.0, 30.0]  # NULL time is never read
    watermark = source.advance(None, source.discover(None)[0], frame)
    assert watermark["time"] in ("3", "3.0")
    assert source.discover(watermark) == []


def test_sql_rejects_a_query_that_is_not_a_table_or_select(sqlite_url: str) -> None:
    for query in ["events; DROP TABLE events", "DELETE FROM events", "a.b.c"]:
        with pytest.raises(DataSourceError, match="table name or a SELECT"):
            SqlSource(sqlite_url, query, "event time")


def test_sql_rejects_a_watermark_of_another_shape(sqlite_url: str) -> None:
    with pytest.raises(DataSourceError, match="SQL watermark"):
        SqlSource(sqlite_url, "events", "event time").discover({"files": {}})


def test_sql_error_names_the_url(sqlite_url: str) -> None:
    with pytest.raises(DataSourceError, match="no such table") as info:
        SqlSource(sqlite_url, "missing_table", "event time").discover(None)
    assert sqlite_url in str(info.value)


def test_sql_password_is_masked_in_errors(tmp_path: Path) -> None:
    # port 1 on loopback: nothing listens there, the connection is refused at once
    source = SqlSource("postgresql+psycopg://alice:s3cret-pw@127.0.0.1:1/db", "t", "ts")
    with pytest.raises(DataSourceError) as info:
        source.discover(None)
    message = str(info.value)
    assert "s3cret-pw" not in message and "s3cret-pw" not in repr(source)
    assert "alice:***@127.0.0.1:1/db" in message
    assert "s3cret-pw" not in source.uri
    with pytest.raises(DataSourceError) as info:
        SourceRegistry.default().build(
            "mysql+nodriver://bob:hunter2@h/db", base_dir=tmp_path, query="t", time_column="ts"
        )
    assert "hunter2" not in str(info.value)


@pytest.fixture
def pg_table() -> Iterator[tuple[sa.Engine, str]]:
    engine = sa.create_engine(PG_URL)
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as exc:
        engine.dispose()
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {str(exc.orig).splitlines()[0]}")
    name = f"retrainer_test_{uuid.uuid4().hex[:12]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE TABLE "{name}" (ts timestamptz, v double precision)'))
    try:
        yield engine, name
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP TABLE IF EXISTS "{name}"'))
        engine.dispose()


@pytest.mark.postgres
def test_sql_watermark_on_postgresql(pg_table: tuple[sa.Engine, str]) -> None:
    engine, table = pg_table

    def insert(*rows: tuple[datetime, float]) -> None:
        with engine.begin() as conn:
            conn.execute(
                sa.text(f'INSERT INTO "{table}" (ts, v) VALUES (:ts, :v)'),
                [{"ts": ts, "v": v} for ts, v in rows],
            )

    insert((datetime(2020, 1, 2, tzinfo=UTC), 2.0), (datetime(2020, 1, 1, tzinfo=UTC), 1.0))
    source = SqlSource(PG_URL, table, "ts")
    ref = source.discover(None)[0]
    frame = source.read(ref)
    assert frame["v"].tolist() == [1.0, 2.0]
    watermark = source.advance(None, ref, frame)
    assert watermark == {"time": "2020-01-02T00:00:00+00:00", "time_type": "datetime"}
    assert source.discover(watermark) == []

    insert((datetime(2020, 1, 2, 0, 0, 1, tzinfo=UTC), 3.0))
    refs = source.discover(watermark)
    assert [r.key for r in refs] == ["ts > 2020-01-02T00:00:00+00:00"]
    assert source.read(refs[0])["v"].tolist() == [3.0]


def test_batch_ref_is_immutable() -> None:
    ref = BatchRef("file:///x", "a.csv", "0" * 64)
    with pytest.raises(AttributeError):
        ref.key = "b.csv"  # type: ignore[misc]
