"""``retrainer rollout status|abort|advance``: watch and steer a shadow or canary rollout."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from retrainer.cli.common import (
    JsonOpt,
    WorkspaceOpt,
    acting,
    bold,
    check_model,
    console,
    guard,
    open_workspace,
)
from retrainer.cli.render import print_json, table
from retrainer.deploy import abort, advance, rollout_status

__all__ = ["rollout_abort", "rollout_advance", "rollout_status_cmd"]

NameArg = Annotated[str, typer.Argument(help="Model name.")]
ReasonOpt = Annotated[
    str, typer.Option("--reason", help="Why (required): recorded in the audit trail.")
]


def _num(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def rollout_status_cmd(
    name: NameArg, workspace: WorkspaceOpt = Path(), as_json: JsonOpt = False
) -> None:
    """The active (else the last) rollout: state, step, traffic and guardrail verdicts.

    Example: [bold]retrainer rollout status rain[/bold]
    """
    c = console()

    def body() -> dict[str, Any]:
        with open_workspace(workspace) as ws:
            check_model(ws, name)
            return rollout_status(ws, name)

    data = guard(body)
    if as_json:
        print_json(c, data)
        return
    r = data["rollout"]
    champion = "none" if data["champion"] is None else f"v{data['champion']}"
    if r is None:
        c.print(f"No rollout of {name} yet (champion {champion}).")
        return
    c.print(
        bold(f"rollout {r['id']} of {name}: v{r['candidate']} against v{r['baseline']}"),
        f"  {r['strategy']}, {r['state']}",
        sep="",
    )
    steps = ", ".join(f"{p:g}%" for p in r["steps"])
    if r["strategy"] == "canary":
        c.print(
            f"step {r['step'] + 1}/{len(r['steps'])} ({steps}); "
            f"candidate traffic now {r['percentage']:g}%"
        )
    c.print(f"champion {champion}; started {r['started_at'][:19]} by {r['actor']}")
    if r["reason"]:
        c.print(f"last: {r['reason']}")
    if data["waiting"]:
        c.print(f"waiting: {data['waiting']}")
    c.print(
        table(
            "Traffic this step",
            ["version", "role", "requests", "errors", "error rate", "p99 ms"],
            [
                (
                    f"v{v['version']}",
                    v["role"],
                    v["requests"],
                    v["errors"],
                    _num(v["error_rate"], ".4f"),
                    _num(v["p99_ms"], ".1f"),
                )
                for v in data["versions"]
            ],
            numeric=["requests", "errors", "error rate", "p99 ms"],
        )
    )
    c.print(
        table(
            "Guardrails",
            ["guardrail", "verdict", "value", "threshold", "why"],
            [
                (
                    v["name"],
                    v["status"],
                    _num(v["value"], ".4g"),
                    _num(v["threshold"], "g"),
                    v["reason"],
                )
                for v in data["verdicts"]
            ],
            numeric=["value", "threshold"],
            no_wrap=["guardrail", "verdict"],
        )
    )


def rollout_abort(
    name: NameArg, reason: ReasonOpt, workspace: WorkspaceOpt = Path(), as_json: JsonOpt = False
) -> None:
    """Stop the active rollout; the champion keeps all traffic. Audited, alerted.

    Example: [bold]retrainer rollout abort rain --reason "odd predictions"[/bold]
    """
    c = console()

    def body() -> dict[str, Any]:
        with open_workspace(workspace) as ws:
            check_model(ws, name)
            return abort(
                ws, name, actor=acting(ws, "rollout", "aborting a rollout"), reason=reason
            ).to_dict()

    data = guard(body)
    if as_json:
        print_json(c, data)
        return
    c.print(f"rollout {data['id']} of {name} aborted: v{data['baseline']} keeps all traffic.")


def rollout_advance(
    name: NameArg, reason: ReasonOpt, workspace: WorkspaceOpt = Path(), as_json: JsonOpt = False
) -> None:
    """Manual override: the next step now (or promotion after the last), guardrails unjudged.

    Audited with your name and reason. Example:
    [bold]retrainer rollout advance rain --reason "verified by hand"[/bold]
    """
    c = console()

    def body() -> dict[str, Any]:
        with open_workspace(workspace) as ws:
            check_model(ws, name)
            return advance(
                ws, name, actor=acting(ws, "rollout", "advancing a rollout"), reason=reason
            ).to_dict()

    data = guard(body)
    if as_json:
        print_json(c, data)
        return
    r = data["rollout"]
    if data["action"] == "promoted":
        c.print(f"v{r['candidate']} promoted: rollout {r['id']} of {name} is complete.")
    elif data["action"] == "advanced":
        c.print(
            f"rollout {r['id']} of {name}: step {r['step'] + 1}, "
            f"candidate traffic {r['percentage']:g}%."
        )
    else:
        c.print(f"rollout {r['id']} of {name} {data['action']}: {data['reason']}")
        raise typer.Exit(4)
