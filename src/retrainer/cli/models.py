"""The registry: ``models list``, ``models show``, ``promote``, ``rollback``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from retrainer.cli.common import (
    JsonOpt,
    WorkspaceOpt,
    acting,
    bold,
    console,
    guard,
    open_workspace,
    version_label,
)
from retrainer.cli.render import fmt_metric, print_json, table
from retrainer.governance.approvals import approval_check, status
from retrainer.registry import CHAMPION, parse_ref, promote, rollback

__all__ = ["models_list", "models_show", "promote_cmd", "rollback_cmd"]


def models_list(workspace: WorkspaceOpt = Path(), as_json: JsonOpt = False) -> None:
    """Every model in the store with its champion and versions.

    Example: [bold]retrainer models list --json[/bold]
    """
    c = console()

    def body() -> list[dict[str, Any]]:
        with open_workspace(workspace) as ws:
            out = []
            for name in ws.registry.models():
                versions = ws.registry.versions(name)
                champ = ws.registry.get_alias(name, CHAMPION)
                metric = next((v.metrics for v in versions if v.version == champ), {})
                out.append(
                    {
                        "model": name,
                        "champion": champ,
                        "versions": len(versions),
                        "latest": versions[0].version if versions else None,
                        "aliases": ws.registry.aliases(name),
                        "metrics": metric,
                    }
                )
            return out

    rows = guard(body)
    if as_json:
        print_json(c, rows)
        return
    c.print(
        table(
            "Models",
            ["model", "champion", "versions", "latest", "aliases", "champion metrics"],
            [
                (
                    r["model"],
                    f"v{r['champion']}" if r["champion"] else None,
                    r["versions"],
                    f"v{r['latest']}",
                    ", ".join(f"{a}=v{v}" for a, v in r["aliases"].items()),
                    ", ".join(
                        f"{k} {fmt_metric(v) if k != 'holdout_rows' else v}"
                        for k, v in r["metrics"].items()
                    ),
                )
                for r in rows
            ],
            numeric=["versions"],
        )
    )


def models_show(
    ref: Annotated[str, typer.Argument(help="NAME (its champion), NAME@ALIAS or NAME:VERSION.")],
    workspace: WorkspaceOpt = Path(),
    as_json: JsonOpt = False,
) -> None:
    """One version: status, artifact hash, metrics, lineage, decision record; and all versions.

    Examples: [bold]retrainer models show rain[/bold], [bold]rain@champion[/bold],
    [bold]rain:3[/bold]
    """
    c = console()

    def body() -> dict[str, Any]:
        with open_workspace(workspace) as ws:
            info = ws.registry.resolve(parse_ref(ref))
            return {
                "version": info.to_dict(),
                "versions": [v.to_dict() for v in ws.registry.versions(info.model)],
                "history": [m.to_dict() for m in ws.registry.history(info.model)],
            }

    data = guard(body)
    if as_json:
        print_json(c, data)
        return
    v = data["version"]
    lin = v["lineage"]
    c.print(
        bold(f"{v['model']}:{v['version']}"),
        f"  {v['status']}  aliases: "
        f"{', '.join(v['aliases']) or '-'}  created {v['created_at'][:19]} by {v['created_by']}",
        sep="",
    )
    c.print(f"artifact sha256: {v['artifact_sha256']}")
    c.print(
        f"trained on: {lin.get('train_rows')} rows "
        f"{' .. '.join(str(t)[:10] for t in lin.get('time_range') or [])} "
        f"(snapshot sha256 {str(lin.get('train_sha256'))[:12]}), seed {lin.get('seed')}"
    )
    c.print(f"why: {lin.get('trigger', {}).get('reason', '-')}")
    dec = v["decision"]
    if dec:
        c.print(
            table(
                f"Decision record: {'PASSED' if dec['passed'] else 'FAILED'}",
                ["gate", "status", "reason"],
                [
                    (g["name"], g.get("status", "pass" if g["passed"] else "fail"), g["reason"])
                    for g in dec["gates"]
                ],
            )
        )
    c.print(
        table(
            "Versions",
            ["version", "status", "aliases", "metric", "gates", "created"],
            [
                (
                    f"v{x['version']}",
                    x["status"],
                    ", ".join(x["aliases"]),
                    fmt_metric(x["decision"].get("candidate_metric")),
                    "-"
                    if not x["decision"]
                    else ("passed" if x["decision"]["passed"] else "failed"),
                    x["created_at"][:19],
                )
                for x in data["versions"]
            ],
        )
    )
    c.print(
        table(
            "Alias history",
            ["at", "alias", "from", "to", "by", "reason"],
            [
                (
                    h["at"][:19],
                    h["alias"],
                    h["from_version"],
                    h["to_version"],
                    h["actor"],
                    h["reason"],
                )
                for h in data["history"]
            ],
        )
    )


def promote_cmd(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version to make champion.")],
    expect_champion: Annotated[
        int | None,
        typer.Option(
            help="Only if the champion is still this version (compare-and-swap); "
            "default: as read now."
        ),
    ] = None,
    reason: Annotated[
        str, typer.Option(help="Recorded in alias history and audit.")
    ] = "manual promotion",
    workspace: WorkspaceOpt = Path(),
    as_json: JsonOpt = False,
) -> None:
    """Make VERSION the champion (admin only). It must be READY with a decision record
    whose gates passed, and approved when the spec's approval policy asks for it.

    Example: [bold]retrainer promote rain 4 --reason "approved in review 2026-11-25"[/bold]
    """
    c = console()

    def body() -> dict[str, Any]:
        with open_workspace(workspace) as ws:
            expected = (
                expect_champion
                if expect_champion is not None
                else ws.registry.get_alias(name, CHAMPION)
            )
            who = acting(ws, "promote", "promoting by hand")
            needs = list(status(ws, name, version).needs)
            return promote(
                ws.registry,
                name,
                version,
                actor=who,
                reason=reason,
                expected=expected,
                check=approval_check(ws, needs),
            ).to_dict()

    move = guard(body)
    if as_json:
        print_json(c, move)
        return
    c.print(f"{name}@champion: {version_label(move['from_version'])} -> v{move['to_version']}")


def rollback_cmd(
    name: Annotated[str, typer.Argument(help="Model name.")],
    reason: Annotated[
        str, typer.Option(help="Recorded in alias history and audit.")
    ] = "manual rollback",
    workspace: WorkspaceOpt = Path(),
    as_json: JsonOpt = False,
) -> None:
    """Move the champion back to the previous champion (from alias history).

    Example: [bold]retrainer rollback rain --reason "complaints from ops"[/bold]
    """
    c = console()

    def body() -> dict[str, Any]:
        with open_workspace(workspace) as ws:
            return rollback(
                ws.registry,
                name,
                actor=acting(ws, "promote", "rolling back by hand"),
                reason=reason,
            ).to_dict()

    move = guard(body)
    if as_json:
        print_json(c, move)
        return
    old = version_label(move["from_version"])
    c.print(f"{name}@champion: {old} -> v{move['to_version']} (rolled back)")
