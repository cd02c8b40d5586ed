"""Store contract, promotion: refused attempts are audited; rollback walks back (FT-01)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import select

from retrainer.errors import ConflictError, NotFoundError, PolicyError, RetrainerError
from retrainer.registry import (
    ANY,
    CHAMPION,
    Database,
    Registry,
    previous_champion,
    promote,
    rollback,
    verify_chain,
)
from retrainer.registry.tables import AuditEvent

SHA = "ab" * 32
CEST = timezone(timedelta(hours=2))


class Clock:
    """A +02:00 clock that ticks one second per reading (so every event has its own time)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 6, 1, 14, 0, tzinfo=CEST)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def reg(db: Database) -> Registry:
    return Registry(Database(db.engine, clock=Clock()))


def _candidate(reg: Registry, *, passed: bool = True) -> int:
    version = reg.create_version("rain", run_id=None, actor="trainer", params={}, lineage={})
    reg.attach_artifact("rain", version, SHA, actor="trainer")
    reg.mark_ready("rain", version, metrics={}, decision={"passed": passed}, actor="trainer")
    return version


def _events(db: Database) -> list[AuditEvent]:
    with db.session() as s:
        return list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def _chain_ok(db: Database) -> bool:
    with db.session() as s:
        return verify_chain(s).ok


# --- refused promotions are audited ------------------------------------------------------


def _pending(reg: Registry) -> int:
    return reg.create_version("rain", run_id=None, actor="t", params={}, lineage={})


def _failed(reg: Registry) -> int:
    version = _pending(reg)
    reg.set_status("rain", version, "FAILED", actor="t", reason="crash")
    return version


def _quarantined(reg: Registry) -> int:
    version = _candidate(reg)
    reg.set_status("rain", version, "QUARANTINED", actor="t", reason="leak")
    return version


def _gates_failed(reg: Registry) -> int:
    return _candidate(reg, passed=False)


def _missing(reg: Registry) -> int:
    return 99


REFUSALS: dict[str, tuple[Callable[[Registry], int], type[RetrainerError], str]] = {
    "pending": (_pending, PolicyError, "is PENDING; only READY"),
    "failed": (_failed, PolicyError, "is FAILED; only READY"),
    "quarantined": (_quarantined, PolicyError, "is QUARANTINED; only READY"),
    "gates failed": (_gates_failed, PolicyError, "no decision record whose gates all passed"),
    "missing": (_missing, NotFoundError, "has no version 99"),
}


@pytest.mark.parametrize("kind", list(REFUSALS))
def test_a_refused_promotion_is_audited_and_the_error_raised(
    reg: Registry, db: Database, kind: str
) -> None:
    champion = _candidate(reg)
    promote(reg, "rain", champion, actor="alice", reason="first", expected=None)
    make, error, message = REFUSALS[kind]
    target = make(reg)
    before = _events(db)

    with pytest.raises(error, match=message) as info:
        promote(reg, "rain", target, actor="mallory", reason="ship it", expected=champion)

    assert type(info.value) is error  # the original error, unchanged
    assert reg.get_alias("rain", CHAMPION) == champion
    assert len(reg.history("rain", CHAMPION)) == 1
    new = _events(db)[len(before) :]
    assert [(e.action, e.actor, e.subject) for e in new] == [
        ("promote.refused", "mallory", f"rain:{target}")
    ]
    assert new[0].payload == {
        "model": "rain",
        "from": champion,
        "to": target,
        "expected": champion,
        "reason": str(info.value),
        "code": error.code,
        "requested_reason": "ship it",
    }
    assert _chain_ok(db)


def test_a_lost_compare_and_swap_is_audited(reg: Registry, db: Database) -> None:
    v1, v2, v3 = _candidate(reg), _candidate(reg), _candidate(reg)
    promote(reg, "rain", v1, actor="alice", reason="first", expected=None)
    promote(reg, "rain", v2, actor="alice", reason="better", expected=v1)

    with pytest.raises(ConflictError, match=f"now version {v2}, not version {v1}"):
        promote(reg, "rain", v3, actor="bob", reason="stale view", expected=v1)
    with pytest.raises(ConflictError, match="not unset as expected"):
        promote(reg, "rain", v3, actor="carol", reason="first?", expected=None)

    refused = [e for e in _events(db) if e.action == "promote.refused"]
    assert [(e.actor, e.subject, e.payload["expected"], e.payload["code"]) for e in refused] == [
        ("bob", f"rain:{v3}", v1, "CONFLICT"),
        ("carol", f"rain:{v3}", None, "CONFLICT"),
    ]
    assert all(e.payload["from"] == v2 for e in refused)
    assert reg.get_alias("rain", CHAMPION) == v2


def test_both_attempts_are_audited_and_the_chain_verifies(reg: Registry, db: Database) -> None:
    """FT-01: a refused and a successful promotion of the same version, both on record."""
    v1, v2 = _candidate(reg), _candidate(reg)
    promote(reg, "rain", v1, actor="alice", reason="first", expected=None)

    with pytest.raises(ConflictError):
        promote(reg, "rain", v2, actor="bob", reason="try", expected=None)
    move = promote(reg, "rain", v2, actor="bob", reason="again", expected=v1)

    assert (move.from_version, move.to_version) == (v1, v2)
    attempts = [
        (e.action, e.actor, e.payload["to"])
        for e in _events(db)
        if e.action in ("promote", "promote.refused") and e.actor == "bob"
    ]
    assert attempts == [("promote.refused", "bob", v2), ("promote", "bob", v2)]
    assert _chain_ok(db)


def test_promotion_with_any_expected_records_any(reg: Registry, db: Database) -> None:
    version = _gates_failed(reg)
    with pytest.raises(PolicyError):
        promote(reg, "rain", version, actor="a", reason="r", expected=ANY)
    (event,) = [e for e in _events(db) if e.action == "promote.refused"]
    assert (event.payload["from"], event.payload["expected"]) == (None, "any")


# --- rollback walks the champion's lineage backwards -------------------------------------


def _champions(reg: Registry, n: int) -> list[int]:
    """``n`` versions promoted one after the other; returns them in order."""
    versions: list[int] = []
    for _ in range(n):
        version = _candidate(reg)
        promote(
            reg,
            "rain",
            version,
            actor="a",
            reason=f"v{version}",
            expected=versions[-1] if versions else None,
        )
        versions.append(version)
    return versions


def _rollback_to(reg: Registry) -> int | None:
    return rollback(reg, "rain", actor="ops", reason="bad").to_version


def test_rolling_back_twice_walks_back_twice(reg: Registry, db: Database) -> None:
    v1, v2, v3 = _champions(reg, 3)

    assert previous_champion(reg, "rain") == v2
    assert _rollback_to(reg) == v2
    assert previous_champion(reg, "rain") == v1
    assert _rollback_to(reg) == v1
    assert previous_champion(reg, "rain") is None
    events = len(_events(db))
    with pytest.raises(NotFoundError, match=r"rain@champion \(version 1\) has no previous"):
        rollback(reg, "rain", actor="ops", reason="bad")

    assert reg.get_alias("rain", CHAMPION) == v1
    assert [(m.from_version, m.to_version) for m in reg.history("rain", CHAMPION)] == [
        (None, v1),
        (v1, v2),
        (v2, v3),
        (v3, v2),
        (v2, v1),
    ]
    assert len(_events(db)) == events
    assert _chain_ok(db)


def test_rollback_skips_champions_that_are_no_longer_ready(reg: Registry) -> None:
    v1, v2, v3, v4 = _champions(reg, 4)
    for version in (v3, v2):
        reg.set_status("rain", version, "QUARANTINED", actor="auditor", reason="leak")
    assert previous_champion(reg, "rain") == v1
    move = rollback(reg, "rain", actor="ops", reason="bad")
    assert (move.from_version, move.to_version) == (v4, v1)
    with pytest.raises(NotFoundError, match="no previous champion"):
        rollback(reg, "rain", actor="ops", reason="bad")


def test_rollback_with_only_unservable_earlier_champions_says_which(reg: Registry) -> None:
    v1, v2, v3 = _champions(reg, 3)
    reg.set_status("rain", v2, "QUARANTINED", actor="auditor", reason="leak")
    reg.set_status("rain", v1, "QUARANTINED", actor="auditor", reason="leak")
    with pytest.raises(NotFoundError) as info:
        rollback(reg, "rain", actor="ops", reason="bad")
    assert str(info.value) == (
        f"rain@champion (version {v3}) has no previous champion to roll back to "
        f"(version {v2} is QUARANTINED; version {v1} is QUARANTINED)"
    )
    assert reg.get_alias("rain", CHAMPION) == v3


def test_a_rolled_back_version_is_never_rolled_forward_to(reg: Registry) -> None:
    v1, v2, v3 = _champions(reg, 3)
    assert _rollback_to(reg) == v2
    v4 = _candidate(reg)
    promote(reg, "rain", v4, actor="a", reason="retrained", expected=v2)
    assert previous_champion(reg, "rain") == v2  # not v3, which was rolled back
    assert _rollback_to(reg) == v2
    assert _rollback_to(reg) == v1
    assert v3 not in [m.to_version for m in reg.history("rain", CHAMPION)[3:]]


def test_promoting_an_earlier_champion_again_rewinds_the_lineage(reg: Registry) -> None:
    v1, v2, v3 = _champions(reg, 3)
    promote(reg, "rain", v2, actor="a", reason="v3 was bad", expected=v3)
    assert previous_champion(reg, "rain") == v1
    v4 = _candidate(reg)
    promote(reg, "rain", v4, actor="a", reason="retrained", expected=v2)
    assert _rollback_to(reg) == v2
    assert _rollback_to(reg) == v1


def test_rollback_without_a_champion_names_the_model(reg: Registry) -> None:
    _candidate(reg)
    with pytest.raises(NotFoundError, match="model 'rain' has no champion"):
        rollback(reg, "rain", actor="ops", reason="bad")
    assert previous_champion(reg, "rain") is None
    assert previous_champion(reg, "snow") is None


def test_history_and_audit_times_are_utc_with_a_non_utc_clock(reg: Registry, db: Database) -> None:
    _champions(reg, 2)
    rollback(reg, "rain", actor="ops", reason="bad")
    times: list[Any] = [m.at for m in reg.history("rain", CHAMPION)]
    times += [e.at for e in _events(db)]
    assert all(t.utcoffset() == timedelta(0) for t in times)
    assert times[0] > datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    assert max(times) < datetime(2026, 6, 1, 12, 5, tzinfo=UTC)
    assert _chain_ok(db)
