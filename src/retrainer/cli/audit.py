"""The audit trail: ``audit log``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from retrainer.cli.common import JsonOpt, WorkspaceOpt, console, guard, open_workspace
from retrainer.cli.render import print_json, table
from retrainer.registry.audit import list_events
from retrainer.registry.db import as_utc

__all__ = ["audit_log"]


def audit_log(
    limit: Annotated[int, typer.Option(help="How many of the newest events.")] = 30,
    subject: Annotated[
        str | None, typer.Option(help="Only subjects starting with this (e.g. rain@).")
    ] = None,
    workspace: WorkspaceOpt = Path(),
    as_json: JsonOpt = False,
) -> None:
    """The newest audit events: who changed what, when (hash-chained, append-only).

    Example: [bold]retrainer audit log --subject rain@ --limit 10[/bold]
    """
    c = console()

    def body() -> list[dict[str, Any]]:
        with open_workspace(workspace) as ws, ws.db.session() as s:
            return [
                {
                    "id": e.id,
                    "at": as_utc(e.at).isoformat(),
                    "actor": e.actor,
                    "action": e.action,
                    "subject": e.subject,
                    "payload": e.payload,
                    "hash": e.hash,
                }
                for e in list_events(s, limit=limit, subject_prefix=subject)
            ]

    events = guard(body)
    if as_json:
        print_json(c, events)
        return
    c.print(
        table(
            "Audit log (newest last)",
            ["#", "at (UTC)", "actor", "event", "details"],
            [
                (
                    e["id"],
                    e["at"][:19].replace("T", " "),
                    e["actor"],
                    f"{e['action']} {_short_subject(e['subject'])}",
                    _details(e["payload"]),
                )
                for e in events
            ],
            numeric=["#"],
            no_wrap=["#", "at (UTC)"],
        )
    )


def _short_subject(subject: str) -> str:
    return subject[:12] if subject.startswith("run/") else subject


def _details(payload: dict[str, Any]) -> str:
    keys = ("reason", "outcome", "from", "to", "key", "error")
    parts = [f"{k}={payload[k]}" for k in keys if payload.get(k) not in (None, "")]
    return "; ".join(parts)[:120]
