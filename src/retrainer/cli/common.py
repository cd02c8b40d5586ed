"""What every command shares: options, the console, the actor, error handling.

User text (values from a spec, batch names, reasons) is printed verbatim: the consoles
here never interpret ``[...]`` as rich markup, so ``[a-z0-9]`` in a message stays as it is.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from retrainer.errors import AuthError, ForbiddenError, NotFoundError, RetrainerError
from retrainer.governance.identity import Actor, TokenStore, local_actor, require
from retrainer.registry.audit import append_event
from retrainer.workspace import Workspace

__all__ = [
    "TOKEN_ENV",
    "JsonOpt",
    "WorkspaceOpt",
    "acting",
    "bold",
    "check_model",
    "console",
    "guard",
    "identity",
    "local_name",
    "open_workspace",
    "version_label",
]

T = TypeVar("T")

TOKEN_ENV = "RETRAINER_TOKEN"

WorkspaceOpt = Annotated[
    Path,
    typer.Option(
        "--workspace",
        "-w",
        envvar="RETRAINER_WORKSPACE",
        help="Workspace folder (or its retrainer.yaml). Default: the current folder.",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]


def console(*, stderr: bool = False) -> Console:
    """A console that prints text as given (no markup, no highlighting)."""
    return Console(stderr=stderr, markup=False, highlight=False, soft_wrap=False)


def bold(text: str) -> Text:
    """``text`` in bold, without interpreting any markup in it."""
    return Text(text, style="bold")


def identity(ws: Workspace) -> Actor:
    """Who runs this command: the actor of ``RETRAINER_TOKEN``; without one, on the
    embedded default, the local user (admin). Raises AuthError on a shared store."""
    token = os.environ.get(TOKEN_ENV)
    if token:
        return TokenStore(ws.db).authenticate(token)
    local = local_actor(ws.db.dialect, os.environ)
    if local is None:
        raise AuthError(
            f"this workspace's store is shared ({ws.db.dialect}): set "
            f"{TOKEN_ENV} to a token from 'retrainer token create' to act on it"
        )
    return local


def acting(ws: Workspace, permission: str, what: str) -> str:
    """The name of the caller, after checking it may ``permission`` (``what`` names the
    action in the refusal). Raises AuthError or ForbiddenError."""
    try:
        who = identity(ws)
    except AuthError as exc:
        _audit_denied(ws, "anonymous", exc, what)
        raise
    try:
        require(who, permission, what)
    except ForbiddenError as exc:
        _audit_denied(ws, who.name, exc, what)
        raise
    return who.name


def _audit_denied(ws: Workspace, name: str, exc: RetrainerError, what: str) -> None:
    """A refused command leaves an ``access.denied`` event (never the token's secret)."""
    token = os.environ.get(TOKEN_ENV, "")
    token_id = token[4:16] if token.startswith("rtk_") else None
    ws.db.transaction(
        lambda s: append_event(
            s,
            at=ws.db.clock(),
            actor=name,
            action="access.denied",
            subject=f"cli: {what}"[:256],
            payload={"reason": exc.message, "token_id": token_id, "code": exc.code},
        )
    )


def local_name() -> str:
    """The local user's name, for commands that run before a workspace exists."""
    return os.environ.get("RETRAINER_ACTOR") or f"local:{getpass.getuser()}"


@contextmanager
def open_workspace(path: Path) -> Iterator[Workspace]:
    """Open the workspace at ``path`` and close it afterwards."""
    ws = Workspace.open(path)
    try:
        yield ws
    finally:
        ws.close()


def check_model(ws: Workspace, name: str) -> None:
    """Refuse a model name that is not this workspace's model."""
    if name != ws.spec.model.name:
        raise NotFoundError(f"this workspace's model is {ws.spec.model.name!r}, not {name!r}")


def guard(fn: Callable[[], T]) -> T:
    """Run a command body; map retrainer errors to their exit codes with one clear line."""
    try:
        return fn()
    except RetrainerError as exc:
        line = Text.assemble(("error", "bold red"), f" [{exc.code}] {exc.message}")
        Console(stderr=True, highlight=False, soft_wrap=True).print(line)
        raise typer.Exit(exc.exit_code) from None


def version_label(version: int | None) -> str:
    """``v3``, or ``none``."""
    return "none" if version is None else f"v{version}"
