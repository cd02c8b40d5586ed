"""Approvals: ``approvals list``, ``approvals show``, ``approve``, ``reject``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from retrainer.cli.common import (
    JsonOpt,
    WorkspaceOpt,
    check_model,
    console,
    guard,
    identity,
    open_workspace,
)
from retrainer.cli.render import print_json, table
from retrainer.governance.approvals import Decision, pending, status
from retrainer.governance.identity import require
from retrainer.governance.release import decide

__all__ = ["approvals_list", "approvals_show", "approve_cmd", "reject_cmd"]

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The model's name.")]
VersionArg = Annotated[int, typer.Argument(metavar="VERSION", help="The version.", min=1)]
CommentOpt = Annotated[
    str, typer.Option("--comment", "-m", help="Why: recorded with the decision and audited.")
]


def approvals_list(workspace: WorkspaceOpt = Path(), as_json: JsonOpt = False) -> None:
    """Versions waiting for a person, why, and the approvals they have so far.

    Example: [bold]retrainer approvals list[/bold]
    """
    c = console()

    def body() -> list[dict[str, Any]]:
        with open_workspace(workspace) as ws:
            require(identity(ws), "read", "listing approvals")
            return [st.to_dict() for st in pending(ws, ws.spec.model.name)]

    rows = guard(body)
    if as_json:
        print_json(c, rows)
        return
    if not rows:
        c.print("nothing waits for approval")
        return
    c.print(
        table(
            "Waiting for approval",
            ["version", "state", "approvals", "why a person", "trained by", "approved by"],
            [
                (
                    f"{r['model']}:{r['version']}",
                    r["state"],
                    f"{r['approvals']} of {r['quorum']}",
                    "; ".join(r["needs"]),
                    ", ".join(r["responsible"]),
                    ", ".join(a["actor"] for a in r["valid"]) or "-",
                )
                for r in rows
            ],
        )
    )
    first = rows[-1]
    c.print(
        f"Approve with: retrainer approve {first['model']} {first['version']} --comment TEXT "
        "(someone other than who trained it)"
    )


def approvals_show(
    name: NameArg, version: VersionArg, workspace: WorkspaceOpt = Path(), as_json: JsonOpt = False
) -> None:
    """Every approval and rejection of one version, and which of them count now.

    Example: [bold]retrainer approvals show rain 3[/bold]
    """
    c = console()

    def body() -> dict[str, Any]:
        with open_workspace(workspace) as ws:
            check_model(ws, name)
            require(identity(ws), "read", "reading approvals")
            return status(ws, name, version).to_dict()

    st = guard(body)
    if as_json:
        print_json(c, st)
        return
    _print_status(st)


def _print_status(st: dict[str, Any]) -> None:
    c = console()
    c.print(
        Text(
            f"{st['model']}:{st['version']} {st['state']} "
            f"({st['approvals']} of {st['quorum']} approvals)",
            style="bold",
        )
    )
    if st["needs"]:
        c.print(f"needs a person: {'; '.join(st['needs'])}")
    rows = [(a, "counts") for a in st["valid"]] + [(a, a["why_void"]) for a in st["void"]]
    if st["rejected_by"]:
        rows.append((st["rejected_by"], "rejects"))
    if rows:
        c.print(
            table(
                None,
                ["at (UTC)", "actor", "role", "decision", "comment", "status"],
                [
                    (
                        a["created_at"][:19].replace("T", " "),
                        a["actor"],
                        a["role"] + (" (override)" if a["override"] else ""),
                        a["decision"],
                        a["comment"],
                        why,
                    )
                    for a, why in sorted(rows, key=lambda r: r[0]["id"])
                ],
            )
        )


def _decide(
    name: str,
    version: int,
    decision: Decision,
    comment: str,
    override: bool,
    workspace: Path,
    as_json: bool,
) -> None:
    c = console()

    def body() -> dict[str, Any]:
        with open_workspace(workspace) as ws:
            check_model(ws, name)
            return decide(ws, identity(ws), name, version, decision, comment, override=override)

    out = guard(body)
    if as_json:
        print_json(c, out)
        return
    _print_status(out["status"])
    if out["released"]:
        c.print(Text(out["released"]["outcome"], style="bold green"))
    elif out["release_error"]:
        c.print(
            f"approved, not released yet: {out['release_error']['message']} "
            "(the next 'retrainer run' releases it)"
        )


def approve_cmd(
    name: NameArg,
    version: VersionArg,
    comment: CommentOpt,
    override: Annotated[
        bool,
        typer.Option(
            "--override",
            help="Admin only: approve although you triggered or trained it. Needs a "
            "justification of 20+ characters in --comment; flagged in the audit log.",
        ),
    ] = False,
    workspace: WorkspaceOpt = Path(),
    as_json: JsonOpt = False,
) -> None:
    """Approve a version waiting for approval; at the quorum it is promoted (or its
    rollout starts). You must not be who triggered or trained it.

    Example: [bold]retrainer approve rain 3 --comment "checked slices and fairness"[/bold]
    """
    _decide(name, version, "approve", comment, override, workspace, as_json)


def reject_cmd(
    name: NameArg,
    version: VersionArg,
    comment: CommentOpt,
    workspace: WorkspaceOpt = Path(),
    as_json: JsonOpt = False,
) -> None:
    """Reject a version waiting for approval: it is never promoted, and the loop may
    train again.

    Example: [bold]retrainer reject rain 3 --comment "worse on the north slice"[/bold]
    """
    _decide(name, version, "reject", comment, False, workspace, as_json)
