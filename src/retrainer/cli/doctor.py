"""``retrainer doctor``: one row per check of a workspace; ``--repair`` fixes what is safe."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from retrainer.cli.common import JsonOpt, WorkspaceOpt, acting, console, guard
from retrainer.cli.render import print_json, table
from retrainer.errors import ArtifactIntegrityError, StoreError
from retrainer.orchestrate.doctor import DoctorReport, diagnose, open_unmigrated

__all__ = ["doctor_cmd", "exit_code"]


def exit_code(report: DoctorReport) -> int:
    """0 when no check failed; 7 (environment) when the store is unreachable or its schema
    is behind; else 5 (integrity: artifacts, audit chain, champion, a check that errored)."""
    failed = {c.name for c in report.checks if c.status == "fail"}
    if not failed:
        return 0
    if failed & {"store", "migrations", "executor"}:
        return StoreError.exit_code
    return ArtifactIntegrityError.exit_code


def doctor_cmd(
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Fix what is safe to fix (schema, temp files, abandoned leases, orphaned "
            "PENDING versions), audited. Needs the operator or admin role.",
        ),
    ] = False,
    workspace: WorkspaceOpt = Path(),
    as_json: JsonOpt = False,
) -> None:
    """Check a workspace's health: store, schema, artifacts, temp files, leases, orphaned
    PENDING versions, audit chain, champion.

    Read-only unless --repair. Never repaired: a missing or corrupt artifact, a broken
    audit chain, a champion on a version that is not READY (each row says what to do).
    Exit 0 when no check fails (warnings allowed); 7 when the store is unreachable or
    its schema is behind; 5 when another check fails.

    Example: [bold]retrainer doctor -w rain --repair[/bold]
    """
    c = console()

    def body() -> DoctorReport:
        permission, what = (
            ("run", "repairing a workspace (doctor --repair)")
            if repair
            else ("read", "checking a workspace (doctor)")
        )
        with open_unmigrated(workspace) as ws:
            return diagnose(ws, repair=repair, authorize=lambda: acting(ws, permission, what))

    report = guard(body)
    if as_json:
        print_json(c, report.to_dict())
    else:
        rows = [(ch.name, ch.status, ch.detail) for ch in report.checks]
        columns = ["check", "status", "detail"]
        title = f"Doctor: {report.workspace}"
        c.print(table(title, columns, rows, no_wrap=["check", "status"]))
        failed = [ch.name for ch in report.checks if ch.status == "fail"]
        warned = [ch.name for ch in report.checks if ch.status == "warn"]
        if failed:
            c.print(Text(f"unhealthy: {', '.join(failed)} failed", style="bold red"))
        elif warned:
            hint = "" if repair else "; --repair fixes what it safely can"
            c.print(Text(f"healthy, with warnings ({', '.join(warned)}){hint}", style="yellow"))
        else:
            c.print(Text("healthy", style="green"))
    code = exit_code(report)
    if code:
        raise typer.Exit(code)
