"""Store contract, timestamps: every datetime column keeps the instant, whatever the offset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import DateTime, select, text
from sqlalchemy.exc import StatementError

from retrainer.registry import Database
from retrainer.registry.tables import Base, Lease, UTCDateTime

NOON_UTC = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
OFFSETS = [timedelta(hours=2), timedelta(hours=-5), timedelta(hours=5, minutes=30), timedelta(0)]


def test_every_datetime_column_is_utc_datetime() -> None:
    types = {
        f"{table.name}.{column.name}": column.type
        for table in Base.metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, DateTime | UTCDateTime)
    }
    assert len(types) == 27  # a new table with times must be counted here, on purpose
    assert [name for name, kind in types.items() if not isinstance(kind, UTCDateTime)] == []


@pytest.mark.parametrize("offset", OFFSETS, ids=str)
def test_an_aware_time_reads_back_as_the_same_instant_in_utc(
    db: Database, offset: timedelta
) -> None:
    local = NOON_UTC.astimezone(timezone(offset))
    with db.session() as s:
        s.add(Lease(name="l", holder="h", token=1, expires_at=local))
    with db.session() as s:
        row = s.get(Lease, "l")
        assert row is not None
        assert row.expires_at == NOON_UTC
        assert row.expires_at.utcoffset() == timedelta(0)
    with db.engine.connect() as conn:
        raw = conn.execute(text("SELECT expires_at FROM leases")).scalar_one()
    if db.dialect == "sqlite":
        assert raw == "2026-03-01 12:00:00.123456"  # UTC wall time, not the local one
    else:
        assert raw == NOON_UTC


@pytest.mark.parametrize("offset", OFFSETS, ids=str)
def test_comparisons_in_queries_use_the_instant(db: Database, offset: timedelta) -> None:
    with db.session() as s:
        s.add(Lease(name="l", holder="h", token=1, expires_at=NOON_UTC))
    zone = timezone(offset)
    just_before = (NOON_UTC - timedelta(seconds=1)).astimezone(zone)
    just_after = (NOON_UTC + timedelta(seconds=1)).astimezone(zone)
    with db.session() as s:
        assert s.scalar(select(Lease.name).where(Lease.expires_at > just_before)) == "l"
        assert s.scalar(select(Lease.name).where(Lease.expires_at > just_after)) is None
        assert s.scalar(select(Lease.name).where(Lease.expires_at == NOON_UTC.astimezone(zone)))


def test_a_naive_time_is_refused(db: Database) -> None:
    with pytest.raises(StatementError, match="timezone-aware") as info, db.session() as s:
        s.add(Lease(name="l", holder="h", token=1, expires_at=datetime(2026, 3, 1, 12)))
        s.flush()
    assert isinstance(info.value.orig, ValueError)
    with db.session() as s:
        assert s.get(Lease, "l") is None
