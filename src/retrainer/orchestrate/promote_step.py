"""The promote step of a run, and releasing a candidate a person approved meanwhile.

A mixin of :class:`~retrainer.orchestrate.steps.Steps`: it reads the run's outputs and
workspace from the attributes declared here. A candidate that passed its gates is
promoted (or its rollout started) unless a person is needed and has not approved it;
approvals are checked again in the promotion's own transaction
(:func:`retrainer.governance.release.release`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from retrainer.deploy.store import RolloutStore
from retrainer.errors import ConflictError
from retrainer.governance.approvals import pending, status
from retrainer.governance.envelope import held_by_flags, needs_person
from retrainer.governance.release import release
from retrainer.registry import CHAMPION
from retrainer.registry.audit import append_event

if TYPE_CHECKING:
    from retrainer.spec import PipelineSpec
    from retrainer.workspace import Workspace

__all__ = ["Promotion"]


class Promotion:
    """``step_promote`` and the release of approved candidates (see the module docstring)."""

    ws: Workspace
    spec: PipelineSpec
    model: str
    run_id: str
    actor: str
    outputs: dict[str, dict[str, Any]]

    def _awaiting_approval(self, champion: int | None) -> int | None:
        """The newest candidate waiting for a person; one approved meanwhile is released
        now (and then nothing waits)."""
        for st in pending(self.ws, self.model):
            if st.state != "approved":
                return st.version
            self._release(st.version, champion, champion, list(st.needs))
            return None
        return None

    def step_promote(self) -> dict[str, Any]:
        version = self.outputs["train"]["version"]
        decision = self.outputs["evaluate"]["decision"]
        expected = self.outputs["evaluate"]["champion"]
        current = self.ws.registry.get_alias(self.model, CHAMPION)
        if current == version:
            return {"promoted": True, "outcome": f"version {version} is champion"}
        if not decision["passed"]:
            return {
                "promoted": False,
                "outcome": f"version {version} rejected: {decision['summary']}",
            }
        reg = self.ws.registry
        info = reg.get(self.model, version)
        champion = None if expected is None else reg.get(self.model, expected)
        flags = self.outputs["datasets"].get("data_flags", {})
        needs = needs_person(self.spec, info, champion, held_by_flags(flags))
        if needs and status(self.ws, self.model, version, needs=needs).state != "approved":
            self._audit("approval.pending", f"{self.model}:{version}", {"needs": needs})
            return {
                "promoted": False,
                "awaiting_approval": True,
                "needs": needs,
                "outcome": f"version {version} passed its gates and awaits approval "
                f"({'; '.join(needs)}): retrainer approve {self.model} {version} "
                "--comment TEXT",
            }
        if not needs and self.spec.approval.mode == "auto_if":
            self._audit(
                "approval.auto",
                f"{self.model}:{version}",
                {"envelope": self.spec.approval.model_dump(mode="json")["auto_if"]},
            )
        return self._release(version, expected, current, needs)

    def _release(
        self, version: int, expected: int | None, current: int | None, needs: list[str]
    ) -> dict[str, Any]:
        """Promote or start the rollout (approvals checked on the way)."""
        rollout = self.spec.deploy.strategy != "direct" and expected is not None
        if rollout and current != expected:
            return {
                "promoted": False,
                "outcome": f"version {version} not rolled out: the champion moved from "
                f"version {expected} to {current} meanwhile",
            }
        how = "approved" if needs else "auto-promoted"
        try:
            done = release(
                self.ws,
                self.model,
                version,
                actor=self.actor,
                reason=f"{how}: gates passed (run {self.run_id[:8]})",
                expected=expected,
                needs=needs,
            )
        except ConflictError as exc:
            active = RolloutStore(self.ws.db).active(self.model)
            if not rollout or active is None or active.candidate != version:
                verb = "rolled out" if rollout else "promoted"
                return {"promoted": False, "outcome": f"version {version} not {verb}: {exc}"}
            return {  # resumed after a crash: the rollout had started
                "promoted": False,
                "rollout": active.id,
                "outcome": f"version {version} passed its gates; {active.strategy} rollout "
                f"{active.id} started against version {expected} "
                f"(retrainer rollout status {self.model})",
            }
        if done.how == "rollout":
            return {
                "promoted": False,
                "rollout": done.rollout,
                "outcome": f"version {version} passed its gates; {done.outcome}",
            }
        return {"promoted": True, "outcome": done.outcome}

    def _audit(self, action: str, subject: str, payload: dict[str, Any]) -> None:
        self.ws.db.transaction(
            lambda s: append_event(
                s,
                at=self.ws.db.clock(),
                actor=self.actor,
                action=action,
                subject=subject,
                payload={**payload, "run_id": self.run_id},
            )
        )
