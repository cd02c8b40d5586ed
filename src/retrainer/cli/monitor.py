"""``retrainer monitor NAME``: monitoring results over time, one row per batch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from retrainer.cli.common import (
    JsonOpt,
    WorkspaceOpt,
    check_model,
    console,
    guard,
    open_workspace,
)
from retrainer.cli.render import fmt_metric, print_json, table
from retrainer.orchestrate.monitoring import monitoring_history

__all__ = ["monitor_cmd"]


def monitor_cmd(
    name: Annotated[str, typer.Argument(help="Model name.")],
    limit: Annotated[int, typer.Option(help="How many of the newest batches.")] = 30,
    workspace: WorkspaceOpt = Path(),
    as_json: JsonOpt = False,
) -> None:
    """Monitoring over time: per batch, the champion's realised and estimated metric, drift,
    and what was decided.

    Example: [bold]retrainer monitor rain --limit 10[/bold]
    """
    c = console()

    def body() -> list[dict[str, Any]]:
        with open_workspace(workspace) as ws:
            check_model(ws, name)
            return monitoring_history(ws, limit=limit)

    rows = guard(body)
    if as_json:
        print_json(c, rows)
        return
    metric = rows[0]["metric"] if rows else "metric"
    c.print(
        table(
            f"Monitoring of {name}: the champion on each batch (newest last)",
            ["batch", "rows", "champ", metric, "est.", "drift", "retrain"],
            [
                (
                    r["key"],
                    r["rows"],
                    f"v{r['champion']}" if r["champion"] else None,
                    fmt_metric(r["realised"]),
                    fmt_metric(r["estimated"]),
                    _drift(r),
                    "quarantined" if r["status"] == "quarantined" else _decision(r["decision"]),
                )
                for r in rows
            ],
            numeric=["rows", metric, "est.", "drift"],
            no_wrap=["batch", "champ", metric, "est.", "drift", "retrain"],
        )
    )
    c.print(
        f"{metric}: realised on the batch's labels; est.: estimated without them (CBPE); "
        "drift: share of features drifted from the champion's training data."
    )
    newest = next((r for r in reversed(rows) if r["drift_share"] is not None), None)
    if newest is not None:
        drifted = ", ".join(newest["drifted"]) or "none"
        c.print(f"Drifted in {newest['key']}: {drifted}")


def _drift(row: dict[str, Any]) -> str:
    return "-" if row["drift_share"] is None else f"{row['drift_share']:.0%}"


def _decision(decision: dict[str, Any]) -> str:
    return str(decision["kind"]) if decision["fire"] else "-"
