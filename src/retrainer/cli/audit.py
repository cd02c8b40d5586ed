"""The audit trail: ``audit log``, ``audit verify``, ``audit anchor``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from retrainer.cli.common import JsonOpt, WorkspaceOpt, console, guard, open_workspace
from retrainer.cli.render import print_json, table
from retrainer.registry.audit import list_events
from retrainer.registry.db import as_utc

__all__ = ["audit_anchor", "audit_log", "audit_verify"]


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


def audit_verify(
    anchor: Annotated[
        str | None,
        typer.Option(
            "--anchor",
            help="Anchor file or fsspec URI to check against (default: the spec's audit.anchor).",
        ),
    ] = None,
    workspace: WorkspaceOpt = Path(),
    as_json: JsonOpt = False,
) -> None:
    """Verify the audit chain: every link, then every anchored head. Exit 1 when broken.

    Names the first broken event: an edited payload, a deleted or reordered event, or
    (against an anchor) a chain rewritten with fresh hashes.

    Example: [bold]retrainer audit verify --anchor /mnt/worm/rain-anchor.jsonl[/bold]
    """
    from retrainer.governance.anchor import verify_audit

    _plain_location(anchor, "'--anchor'")
    c = console()

    def body() -> dict[str, Any]:
        with open_workspace(workspace) as ws, ws.secrets.scrubbed("audit.anchor"):
            verdict = verify_audit(ws.db, anchor or ws.anchor_uri).to_dict()
            return {**verdict, "problem": ws.secrets.redact(verdict["problem"] or "") or None}

    verdict = guard(body)
    if as_json:
        print_json(c, verdict)
    elif verdict["ok"]:
        c.print(
            f"audit chain ok: {verdict['events']} events, head {verdict['head'][:12]}…, "
            f"{verdict['anchors_checked']} anchor(s) checked",
            soft_wrap=True,
        )
    else:
        where = verdict["first_broken_id"]
        head = "audit chain broken" + ("" if where is None else f" at event {where}")
        c.print(Text(f"{head}: {verdict['problem']}", style="red"), soft_wrap=True)
    if not verdict["ok"]:
        raise typer.Exit(1)


def audit_anchor(
    to: Annotated[
        str | None,
        typer.Option("--to", help="Anchor file or fsspec URI (default: the spec's audit.anchor)."),
    ] = None,
    workspace: WorkspaceOpt = Path(),
    as_json: JsonOpt = False,
) -> None:
    """Append the audit chain's current head to an anchor outside the store.

    Example: [bold]retrainer audit anchor --to s3://audit-bucket/rain.jsonl[/bold]
    """
    from dataclasses import asdict

    from retrainer.errors import SpecError
    from retrainer.governance.anchor import export_anchor

    _plain_location(to, "'--to'")
    c = console()

    def body() -> dict[str, Any]:
        with open_workspace(workspace) as ws, ws.secrets.scrubbed("audit.anchor"):
            uri = to or ws.anchor_uri
            if uri is None:
                raise SpecError("no anchor: pass --to URI or set audit.anchor in the spec")
            return {"anchor": ws.secrets.redact(uri), **asdict(export_anchor(ws.db, uri))}

    done = guard(body)
    if as_json:
        print_json(c, done)
        return
    c.print(f"anchored event {done['event_id']} ({done['hash'][:12]}…) to {done['anchor']}")


def _plain_location(value: str | None, option: str) -> None:
    """Refuse a NUL or other control character in an anchor path or URI (exit 2)."""
    if value is not None and any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise typer.BadParameter(
            "a control character or NUL is not allowed in a path or URI", param_hint=option
        )
