"""Promotion and rollback: the only ways the champion alias moves.

Both are compare-and-swap moves of ``champion`` through :meth:`Registry.move_alias`,
so they are atomic, audited and in alias history. Promotion requires a ``READY``
version whose decision record passed every gate (design invariant 3); a refused
promotion is audited too (``promote.refused``), so every attempt leaves a record.

Rollback walks the champion's lineage backwards: the champions in the order they took
over, where a move back to an earlier champion rewinds the lineage to it. So repeated
rollbacks go ``v3 -> v2 -> v1`` and never forward to a version that was rolled back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from retrainer.errors import ConflictError, NotFoundError, PolicyError, RetrainerError
from retrainer.registry.audit import append_event
from retrainer.registry.registry import ANY, CHAMPION, AliasMove, Registry
from retrainer.registry.tables import Alias, ModelVersion

__all__ = ["previous_champion", "promote", "rollback"]

log = logging.getLogger(__name__)

_SERVABLE = "READY"


def promote(
    registry: Registry,
    model: str,
    version: int,
    *,
    actor: str,
    reason: str,
    expected: int | object | None = ANY,
    check: Callable[[Session, ModelVersion], None] | None = None,
) -> AliasMove:
    """Make ``version`` the champion, if its decision record passed all gates (and
    ``check``, run in the move's transaction, does not refuse: approvals).

    A refusal is audited as ``promote.refused`` (subject ``MODEL:VERSION``; payload: the
    champion it found, the version asked for, what was expected, why it was refused and
    the error code) in a transaction of its own, then the original error is raised.

    Raises PolicyError (not READY or gates not passed), ConflictError (the champion is
    no longer ``expected``), NotFoundError.
    """
    try:
        return registry.move_alias(
            model,
            CHAMPION,
            version,
            expected=expected,
            actor=actor,
            reason=reason,
            action="promote",
            require_gates=True,
            check=check,
        )
    except (PolicyError, ConflictError, NotFoundError) as exc:
        _audit_refusal(
            registry, model, version, actor=actor, reason=reason, expected=expected, error=exc
        )
        raise


def _audit_refusal(
    registry: Registry,
    model: str,
    version: int,
    *,
    actor: str,
    reason: str,
    expected: int | object | None,
    error: RetrainerError,
) -> None:
    def fn(s: Session) -> None:
        champion = s.scalar(
            select(Alias.version).where(Alias.model == model, Alias.alias == CHAMPION)
        )
        append_event(
            s,
            at=registry.db.clock(),
            actor=actor,
            action="promote.refused",
            subject=f"{model}:{version}",
            payload={
                "model": model,
                "from": champion,
                "to": version,
                "expected": "any" if expected is ANY else expected,
                "reason": error.message,
                "code": error.code,
                "requested_reason": reason,
            },
        )

    try:
        registry.db.transaction(fn)
    except (RetrainerError, SQLAlchemyError):  # the refusal itself must still reach the caller
        log.exception("could not audit the refused promotion of %s:%s", model, version)


def _lineage(moves: Sequence[AliasMove]) -> list[int]:
    """Champions in the order they took over; a move back to one rewinds to it."""
    lineage: list[int] = []
    for move in moves:
        if move.to_version is None:
            continue
        if move.to_version in lineage:
            del lineage[lineage.index(move.to_version) + 1 :]
        else:
            lineage.append(move.to_version)
    return lineage


def _rollback_target(registry: Registry, model: str) -> tuple[int | None, int | None, list[str]]:
    """(current champion, the version to roll back to or None, earlier ones skipped)."""
    lineage = _lineage(registry.history(model, CHAMPION))
    if not lineage:
        return None, None, []
    status = {v.version: v.status for v in registry.versions(model)}
    skipped: list[str] = []
    for version in reversed(lineage[:-1]):
        if status.get(version) == _SERVABLE:
            return lineage[-1], version, skipped
        skipped.append(f"version {version} is {status.get(version, 'gone')}")
    return lineage[-1], None, skipped


def previous_champion(registry: Registry, model: str) -> int | None:
    """The version a rollback would make champion, or None.

    That is the newest earlier champion in the lineage of the current one that is still
    ``READY``; champions that were rolled back away from are not in the lineage.
    """
    return _rollback_target(registry, model)[1]


def rollback(registry: Registry, model: str, *, actor: str, reason: str) -> AliasMove:
    """Move the champion back to the previous champion (compare-and-swap on the current one).

    Skips earlier champions that are no longer ``READY`` (quarantined, say).

    Raises NotFoundError (no champion, or no earlier servable champion: the message names
    the model and what was skipped), ConflictError (the champion moved meanwhile),
    PolicyError (the target stopped being READY meanwhile).
    """
    current = registry.get_alias(model, CHAMPION)
    if current is None:
        raise NotFoundError(f"model {model!r} has no champion to roll back")
    seen, target, skipped = _rollback_target(registry, model)
    if seen != current:
        raise ConflictError(
            f"{model}@champion moved while the rollback was being prepared; look again and retry"
        )
    if target is None:
        why = f" ({'; '.join(skipped)})" if skipped else ""
        raise NotFoundError(
            f"{model}@champion (version {current}) has no previous champion to roll back to{why}"
        )
    return registry.move_alias(
        model, CHAMPION, target, expected=current, actor=actor, reason=reason, action="rollback"
    )
