"""``retrainer contract infer|check``: write a data contract from data, try a file on it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from retrainer.cli.common import (
    JsonOpt,
    WorkspaceOpt,
    check_model,
    console,
    guard,
    open_workspace,
)
from retrainer.cli.render import print_json, table
from retrainer.data.infer import infer_contract
from retrainer.data.screen import champion_training, check_file
from retrainer.errors import ContractViolation, DataSourceError

__all__ = ["contract_check", "contract_infer"]


def contract_infer(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[
        int | None, typer.Option(help="Infer from this version's training data instead.")
    ] = None,
    widen: Annotated[
        float, typer.Option(min=0.0, help="Widen each observed range by this share of its span.")
    ] = 0.1,
    null_margin: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Null share tolerated above the observed.")
    ] = 0.05,
    max_categories: Annotated[
        int, typer.Option(min=1, help="Text columns with more distinct values get no 'allowed'.")
    ] = 50,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the YAML to this file (not stdout).")
    ] = None,
    workspace: WorkspaceOpt = Path(),
    as_json: JsonOpt = False,
) -> None:
    """Infer a data contract from the champion's training data, as YAML for the spec.

    Per column: dtype, observed range (widened), known categories, largest null share.
    Paste the output over the 'contract:' section of retrainer.yaml and edit it.

    Examples: [bold]retrainer contract infer rain[/bold],
    [bold]retrainer contract infer rain --widen 0.2 --out contract.yaml[/bold]
    """
    c = console()

    def body() -> dict[str, Any]:
        with open_workspace(workspace) as ws:
            check_model(ws, name)
            used, snap = champion_training(ws.registry, ws.ledger, name, version)
            section = infer_contract(
                ws.ledger.load_frame(snap),
                ws.spec,
                widen=widen,
                null_margin=null_margin,
                max_categories=max_categories,
            )
            return {"version": used, "snapshot": snap.to_dict(), "contract": section}

    data = guard(body)
    if as_json:
        print_json(c, data)
        return
    snap = data["snapshot"]
    text = (
        f"# Inferred by 'retrainer contract infer' on {datetime.now(UTC):%Y-%m-%d} from "
        f"{name}:{data['version']}'s training data\n"
        f"# ({snap['row_count']} rows, snapshot sha256 {snap['content_hash'][:12]}); ranges "
        f"widened by {widen:g} of their span. Review before use: docs/contracts.md\n"
        + yaml.safe_dump(
            {"contract": data["contract"]},
            sort_keys=False,
            default_flow_style=None,
            allow_unicode=True,
            width=88,
        )
    )
    if out is None:
        c.file.write(text)
        return

    def write() -> None:
        try:
            tmp = out.with_name(f".{out.name}.tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(out)
        except OSError as exc:
            raise DataSourceError(f"cannot write {out}: {exc.strerror or exc}") from exc

    guard(write)
    c.print(f"wrote the inferred contract to {out}", soft_wrap=True)


def contract_check(
    name: Annotated[str, typer.Argument(help="Model name.")],
    file: Annotated[Path, typer.Argument(help="A .csv or .parquet file.")],
    workspace: WorkspaceOpt = Path(),
    as_json: JsonOpt = False,
) -> None:
    """Check a file against the spec's contract, as if it arrived as the next batch.

    Nothing is recorded. Exit code 0 when it passes (warnings included), 2 when it fails.
    Example: [bold]retrainer contract check rain new-data.csv[/bold]
    """
    c = console()

    def body() -> dict[str, Any]:
        with open_workspace(workspace) as ws:
            check_model(ws, name)
            return check_file(ws.registry, ws.ledger, ws.spec, file.resolve()).to_dict()

    report = guard(body)
    if as_json:
        print_json(c, report)
    else:
        for title, findings in (("Failures", report["failures"]), ("Warnings", report["warnings"])):
            if findings:
                c.print(
                    table(
                        f"{title} ({len(findings)})",
                        ["code", "column", "rows", "message"],
                        [
                            (f["check"], f["column"], f["count"] or None, f["message"])
                            for f in findings
                        ],
                        numeric=["rows"],
                        no_wrap=["code"],
                    )
                )
        verdict = "passes" if report["passed"] else "fails"
        flags = f" (flagged: {', '.join(report['flags'])})" if report["flags"] else ""
        c.print(
            f"{file} {verdict} the contract of {name}: {report['row_count']} rows{flags}",
            soft_wrap=True,
        )
    if not report["passed"]:
        raise typer.Exit(ContractViolation.exit_code)
