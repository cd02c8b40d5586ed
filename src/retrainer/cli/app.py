"""Commands of the ``retrainer`` CLI.

Exit codes: 0 success; 1 unexpected error; 2 bad input (spec, arguments, data);
3 not found; 4 conflict (state changed under you, or another cycle is running);
5 integrity (artifact hash mismatch, untrusted artifact); 6 refused by policy.
"""

from __future__ import annotations

import getpass
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from retrainer.cli.render import fmt_metric, print_json, table
from retrainer.errors import NotFoundError, RetrainerError
from retrainer.orchestrate.cycle import STEPS, CycleResult, run_cycle
from retrainer.orchestrate.status import workspace_status
from retrainer.quickstart.workspace_init import EXAMPLES, init_workspace
from retrainer.registry import CHAMPION, parse_ref, promote, rollback
from retrainer.registry.audit import list_events
from retrainer.registry.db import as_utc
from retrainer.workspace import Workspace

__all__ = ["app", "main"]

T = TypeVar("T")
app = typer.Typer(
    name="retrainer",
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    help="Keep a production model good as its data changes: monitor, retrain, validate, "
    "promote, govern.\n\nStart with [bold]retrainer quickstart[/bold], or "
    "[bold]retrainer init[/bold] then [bold]retrainer run[/bold].",
    epilog="Exit codes: 0 ok, 1 internal error, 2 bad input, 3 not found, 4 conflict, "
    "5 integrity, 6 refused by policy.",
)
models_app = typer.Typer(no_args_is_help=True, help="List and inspect model versions.")
audit_app = typer.Typer(no_args_is_help=True, help="Read the audit trail.")
app.add_typer(models_app, name="models")
app.add_typer(audit_app, name="audit")

WorkspaceOpt = Annotated[
    Path,
    typer.Option(
        "--workspace",
        "-w",
        envvar="RETRAINER_WORKSPACE",
        help="Workspace folder (or its retrainer.yaml).",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]


def _console() -> Console:
    return Console(highlight=False, soft_wrap=False)


def _actor() -> str:
    """Who is acting: RETRAINER_ACTOR, else the local user (embedded default)."""
    return os.environ.get("RETRAINER_ACTOR") or f"local:{getpass.getuser()}"


@contextmanager
def _workspace(path: Path) -> Iterator[Workspace]:
    ws = Workspace.open(path)
    try:
        yield ws
    finally:
        ws.close()


def _check_model(ws: Workspace, name: str) -> None:
    if name != ws.spec.model.name:
        raise NotFoundError(f"this workspace's model is {ws.spec.model.name!r}, not {name!r}")


def _guard(fn: Callable[[], T]) -> T:
    """Run a command body; map retrainer errors to their exit codes with one clear line."""
    try:
        return fn()
    except RetrainerError as exc:
        Console(stderr=True, highlight=False).print(
            f"[bold red]error[/] [{exc.code}] {exc.message}", markup=True, soft_wrap=True
        )
        raise typer.Exit(exc.exit_code) from None


# -- setting up --------------------------------------------------------------------------


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create the workspace in.")] = Path(),
    example: Annotated[
        str | None, typer.Option(help=f"Start from an example: {', '.join(EXAMPLES)}.")
    ] = None,
) -> None:
    """Create a workspace: a commented retrainer.yaml (and example data with --example).

    Example: [bold]retrainer init rain-demo --example rainfall[/bold]
    """
    spec = _guard(lambda: init_workspace(directory, example=example))
    c = _console()
    c.print(f"Created {spec}")
    c.print(
        f"Next: edit it, put batch files in {directory / 'data' / 'batches'}, then "
        f"'retrainer -w {directory} run'."
    )


@app.command()
def quickstart(
    directory: Annotated[
        Path, typer.Argument(help="Folder for the demo workspace (recreated if it is one).")
    ] = Path("retrainer-quickstart"),
    as_json: JsonOpt = False,
) -> None:
    """Stream 50 years of NOAA rainfall data through the real loop and write an HTML report.

    Shows the champion degrading after the data changes, a retrain being triggered,
    validated against the champion on the same holdout and promoted.
    """
    from retrainer.quickstart.report import write_report
    from retrainer.quickstart.stream import run_quickstart, story

    c = _console()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[note]}"),
        console=Console(stderr=True),
        transient=as_json,
    ) as bar:
        task = bar.add_task("streaming yearly batches", total=None, note="")

        def progress(done: int, total: int, note: str) -> None:
            bar.update(task, completed=done, total=total, note=note[:60])

        result = _guard(lambda: run_quickstart(directory, actor=_actor(), progress=progress))
    result.report = write_report(result, directory / "report.html")
    if as_json:
        print_json(c, result.to_dict())
        return
    c.print(
        table(
            f"Versions ({result.metric}: new version vs champion on the same holdout)",
            ["version", "trained on", "rows", "why", "new", "champ", "promoted"],
            [
                (
                    f"v{v.version}",
                    v.trained_on,
                    v.train_rows,
                    v.trigger,
                    fmt_metric(v.holdout_metric),
                    fmt_metric(v.champion_metric),
                    "yes" if v.promoted else "no",
                )
                for v in result.versions
            ],
            numeric=["rows", "new", "champ"],
        )
    )
    for line in story(result):
        c.print(line)
    after = [p for p in result.points if p.year > int(result.change_date[:4])]
    w = [p.with_retraining for p in after if p.with_retraining is not None]
    wo = [p.without_retraining for p in after if p.without_retraining is not None]
    if w and wo:
        c.print(
            f"Since the change: mean {result.metric} {sum(w) / len(w):.3f} with retraining, "
            f"{sum(wo) / len(wo):.3f} without."
        )
    c.print(f"Report: {result.report}")
    c.print(
        f"Explore: cd {directory} && retrainer status  (also: models list, models show rain, "
        "audit log)"
    )


# -- the loop ----------------------------------------------------------------------------


def _render_cycle(c: Console, result: CycleResult, as_json: bool) -> None:
    if as_json:
        print_json(c, result.to_dict())
        return
    resumed = " (resumed an interrupted run)" if result.resumed else ""
    c.print(f"run {result.run_id}{resumed}: [bold]{result.status}[/]")
    rows = []
    for name in STEPS:
        out = result.steps.get(name)
        if out is not None:
            rows.append((name, _step_note(name, out)))
    c.print(table(None, ["step", "result"], rows))
    c.print(result.outcome)


def _step_note(name: str, out: dict[str, Any]) -> str:
    notes: dict[str, Callable[[], str]] = {
        "ingest": lambda: f"{len(out['batches'])} new batch(es)",
        "contract": lambda: (
            f"{len(out['accepted'])} accepted, {len(out['quarantined'])} quarantined"
            + "".join(f"\n  quarantined {q['key']}: {q['why']}" for q in out["quarantined"])
        ),
        "monitor": lambda: (
            "no champion yet"
            if out["champion"] is None
            else "; ".join(
                f"v{out['champion']} on {b['key']}: "
                + ", ".join(f"{k} {fmt_metric(v)}" for k, v in b["metrics"].items())
                for b in out["batches"]
            )
            or "no new labelled batch"
        ),
        "decide": lambda: out["reason"],
        "datasets": lambda: (
            (out.get("duplicate_of") and f"duplicate of run {out['duplicate_of']}")
            or f"train {out['train']['row_count']} rows, holdout {out['holdout']['row_count']} rows"
        ),
        "train": lambda: (
            f"version {out['version']} in {out['seconds']}s (sha256 {out['sha256'][:12]})"
        ),
        "evaluate": lambda: out["decision"]["summary"],
        "register": lambda: f"version {out['version']} READY",
        "promote": lambda: out["outcome"],
    }
    return notes[name]()


@app.command()
def run(workspace: WorkspaceOpt = Path(), as_json: JsonOpt = False) -> None:
    """Run one cycle: ingest new batches, check them, decide, retrain, validate, promote.

    An interrupted cycle is resumed where it stopped. Example: [bold]retrainer run[/bold]
    """
    c = _console()

    def body() -> CycleResult:
        with _workspace(workspace) as ws:
            return run_cycle(ws, actor=_actor())

    _render_cycle(c, _guard(body), as_json)


@app.command()
def retrain(
    name: Annotated[str, typer.Argument(help="Model name.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in lineage and audit).")],
    workspace: WorkspaceOpt = Path(),
    as_json: JsonOpt = False,
) -> None:
    """Retrain now (a manual trigger), then validate and promote as usual.

    Example: [bold]retrainer retrain rain --reason "new sensor calibration"[/bold]
    """
    c = _console()

    def body() -> CycleResult:
        with _workspace(workspace) as ws:
            _check_model(ws, name)
            return run_cycle(ws, actor=_actor(), manual_reason=reason)

    _render_cycle(c, _guard(body), as_json)


@app.command()
def status(workspace: WorkspaceOpt = Path(), as_json: JsonOpt = False) -> None:
    """The workspace at a glance: champion, recent runs, quarantined batches."""
    c = _console()

    def body() -> dict[str, Any]:
        with _workspace(workspace) as ws:
            return workspace_status(ws)

    st = _guard(body)
    if as_json:
        print_json(c, st)
        return
    ch = st["champion"]
    c.print(f"[bold]{st['model']}[/] ({st['task']}) in {st['workspace']}")
    c.print(
        "champion: none yet"
        if ch is None
        else f"champion: v{ch['version']}  {st['metric']} {fmt_metric(ch['metric'])}  trained on "
        f"{str(ch['trained_on'][0])[:10]} .. {str(ch['trained_on'][1])[:10]}"
    )
    b = st["batches"]
    c.print(
        f"versions: {st['versions']}   batches: {b['accepted']} accepted, "
        f"{b['quarantined']} quarantined, {b['pending']} pending"
    )
    if st["awaiting_approval"]:
        c.print(f"awaiting approval: {', '.join(f'v{v}' for v in st['awaiting_approval'])}")
    if st["quarantined"]:
        c.print(
            table(
                "Quarantined batches (kept, never trained on)",
                ["id", "batch", "received", "why"],
                [
                    (q["id"], q["key"], q["received_at"][:19], "; ".join(q["reasons"]))
                    for q in st["quarantined"]
                ],
            )
        )
    c.print(
        table(
            "Recent runs",
            ["run", "started", "status", "outcome"],
            [
                (r["id"][:8], r["started_at"][:19], r["status"], r["error"] or r["outcome"])
                for r in st["runs"]
            ],
        )
    )


# -- the registry ------------------------------------------------------------------------


@models_app.command("list")
def models_list(workspace: WorkspaceOpt = Path(), as_json: JsonOpt = False) -> None:
    """Every model in the store with its champion and versions."""
    c = _console()

    def body() -> list[dict[str, Any]]:
        with _workspace(workspace) as ws:
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

    rows = _guard(body)
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


@models_app.command("show")
def models_show(
    ref: Annotated[str, typer.Argument(help="NAME (its champion), NAME@ALIAS or NAME:VERSION.")],
    workspace: WorkspaceOpt = Path(),
    as_json: JsonOpt = False,
) -> None:
    """One version: status, artifact hash, metrics, lineage, decision record; and all versions.

    Examples: [bold]retrainer models show rain[/bold], [bold]rain@champion[/bold],
    [bold]rain:3[/bold]
    """
    c = _console()

    def body() -> dict[str, Any]:
        with _workspace(workspace) as ws:
            info = ws.registry.resolve(parse_ref(ref))
            return {
                "version": info.to_dict(),
                "versions": [v.to_dict() for v in ws.registry.versions(info.model)],
                "history": [m.to_dict() for m in ws.registry.history(info.model)],
            }

    data = _guard(body)
    if as_json:
        print_json(c, data)
        return
    v = data["version"]
    lin = v["lineage"]
    c.print(
        f"[bold]{v['model']}:{v['version']}[/]  {v['status']}  aliases: "
        f"{', '.join(v['aliases']) or '-'}  created {v['created_at'][:19]} by {v['created_by']}"
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
                ["gate", "passed", "reason"],
                [(g["name"], "yes" if g["passed"] else "NO", g["reason"]) for g in dec["gates"]],
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


@app.command("promote")
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
    """Make VERSION the champion. It must be READY with a decision record whose gates passed.

    Example: [bold]retrainer promote rain 4 --reason "approved in review 2026-11-25"[/bold]
    """
    c = _console()

    def body() -> dict[str, Any]:
        with _workspace(workspace) as ws:
            expected = (
                expect_champion
                if expect_champion is not None
                else ws.registry.get_alias(name, CHAMPION)
            )
            return promote(
                ws.registry, name, version, actor=_actor(), reason=reason, expected=expected
            ).to_dict()

    move = _guard(body)
    if as_json:
        print_json(c, move)
        return
    c.print(f"{name}@champion: {_v(move['from_version'])} -> v{move['to_version']}")


@app.command("rollback")
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
    c = _console()

    def body() -> dict[str, Any]:
        with _workspace(workspace) as ws:
            return rollback(ws.registry, name, actor=_actor(), reason=reason).to_dict()

    move = _guard(body)
    if as_json:
        print_json(c, move)
        return
    c.print(f"{name}@champion: {_v(move['from_version'])} -> v{move['to_version']} (rolled back)")


def _v(version: int | None) -> str:
    return "none" if version is None else f"v{version}"


@audit_app.command("log")
def audit_log(
    limit: Annotated[int, typer.Option(help="How many of the newest events.")] = 30,
    subject: Annotated[
        str | None, typer.Option(help="Only subjects starting with this (e.g. rain@).")
    ] = None,
    workspace: WorkspaceOpt = Path(),
    as_json: JsonOpt = False,
) -> None:
    """The newest audit events: who changed what, when (hash-chained, append-only)."""
    c = _console()

    def body() -> list[dict[str, Any]]:
        with _workspace(workspace) as ws, ws.db.session() as s:
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

    events = _guard(body)
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


def main() -> None:
    """Console entry point."""
    logging.basicConfig(
        level=os.environ.get("RETRAINER_LOG", "WARNING"),
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
