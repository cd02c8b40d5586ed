"""``retrainer retention plan|apply``: what stored data is past its period, and deleting it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text

from retrainer.cli.common import JsonOpt, WorkspaceOpt, acting, bold, console, guard, open_workspace
from retrainer.cli.render import print_json, table
from retrainer.governance.retention import ApplyResult, RetentionPlan, apply, plan
from retrainer.governance.retention_items import fmt_age, fmt_bytes

__all__ = ["retention_apply", "retention_plan"]

_PERIODS = ("raw_batches", "quarantine", "predictions", "artifacts")


def retention_plan(workspace: WorkspaceOpt = Path(), as_json: JsonOpt = False) -> None:
    """What retention would delete now, what it keeps although old, and why.

    A dry run: nothing is changed. The periods are the spec's [bold]retention[/bold]
    section. Example: [bold]retrainer retention plan[/bold]
    """
    c = console()

    def body() -> RetentionPlan:
        with open_workspace(workspace) as ws:
            acting(ws, "read", "planning retention")
            return plan(ws)

    result = guard(body)
    if as_json:
        print_json(c, result.to_dict())
        return
    render_plan(c, result)
    if result.items:
        c.print("This was a plan: nothing was deleted. To delete: retrainer retention apply")


def retention_apply(
    yes: Annotated[
        bool,
        typer.Option("--yes", "-y", help="Delete without asking (needed when not a terminal)."),
    ] = False,
    workspace: WorkspaceOpt = Path(),
    as_json: JsonOpt = False,
) -> None:
    """Delete what the retention plan says is due (admin only); every deletion is audited.

    Shows the plan and asks first, unless --yes. Records stay (marked purged) and the
    audit log keeps each deleted thing's hash and size, so the chain still verifies.
    Running it again deletes nothing new. Example: [bold]retrainer retention apply --yes[/bold]
    """
    c = console()
    if not yes and (as_json or not sys.stdin.isatty()):
        why = "--json is for scripts" if as_json else "this is not an interactive terminal"
        _refuse(f"retention apply deletes data and {why}: nothing was deleted; pass --yes")

    def body() -> ApplyResult | None:
        with open_workspace(workspace) as ws:
            actor = acting(ws, "admin", "applying retention")
            planned = plan(ws)
            if not yes:
                render_plan(c, planned)
                if not planned.items:
                    return None
                question = f"Delete these {len(planned.items)} item(s), {_size(planned)}?"
                if not typer.confirm(question, default=False):
                    return None
            return apply(ws, planned, actor)

    result = guard(body)
    if as_json:
        print_json(c, None if result is None else result.to_dict())
    elif result is None:
        c.print("Nothing was deleted.")
    else:
        render_result(c, result)


def _refuse(message: str) -> NoReturn:
    line = Text.assemble(("error", "bold red"), f" {message}")
    Console(stderr=True, highlight=False, soft_wrap=True).print(line)
    raise typer.Exit(2)


def _size(p: RetentionPlan) -> str:
    return fmt_bytes(p.total_bytes)


_GROUPS = {
    "batch": ("Batches", "raw_batches", "received"),
    "quarantine": ("Quarantined batches", "quarantine", "received"),
    "snapshot": ("Unused snapshots", "raw_batches", "created"),
    "artifact": ("Archived versions", "artifacts", "since"),
    "predictions": ("Predictions (store)", "predictions", "day"),
    "prediction_log": ("Predictions (Parquet log)", "predictions", "day"),
}


def render_plan(c: Console, p: RetentionPlan) -> None:
    """The plan for people: due items (one table per kind), kept things, warnings."""
    periods = {k: p.policy[k] for k in _PERIODS if p.policy.get(k)}
    if periods:
        c.print("Periods: " + ", ".join(f"{k} {v}" for k, v in periods.items()))
    else:
        c.print("No retention periods are set (retention: in retrainer.yaml): all is kept.")
    if not p.items:
        c.print(bold("Nothing is due for deletion."))
    else:
        c.print(bold(f"Due for deletion: {len(p.items)} item(s), {_size(p)}"))
    for kind, (label, key, since) in _GROUPS.items():
        items = [i for i in p.items if i.kind == kind]
        if not items:
            continue
        title = f"{label}: past {key} {p.policy.get(key)}, {fmt_bytes(sum(i.size for i in items))}"
        rows = [
            (
                i.subject + (" (finish)" if i.finish else ""),
                f"{i.since:%Y-%m-%d}",
                fmt_age(i.age),
                fmt_bytes(i.size),
                i.sha256[:12],
            )
            for i in items
        ]
        c.print(
            table(
                title,
                ["subject", since, "age", "size", "sha256"],
                rows,
                numeric=["age", "size"],
                no_wrap=["subject", since, "age", "size", "sha256"],
            )
        )
    if p.kept:
        c.print(
            table(
                "Kept",
                ["kind", "subject", "why"],
                [(k.kind, k.subject, "; ".join(k.reasons)) for k in p.kept],
                no_wrap=["kind", "subject"],
            )
        )
    for warning in p.warnings:
        c.print(f"warning: {warning}")


def render_result(c: Console, r: ApplyResult) -> None:
    """What apply did, for people."""
    if not r.deleted:
        c.print("Nothing was deleted: nothing in the plan is due now.")
    else:
        c.print(
            bold(f"Deleted {len(r.deleted)} item(s), {fmt_bytes(r.bytes_deleted)}."),
            f" Audit events {r.seal_event} (seal) to {r.summary_event} (summary).",
            sep="",
        )
        rows: list[tuple[Any, ...]] = [
            (i.kind, i.subject, fmt_bytes(i.size), i.sha256[:12], event) for i, event in r.deleted
        ]
        c.print(
            table(
                None,
                ["kind", "subject", "size", "sha256", "event"],
                rows,
                numeric=["size", "event"],
                no_wrap=["kind", "subject", "sha256"],
            )
        )
    for subject, why in r.skipped:
        c.print(f"skipped {subject}: {why}")
