"""Store contract, aliases: compare-and-swap moves, promotion, rollback, history (FT-01)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, func, select, text

from retrainer.errors import ConflictError, NotFoundError, PolicyError
from retrainer.registry import (
    ANY,
    CHAMPION,
    AliasMove,
    Database,
    Registry,
    previous_champion,
    promote,
    rollback,
)
from retrainer.registry.tables import AuditEvent

SHA = "ab" * 32


@pytest.fixture
def reg(db: Database) -> Registry:
    return Registry(db)


def _candidate(reg: Registry, model: str = "rain", *, passed: bool | None = True) -> int:
    """A READY version; ``passed=None`` stores no decision record at all."""
    version = reg.create_version(model, run_id=None, actor="trainer", params={}, lineage={})
    reg.attach_artifact(model, version, SHA, actor="trainer")
    decision: dict[str, Any] = {} if passed is None else {"passed": passed, "gates": []}
    reg.mark_ready(model, version, metrics={}, decision=decision, actor="trainer")
    return version


def _state(reg: Registry, db: Database, model: str = "rain") -> tuple[Any, ...]:
    """Everything a refused move must leave unchanged (its own refusal record aside)."""
    with db.session() as s:
        events = s.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action != "promote.refused")
        )
        champions = s.scalar(
            text("SELECT count(*) FROM aliases WHERE model = :m AND alias = 'champion'"),
            {"m": model},
        )
    return reg.aliases(model), reg.history(model), events, champions


def _promote_events(db: Database, action: str = "promote") -> int:
    with db.session() as s:
        return int(
            s.scalar(
                select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action)
            )
            or 0
        )


# --- compare-and-swap --------------------------------------------------------------------


def test_first_promotion_expects_no_champion(reg: Registry, db: Database) -> None:
    version = _candidate(reg)
    move = promote(reg, "rain", version, actor="alice", reason="first", expected=None)
    assert (move.from_version, move.to_version, move.alias) == (None, version, CHAMPION)
    assert reg.get_alias("rain", CHAMPION) == version
    assert reg.resolve("rain").version == version
    with db.session() as s:
        last = s.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).one()
    assert (last.action, last.subject, last.actor) == ("promote", "rain@champion", "alice")
    assert last.payload == {"from": None, "to": version, "reason": "first", "sha256": SHA}


def test_expecting_no_champion_when_there_is_one_conflicts(reg: Registry, db: Database) -> None:
    first, second = _candidate(reg), _candidate(reg)
    promote(reg, "rain", first, actor="alice", reason="first", expected=None)
    before = _state(reg, db)
    with pytest.raises(ConflictError, match="rain@champion"):
        promote(reg, "rain", second, actor="bob", reason="mine", expected=None)
    assert _state(reg, db) == before


def test_stale_expected_conflicts_and_changes_nothing(reg: Registry, db: Database) -> None:
    v1, v2, v3 = _candidate(reg), _candidate(reg), _candidate(reg)
    promote(reg, "rain", v1, actor="alice", reason="first", expected=None)
    promote(reg, "rain", v2, actor="alice", reason="better", expected=v1)
    before = _state(reg, db)
    with pytest.raises(ConflictError, match=f"version {v2}, not version {v1}"):
        promote(reg, "rain", v3, actor="bob", reason="stale view", expected=v1)
    assert _state(reg, db) == before
    assert reg.get_alias("rain", CHAMPION) == v2


def test_aliases_of_different_models_do_not_interfere(reg: Registry) -> None:
    rain, snow = _candidate(reg, "rain"), _candidate(reg, "snow")
    promote(reg, "rain", rain, actor="a", reason="r", expected=None)
    promote(reg, "snow", snow, actor="a", reason="r", expected=None)
    assert reg.get_alias("rain", CHAMPION) == 1
    assert reg.get_alias("snow", CHAMPION) == 1
    assert [m.model for m in reg.history("snow")] == ["snow"]


# --- what may hold an alias --------------------------------------------------------------


def _pending(reg: Registry) -> int:
    return reg.create_version("rain", run_id=None, actor="t", params={}, lineage={})


def _failed(reg: Registry) -> int:
    version = _pending(reg)
    reg.set_status("rain", version, "FAILED", actor="t", reason="r")
    return version


def _quarantined(reg: Registry) -> int:
    version = _candidate(reg)
    reg.set_status("rain", version, "QUARANTINED", actor="t", reason="r")
    return version


def test_only_ready_versions_can_hold_an_alias(
    reg: Registry, db: Database, subtests: pytest.Subtests
) -> None:
    champion = _candidate(reg)
    promote(reg, "rain", champion, actor="a", reason="r", expected=None)
    for make in (_pending, _failed, _quarantined):
        with subtests.test(msg=make.__name__):
            target = make(reg)
            before = _state(reg, db)
            with pytest.raises(PolicyError, match="only READY"):
                promote(reg, "rain", target, actor="a", reason="r", expected=champion)
            with pytest.raises(PolicyError, match="only READY"):
                reg.move_alias("rain", "challenger", target, expected=None, actor="a", reason="r")
            assert _state(reg, db) == before


def test_promote_requires_a_passing_decision_record(
    reg: Registry, db: Database, subtests: pytest.Subtests
) -> None:
    for passed, what in ((False, "gates failed"), (None, "no decision record")):
        with subtests.test(msg=what):
            version = _candidate(reg, passed=passed)
            before = _state(reg, db)
            with pytest.raises(PolicyError, match="decision record"):
                promote(reg, "rain", version, actor="a", reason="r", expected=ANY)
            assert _state(reg, db) == before
            # other aliases do not need passing gates (a challenger is not promoted)
            reg.move_alias("rain", "challenger", version, expected=ANY, actor="a", reason="try")
            assert reg.aliases("rain")["challenger"] == version
            assert "champion" not in reg.aliases("rain")


def test_promoting_a_missing_version_is_not_found(reg: Registry) -> None:
    _candidate(reg)
    with pytest.raises(NotFoundError, match=r"'rain'.*version 7"):
        promote(reg, "rain", 7, actor="a", reason="r", expected=None)


# --- history and rollback ----------------------------------------------------------------


def test_history_records_every_move_in_order(reg: Registry) -> None:
    v1, v2, v3 = _candidate(reg), _candidate(reg), _candidate(reg)
    promote(reg, "rain", v1, actor="alice", reason="first model", expected=None)
    reg.move_alias("rain", "challenger", v2, expected=None, actor="bot", reason="shadow")
    promote(reg, "rain", v2, actor="bob", reason="beats champion", expected=v1)
    promote(reg, "rain", v3, actor="carol", reason="monthly retrain", expected=v2)

    def brief(moves: list[AliasMove]) -> list[tuple[Any, ...]]:
        return [(m.alias, m.from_version, m.to_version, m.actor, m.reason) for m in moves]

    assert brief(reg.history("rain", CHAMPION)) == [
        (CHAMPION, None, v1, "alice", "first model"),
        (CHAMPION, v1, v2, "bob", "beats champion"),
        (CHAMPION, v2, v3, "carol", "monthly retrain"),
    ]
    assert brief(reg.history("rain")) == [
        (CHAMPION, None, v1, "alice", "first model"),
        ("challenger", None, v2, "bot", "shadow"),
        (CHAMPION, v1, v2, "bob", "beats champion"),
        (CHAMPION, v2, v3, "carol", "monthly retrain"),
    ]
    times = [m.at for m in reg.history("rain")]
    assert times == sorted(times)
    assert all(t.tzinfo is not None for t in times)
    assert reg.history("snow") == []


def test_rollback_returns_to_the_previous_champion(reg: Registry, db: Database) -> None:
    v1, v2, v3 = _candidate(reg), _candidate(reg), _candidate(reg)
    promote(reg, "rain", v1, actor="a", reason="r", expected=None)
    promote(reg, "rain", v2, actor="a", reason="r", expected=v1)
    promote(reg, "rain", v3, actor="a", reason="r", expected=v2)
    assert previous_champion(reg, "rain") == v2
    events = _state(reg, db)[2]

    move = rollback(reg, "rain", actor="guardrail", reason="error rate 5%")
    assert (move.from_version, move.to_version) == (v3, v2)
    assert reg.get_alias("rain", CHAMPION) == v2
    last = reg.history("rain", CHAMPION)[-1]
    assert (last.from_version, last.to_version, last.actor, last.reason) == (
        v3,
        v2,
        "guardrail",
        "error rate 5%",
    )
    with db.session() as s:
        event = s.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).one()
    assert (event.action, event.subject, event.actor) == ("rollback", "rain@champion", "guardrail")
    assert _state(reg, db)[2] == events + 1


def test_rollback_without_a_previous_champion_is_not_found(reg: Registry, db: Database) -> None:
    with pytest.raises(NotFoundError, match="'rain'"):
        rollback(reg, "rain", actor="a", reason="r")
    v1 = _candidate(reg)
    with pytest.raises(NotFoundError, match="'rain'"):
        rollback(reg, "rain", actor="a", reason="r")
    promote(reg, "rain", v1, actor="a", reason="r", expected=None)
    before = _state(reg, db)
    with pytest.raises(NotFoundError, match="rain@champion"):
        rollback(reg, "rain", actor="a", reason="r")
    assert _state(reg, db) == before


def test_rollback_skips_a_quarantined_version_and_says_so(reg: Registry, db: Database) -> None:
    v1, v2 = _candidate(reg), _candidate(reg)
    promote(reg, "rain", v1, actor="a", reason="r", expected=None)
    promote(reg, "rain", v2, actor="a", reason="r", expected=v1)
    reg.set_status("rain", v1, "QUARANTINED", actor="auditor", reason="leak")
    assert previous_champion(reg, "rain") is None
    before = _state(reg, db)
    with pytest.raises(NotFoundError, match=f"rain@champion.*version {v1} is QUARANTINED"):
        rollback(reg, "rain", actor="a", reason="r")
    assert _state(reg, db) == before


# --- FT-01: racing promotions ------------------------------------------------------------


@contextmanager
def _lockstep(db: Database, marker: str, parties: int) -> Iterator[None]:
    """On PostgreSQL, hold each transaction after its SELECT containing ``marker`` until
    ``parties`` of them have run it: all promotions read the same champion row, certainly.

    SQLite serialises writers (``BEGIN IMMEDIATE``), so two promotions cannot overlap there
    and holding one would only wait for the other forever.
    """
    if db.dialect != "postgresql":
        yield
        return
    all_read = threading.Barrier(parties)

    def hold(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().startswith("SELECT") and marker in statement:
            all_read.wait(timeout=30)

    event.listen(db.engine, "after_cursor_execute", hold)
    try:
        yield
    finally:
        event.remove(db.engine, "after_cursor_execute", hold)


def _race(reg: Registry, db: Database, candidates: list[int]) -> list[Any]:
    """Each thread reads the champion, waits for the others, then promotes its candidate."""
    barrier = threading.Barrier(len(candidates))
    outcomes: list[Any] = [None] * len(candidates)

    def attempt(i: int) -> None:
        mine = Registry(db)
        seen = mine.get_alias("rain", CHAMPION)
        barrier.wait(timeout=30)
        try:
            outcomes[i] = promote(
                mine, "rain", candidates[i], actor=f"user{i}", reason="race", expected=seen
            )
        except BaseException as exc:  # noqa: BLE001 - the test inspects what came out
            outcomes[i] = exc

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(len(candidates))]
    # move_alias reads the whole alias row (with its epoch) inside its transaction
    with _lockstep(db, "aliases.epoch", len(candidates)):
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    return outcomes


@pytest.mark.parametrize("with_champion", [True, False], ids=["replace", "first"])
def test_ft01_concurrent_promotions_exactly_one_wins(
    reg: Registry, db: Database, with_champion: bool
) -> None:
    # "first": the first round races two first promotions (expected=None), later rounds replace
    if with_champion:
        promote(reg, "rain", _candidate(reg), actor="a", reason="r", expected=None)
    for _round in range(3):
        old = reg.get_alias("rain", CHAMPION)
        a, b = _candidate(reg), _candidate(reg)
        history, promotes = len(reg.history("rain")), _promote_events(db)
        refusals = _promote_events(db, "promote.refused")

        outcomes = _race(reg, db, [a, b])

        wins = [o for o in outcomes if isinstance(o, AliasMove)]
        losses = [o for o in outcomes if isinstance(o, ConflictError)]
        assert (len(wins), len(losses)) == (1, 1), outcomes
        assert wins[0].from_version == old
        assert reg.get_alias("rain", CHAMPION) == wins[0].to_version
        with db.session() as s:
            rows = s.execute(
                text("SELECT version FROM aliases WHERE model = 'rain' AND alias = 'champion'")
            ).all()
        assert [r[0] for r in rows] == [wins[0].to_version]
        assert len(reg.history("rain")) == history + 1
        assert reg.history("rain")[-1].to_version == wins[0].to_version
        assert _promote_events(db) == promotes + 1
        assert _promote_events(db, "promote.refused") == refusals + 1  # the loser, on record
