"""Promotion and rollback: the only ways the champion alias moves.

Both are compare-and-swap moves of ``champion`` through :meth:`Registry.move_alias`,
so they are atomic, audited and in alias history. Promotion requires a ``READY``
version whose decision record passed every gate (design invariant 3).
"""

from __future__ import annotations

from retrainer.errors import NotFoundError
from retrainer.registry.registry import ANY, CHAMPION, AliasMove, Registry

__all__ = ["previous_champion", "promote", "rollback"]


def promote(
    registry: Registry,
    model: str,
    version: int,
    *,
    actor: str,
    reason: str,
    expected: int | object | None = ANY,
) -> AliasMove:
    """Make ``version`` the champion, if its decision record passed all gates.

    Raises PolicyError (not READY or gates not passed), ConflictError (the champion is
    no longer ``expected``), NotFoundError.
    """
    return registry.move_alias(
        model,
        CHAMPION,
        version,
        expected=expected,
        actor=actor,
        reason=reason,
        action="promote",
        require_gates=True,
    )


def previous_champion(registry: Registry, model: str) -> int | None:
    """The version that was champion just before the current one, or None."""
    current = registry.get_alias(model, CHAMPION)
    for move in reversed(registry.history(model, CHAMPION)):
        if move.to_version == current and move.from_version is not None:
            return move.from_version
    return None


def rollback(registry: Registry, model: str, *, actor: str, reason: str) -> AliasMove:
    """Move the champion back to the previous champion (compare-and-swap on the current one)."""
    current = registry.get_alias(model, CHAMPION)
    if current is None:
        raise NotFoundError(f"model {model!r} has no champion to roll back")
    target = previous_champion(registry, model)
    if target is None:
        raise NotFoundError(f"{model}@champion (version {current}) has no previous champion")
    return registry.move_alias(
        model, CHAMPION, target, expected=current, actor=actor, reason=reason, action="rollback"
    )
