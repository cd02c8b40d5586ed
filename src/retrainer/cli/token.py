"""API tokens and identity: ``token create``, ``token list``, ``token revoke``, ``whoami``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from retrainer.cli.common import (
    TOKEN_ENV,
    JsonOpt,
    WorkspaceOpt,
    console,
    guard,
    identity,
    open_workspace,
)
from retrainer.cli.render import print_json, table
from retrainer.governance.identity import ROLES, TokenStore
from retrainer.spec_base import parse_duration

__all__ = ["token_create", "token_list", "token_revoke", "whoami"]


def token_create(
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}.", show_default=False)],
    actor: Annotated[
        str, typer.Option(help="Who the token speaks for (a person or service account).")
    ],
    expires: Annotated[
        str | None, typer.Option(help="Lifetime such as 90d or 12h. Default: no expiry.")
    ] = None,
    workspace: WorkspaceOpt = Path(),
    as_json: JsonOpt = False,
) -> None:
    """Create an API token (admin only). The token is shown once: store it now.

    Send it as 'Authorization: Bearer <token>' to [bold]retrainer serve[/bold], or set
    RETRAINER_TOKEN so the CLI acts as that actor.

    Example: [bold]retrainer token create --role approver --actor alice --expires 90d[/bold]
    """
    c = console()
    try:
        lifetime = None if expires is None else parse_duration(expires)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--expires'") from None

    def body() -> dict[str, Any]:
        with open_workspace(workspace) as ws:
            issued = TokenStore(ws.db).create(actor, role, by=identity(ws), expires=lifetime)
            return {
                "id": issued.id,
                "actor": issued.actor,
                "role": issued.role,
                "expires_at": None if issued.expires_at is None else issued.expires_at.isoformat(),
                "token": issued.token,
            }

    out = guard(body)
    if as_json:
        print_json(c, out)
        return
    c.print(Text(f"token {out['id']} for {out['actor']} ({out['role']})", style="bold"))
    c.print(out["token"], soft_wrap=True)
    c.print(
        f"Shown once: only its hash is stored. Use it as {TOKEN_ENV}=... or "
        "'Authorization: Bearer ...'; revoke with 'retrainer token revoke "
        f"{out['id']}'."
    )


def token_list(workspace: WorkspaceOpt = Path(), as_json: JsonOpt = False) -> None:
    """Every API token: id, actor, role, state and last use (never the secret).

    Example: [bold]retrainer token list[/bold]
    """
    c = console()

    def body() -> list[dict[str, Any]]:
        with open_workspace(workspace) as ws:
            now = ws.db.clock()
            return [t.to_dict(now) for t in TokenStore(ws.db).list()]

    rows = guard(body)
    if as_json:
        print_json(c, rows)
        return
    c.print(
        table(
            "API tokens",
            ["id", "actor", "role", "state", "created (UTC)", "expires", "last used"],
            [
                (
                    r["id"],
                    r["actor"],
                    r["role"],
                    r["state"],
                    f"{r['created_at'][:16]} by {r['created_by']}",
                    (r["expires_at"] or "never")[:16],
                    (r["last_used_at"] or "never")[:16],
                )
                for r in rows
            ],
            no_wrap=["id"],
        )
    )


def token_revoke(
    token_id: Annotated[str, typer.Argument(metavar="ID", help="The token's id.")],
    workspace: WorkspaceOpt = Path(),
    as_json: JsonOpt = False,
) -> None:
    """Revoke a token (admin only); it stops working at once in the CLI, and within 30 s
    on a running server.

    Example: [bold]retrainer token revoke 3f9a0c1d2e4b[/bold]
    """
    c = console()

    def body() -> dict[str, Any]:
        with open_workspace(workspace) as ws:
            info = TokenStore(ws.db).revoke(token_id, by=identity(ws))
            return info.to_dict(ws.db.clock())

    out = guard(body)
    if as_json:
        print_json(c, out)
        return
    c.print(f"token {out['id']} of {out['actor']} is revoked")


def whoami(workspace: WorkspaceOpt = Path(), as_json: JsonOpt = False) -> None:
    """Who the CLI acts as here, with which role, and how it knows.

    Example: [bold]retrainer whoami[/bold] (with RETRAINER_TOKEN set: that token's actor)
    """
    c = console()

    def body() -> dict[str, Any]:
        with open_workspace(workspace) as ws:
            who = identity(ws)
            return {**who.to_dict(), "via": who.via}

    out = guard(body)
    if as_json:
        print_json(c, out)
        return
    c.print(f"{out['name']} ({out['role']}, {out['via']})")
