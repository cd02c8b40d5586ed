"""``retrainer quarantine list|show|release|discard``: the operator's view of bad batches."""

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
from retrainer.data.quarantine import (
    Decision,
    decide_batch,
    describe_batch,
    quarantined_batches,
)

__all__ = ["quarantine_discard", "quarantine_list", "quarantine_release", "quarantine_show"]

NameArg = Annotated[str, typer.Argument(help="Model name.")]
BatchArg = Annotated[int, typer.Argument(help="Batch id (see 'retrainer quarantine list').")]
ReasonOpt = Annotated[
    str, typer.Option("--reason", help="Why (required): recorded on the batch and in the audit.")
]


def quarantine_list(
    name: NameArg,
    all_: Annotated[
        bool, typer.Option("--all", help="Also batches already released or discarded.")
    ] = False,
    workspace: WorkspaceOpt = Path(),
    as_json: JsonOpt = False,
) -> None:
    """Quarantined batches, kept with their reasons and never trained on until released.

    Examples: [bold]retrainer quarantine list rain[/bold],
    [bold]retrainer quarantine list rain --all --json[/bold]
    """
    c = console()

    def body() -> list[dict[str, Any]]:
        with open_workspace(workspace) as ws:
            check_model(ws, name)
            return [b.to_dict() for b in quarantined_batches(ws.ledger, name, include_decided=all_)]

    rows = guard(body)
    if as_json:
        print_json(c, rows)
        return
    if not rows:
        c.print(f"No quarantined batches for {name}.")
        return
    columns = ["id", "batch", *(["status"] if all_ else []), "rows", "why"]
    c.print(
        table(
            f"Quarantined batches of {name} (kept, never trained on unless released)",
            columns,
            [
                (
                    b["id"],
                    b["batch_key"],
                    *([b["status"]] if all_ else []),
                    b["row_count"] if b["snapshot_id"] is not None else None,
                    _why(b),
                )
                for b in rows
            ],
            numeric=["id", "rows"],
            no_wrap=["id", "batch", "status"],
        )
    )
    c.print(f"Details: retrainer quarantine show {name} ID; then release or discard it.")


def _why(batch: dict[str, Any]) -> str:
    """``CODE: message`` of the first failure, and how many more there are."""
    failures = list(batch["reasons"].get("failures", []))
    if not failures:
        return "-"
    more = f" (+{len(failures) - 1} more)" if len(failures) > 1 else ""
    return f"{failures[0]['check']}: {failures[0]['message']}{more}"


def quarantine_show(
    name: NameArg,
    batch_id: BatchArg,
    rows: Annotated[
        int, typer.Option("--rows", min=0, help="Failing rows shown per finding (0: none).")
    ] = 5,
    workspace: WorkspaceOpt = Path(),
    as_json: JsonOpt = False,
) -> None:
    """A batch's full contract report: every failure and warning, with its failing rows.

    Works for any batch, quarantined or not. Example:
    [bold]retrainer quarantine show rain 10 --rows 3[/bold]
    """
    c = console()

    def body() -> dict[str, Any]:
        with open_workspace(workspace) as ws:
            check_model(ws, name)
            return describe_batch(ws.ledger, name, batch_id, rows=rows)

    data = guard(body)
    if as_json:
        print_json(c, data)
        return
    b = data["batch"]
    c.print(bold(f"batch {b['id']}: {b['batch_key']}"), f"  {b['status']}", sep="")
    c.print(f"received {b['received_at'][:19]} from {b['source_uri']} (run {b['run_id'][:8]})")
    snap = data["snapshot"]
    if snap is not None:
        c.print(
            f"rows: {snap['row_count']} kept as received "
            f"(snapshot sha256 {snap['content_hash'][:12]})"
        )
    dedup = data["deduplicated"]
    if dedup:
        c.print(
            f"deduplicated: {dedup['kept_rows']} of {dedup['received_rows']} rows used "
            f"({dedup['duplicate_rows']} duplicate rows, {dedup['duplicate_keys']} duplicate keys "
            "dropped)"
        )
    if data["flags"]:
        c.print(f"flags: {', '.join(data['flags'])}")
    review = data["review"]
    if review:
        c.print(
            f"{review['action']} by {review['actor']} at {review['at'][:19]}: {review['reason']}"
        )
    for title, findings in (("Failures", data["failures"]), ("Warnings", data["warnings"])):
        if not findings:
            continue
        c.print(
            table(
                f"{title} ({len(findings)})",
                ["code", "column", "rows", "message"],
                [(f["check"], f["column"], f.get("count") or None, f["message"]) for f in findings],
                numeric=["rows"],
                no_wrap=["code"],
            )
        )
        for f in findings:
            if f["sample"]:
                cols = list(f["sample"][0])
                where = f" on {f['column']}" if f["column"] else ""
                c.print(
                    table(
                        f"{f['check']}{where}: first {len(f['sample'])} of {f['count']} rows",
                        cols,
                        [[r.get(k) for k in cols] for r in f["sample"]],
                    )
                )
    if data["passed"] and not data["failures"]:
        c.print("The batch passed the contract.")


def _decide(
    name: str, batch_id: int, decision: Decision, reason: str, workspace: Path, as_json: bool
) -> None:
    c = console()
    if not reason.strip():
        raise typer.BadParameter("must not be blank", param_hint="'--reason'")

    def body() -> dict[str, Any]:
        with open_workspace(workspace) as ws:
            check_model(ws, name)
            record = decide_batch(
                ws.ledger,
                name,
                batch_id,
                decision,
                actor=acting(ws, "run", f"{decision} a batch"),
                reason=reason,
            )
            return record.to_dict()

    batch = guard(body)
    if as_json:
        print_json(c, batch)
        return
    after = (
        "it is used for training like an accepted batch"
        if decision == "released"
        else "it stays on disk and is never used"
    )
    c.print(f"batch {batch['id']} ({batch['batch_key']}) {decision}: {after}")


def quarantine_release(
    name: NameArg,
    batch_id: BatchArg,
    reason: ReasonOpt,
    workspace: WorkspaceOpt = Path(),
    as_json: JsonOpt = False,
) -> None:
    """Release a quarantined batch: from the next cycle on it is trained on and counted.

    Audited with who and why. Example:
    [bold]retrainer quarantine release rain 10 --reason "small but checked by hand"[/bold]
    """
    _decide(name, batch_id, "released", reason, workspace, as_json)


def quarantine_discard(
    name: NameArg,
    batch_id: BatchArg,
    reason: ReasonOpt,
    workspace: WorkspaceOpt = Path(),
    as_json: JsonOpt = False,
) -> None:
    """Discard a quarantined batch: kept on disk (never deleted), never used.

    Audited with who and why. Example:
    [bold]retrainer quarantine discard rain 10 --reason "sensor fault, resent as rain-1960b"[/bold]
    """
    _decide(name, batch_id, "discarded", reason, workspace, as_json)
