"""Retraining policies a backtest compares.

* ``never``: the warm-up model serves every batch (the static model);
* ``every_batch``: retrain after every batch and promote without gates (the quality
  ceiling at the highest cost);
* ``periodic:K``: retrain after every K batches; the spec's gates decide promotion;
* ``spec``: the spec's triggers, retrain policy (cooldown, limits) and gates, exactly
  as ``retrainer run`` applies them;
* ``spec:PATH``: the same with another spec file, to compare trigger settings. Its
  model section (task, target, features) must match the main spec's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from retrainer.errors import SpecError
from retrainer.spec import PipelineSpec, load_spec

__all__ = ["Policy", "parse_policies"]

KINDS = ("never", "every_batch", "periodic", "spec")


@dataclass(frozen=True)
class Policy:
    """One policy: its name in the output, its kind and its argument."""

    name: str
    kind: str
    every: int = 0
    spec_path: Path | None = None

    @property
    def gated(self) -> bool:
        """True when the spec's gates decide whether a retrained model is promoted."""
        return self.kind in ("periodic", "spec")

    @property
    def watches(self) -> bool:
        """True when the policy reads the monitor's evidence (drift, realised metrics)."""
        return self.kind in ("spec", "never")

    def describe(self) -> str:
        """One line for the table and the report."""
        if self.kind == "never":
            return "the warm-up model serves every batch"
        if self.kind == "every_batch":
            return "retrain after every batch and promote without gates"
        if self.kind == "periodic":
            return f"retrain after every {self.every} batches; gates decide promotion"
        where = "the spec" if self.spec_path is None else str(self.spec_path)
        return f"triggers, retrain policy and gates of {where}"


def parse_policies(text: str) -> list[Policy]:
    """``never,every_batch,periodic:K,spec,spec:PATH`` (comma-separated, each once)."""
    policies: list[Policy] = []
    for raw in (p.strip() for p in text.split(",")):
        if not raw:
            continue
        kind, _, arg = raw.partition(":")
        if kind in ("never", "every_batch") and not arg:
            policies.append(Policy(raw, kind))
        elif kind == "periodic" and arg.isdigit() and int(arg) > 0:
            policies.append(Policy(raw, kind, every=int(arg)))
        elif kind == "spec":
            policies.append(Policy(raw, kind, spec_path=Path(arg) if arg else None))
        else:
            raise SpecError(
                f"--policies: {raw!r} is not a policy; expected never, every_batch, "
                "periodic:K (K a positive integer), spec or spec:PATH"
            )
    names = [p.name for p in policies]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise SpecError(f"--policies: {', '.join(repeated)} listed more than once")
    if not policies:
        raise SpecError("--policies: name at least one policy")
    return policies


def policy_spec(policy: Policy, main: PipelineSpec) -> PipelineSpec:
    """The spec a policy runs with: the main one, or its own file (same model section)."""
    if policy.spec_path is None:
        return main
    other = load_spec(policy.spec_path)
    for field in ("task", "target", "features"):
        if getattr(other.model, field) != getattr(main.model, field):
            raise SpecError(
                f"--policies {policy.name}: model.{field} differs from the main spec's "
                f"({getattr(other.model, field)!r} vs {getattr(main.model, field)!r}); "
                "a policy may change triggers, windows, training and gates, not the model"
            )
    if other.data.time_column != main.data.time_column:
        raise SpecError(
            f"--policies {policy.name}: data.time_column {other.data.time_column!r} differs "
            f"from the main spec's {main.data.time_column!r}; batches are cut by one clock"
        )
    return other
