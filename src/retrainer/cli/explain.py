"""``retrainer explain``: why a version was promoted or blocked, gate by gate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from retrainer.cli.common import JsonOpt, WorkspaceOpt, bold, console, guard, open_workspace
from retrainer.cli.render import fmt_metric, print_json, table
from retrainer.errors import NotFoundError
from retrainer.registry import CHAMPION

__all__ = ["explain_cmd"]

_MAX_DETAIL_ROWS = 40


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _status(gate: dict[str, Any]) -> str:
    return str(gate.get("status") or ("pass" if gate.get("passed") else "fail"))


def _ci(gate: dict[str, Any]) -> str:
    lo, hi = gate.get("ci_low"), gate.get("ci_high")
    return "-" if lo is None or hi is None else f"[{_num(lo)}, {_num(hi)}]"


def _facts(v: dict[str, Any]) -> list[str]:
    """Short lines about where the version came from."""
    lin = v.get("lineage") or {}
    holdouts = ((v.get("decision") or {}).get("extra") or {}).get("champion_holdouts")
    out = [
        f"status {v['status']}; aliases {', '.join(v['aliases']) or 'none'}; "
        f"created {str(v['created_at'])[:19]} by {v['created_by']}"
    ]
    trigger = (lin.get("trigger") or {}).get("reason")
    if trigger:
        out.append(f"why it was trained: {trigger}")
    if lin.get("train_rows") is not None:
        out.append(
            f"trained on {lin['train_rows']} rows (snapshot sha256 "
            f"{str(lin.get('train_sha256'))[:12]}), judged on holdout snapshot sha256 "
            f"{str(lin.get('holdout_sha256'))[:12]}"
        )
    if isinstance(holdouts, dict) and holdouts.get("reason"):
        out.append(f"champion on its own holdout and on this one: {holdouts['reason']}")
    leak = lin.get("leakage")
    if isinstance(leak, dict) and leak.get("features"):
        strongest = max(leak["features"], key=lambda f: f["value"])
        out.append(
            f"leakage checks passed: strongest single feature {strongest['feature']!r} "
            f"({strongest['measure']} {strongest['value']:.3f}); "
            f"{leak.get('holdout_rows_dropped', 0)} training rows equal to holdout rows dropped"
        )
    return out


def explain_cmd(
    name: Annotated[str, typer.Argument(help="The model's name.")],
    version: Annotated[
        int | None,
        typer.Argument(help="The version (default: the champion).", show_default=False),
    ] = None,
    workspace: WorkspaceOpt = Path(),
    as_json: JsonOpt = False,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            help="Also write the record as an HTML page with plots (CI bars, ROC/PR curves "
            "or residuals, per-slice metric).",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
) -> None:
    """The decision record of a version: every gate with its status (pass, fail,
    not_evaluable, skipped), value, threshold, confidence interval and reason.

    Examples: [bold]retrainer explain rain[/bold] (the champion),
    [bold]retrainer explain rain 3 --html v3.html[/bold], [bold]retrainer explain rain 3
    --json[/bold]
    """
    c = console()

    def body() -> dict[str, Any]:
        with open_workspace(workspace) as ws:
            number = version
            if number is None:
                number = ws.registry.get_alias(name, CHAMPION)
                if number is None:
                    raise NotFoundError(
                        f"model {name!r} has no champion; name a version "
                        "(see 'retrainer models show')"
                    )
            info = ws.registry.get(name, number).to_dict()
        if not info["decision"]:
            why = (info.get("lineage") or {}).get("failure") or info["status"]
            raise NotFoundError(
                f"{name}:{number} has no decision record: it was not evaluated ({why})"
            )
        written = None
        if html is not None:
            from retrainer.evaluate.explain_html import render_decision_html  # matplotlib
            from retrainer.textfile import write_text_atomic

            page = render_decision_html(
                info["decision"], title=f"{name}:{number} decision record", facts=_facts(info)
            )
            written = str(write_text_atomic(html, page))
        return {
            "model": name,
            "version": number,
            "status": info["status"],
            "aliases": info["aliases"],
            "decision": info["decision"],
            "facts": _facts(info),
            "html": written,
        }

    data = guard(body)
    if as_json:
        print_json(c, data)
        return
    d = data["decision"]
    verdict = "PASSED" if d.get("passed") else "BLOCKED"
    summary = str(d.get("summary", "")).removeprefix("passed: ").removeprefix("failed: ")
    c.print(
        bold(f"{data['model']}:{data['version']} {verdict}"),
        f"  {summary}",
        soft_wrap=True,
    )
    champ = d.get("champion_version")
    c.print(
        f"{d.get('metric')}: candidate {fmt_metric(d.get('candidate_metric'))}"
        + (f", champion v{champ} {fmt_metric(d.get('champion_metric'))}" if champ else "")
        + f" on {d.get('holdout_rows')} holdout rows",
        soft_wrap=True,
    )
    for line in data["facts"]:
        c.print(line, soft_wrap=True)
    gates = d.get("gates") or []
    c.print(
        table(
            "Gates",
            ["gate", "status", "value", "threshold", "CI", "reason"],
            [
                (
                    g["name"],
                    _status(g),
                    _num(g.get("value")),
                    _num(g.get("threshold")),
                    _ci(g),
                    g.get("reason", ""),
                )
                for g in gates
            ],
            numeric=["value", "threshold"],
            no_wrap=["gate", "status"],
        )
    )
    for g in gates:
        rows = g.get("details") or []
        if not rows:
            continue
        columns = list(dict.fromkeys(k for row in rows for k in row))
        shown = rows[:_MAX_DETAIL_ROWS]
        c.print(
            table(
                f"{g['name']}: details"
                + (f" (first {len(shown)} of {len(rows)})" if len(rows) > len(shown) else ""),
                columns,
                [tuple(_num(row.get(k)) for k in columns) for row in shown],
            )
        )
    if data["html"]:
        c.print(f"wrote {data['html']}")
