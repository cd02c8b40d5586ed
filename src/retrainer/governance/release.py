"""Releasing a candidate whose gates passed: promote it, or start its rollout.

One path for the cycle, ``retrainer approve`` and the approvals API, so that approvals
are checked the same way everywhere: a direct promotion checks them inside the
champion move's transaction; a shadow or canary rollout checks them before it starts
(the rollout's own promotion then follows its guardrails).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from retrainer.deploy.rollout import start_rollout
from retrainer.errors import ConflictError, PolicyError
from retrainer.governance.approvals import Decision, approval_check, record_decision, status
from retrainer.governance.identity import Actor
from retrainer.registry import CHAMPION
from retrainer.registry.promotion import promote

if TYPE_CHECKING:
    from retrainer.workspace import Workspace

__all__ = ["Released", "decide", "release"]


@dataclass(frozen=True)
class Released:
    """What a release did: ``promoted`` or ``rollout`` (with the rollout's id)."""

    version: int
    how: str
    rollout: int | None
    outcome: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return dict(self.__dict__)


def release(
    ws: Workspace,
    model: str,
    version: int,
    *,
    actor: str,
    reason: str,
    expected: int | None,
    needs: list[str],
) -> Released:
    """Promote ``version`` (compare-and-swap on ``expected``) or start its rollout.

    With ``needs`` non-empty, the version's approvals must reach the quorum. Raises
    PolicyError (not approved, gates), ConflictError (the champion moved meanwhile, or
    another rollout is active).
    """
    strategy = ws.spec.deploy.strategy
    if strategy != "direct" and expected is not None:
        if needs:
            st = status(ws, model, version, needs=needs)
            if st.state != "approved":
                raise PolicyError(
                    f"{model}:{version} needs {st.quorum} approval(s) ({'; '.join(needs)}), "
                    f"has {len(st.valid)}; see 'retrainer approvals list'"
                )
        rollout = start_rollout(ws, model, version, actor=actor, reason=reason)
        return Released(
            version,
            "rollout",
            rollout.id,
            f"{strategy} rollout {rollout.id} started against version {expected} "
            f"(retrainer rollout status {model})",
        )
    promote(
        ws.registry,
        model,
        version,
        actor=actor,
        reason=reason,
        expected=expected,
        check=approval_check(ws, needs),
    )
    was = "none" if expected is None else f"version {expected}"
    return Released(version, "promoted", None, f"version {version} promoted (champion was {was})")


def decide(
    ws: Workspace,
    actor: Actor,
    model: str,
    version: int,
    decision: Decision,
    comment: str,
    *,
    override: bool = False,
) -> dict[str, Any]:
    """Record ``actor``'s approve or reject; once the quorum is reached, release the version
    (compare-and-swap on the champion seen now). The CLI and the API both call this.

    Returns ``{"status": ..., "released": ... or None, "release_error": ... or None}``;
    a release that fails (the champion moved, a rollout is active) leaves the approval
    standing, and the next cycle releases it.
    """
    st = record_decision(ws, actor, model, version, decision, comment, override=override)
    out: dict[str, Any] = {"status": st.to_dict(), "released": None, "release_error": None}
    if st.state != "approved":
        return out
    champion = ws.registry.get_alias(model, CHAMPION)
    names = ", ".join(a.actor for a in st.valid)
    try:
        done = release(
            ws,
            model,
            version,
            actor=actor.name,
            reason=f"approved by {names}: {comment}",
            expected=champion,
            needs=list(st.needs),
        )
    except (ConflictError, PolicyError) as exc:
        out["release_error"] = {"code": exc.code, "message": exc.message}
        return out
    out["released"] = done.to_dict()
    return out
