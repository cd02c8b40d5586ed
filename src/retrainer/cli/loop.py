"""Setting up and running the loop: ``init``, ``quickstart``, ``run``, ``retrain``, ``status``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from retrainer.cli.common import (
    JsonOpt,
    WorkspaceOpt,
    acting,
    bold,
    check_model,
    console,
    guard,
    local_name,
    open_workspace,
)
from retrainer.cli.render import fmt_metric, print_json, table
from retrainer.orchestrate.cycle import STEPS, CycleResult, run_cycle
from retrainer.orchestrate.status import workspace_status
from retrainer.quickstart.workspace_init import EXAMPLES, init_workspace

__all__ = ["init", "quickstart", "retrain", "run", "status"]

ApprovalOpt = Annotated[
    str,
    typer.Option(
        "--approval",
        help="approval.mode of the spec: auto (promote when the gates pass) or manual "
        "(wait for 'retrainer approve' by someone who did not train it).",
    ),
]


def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create the workspace in.")] = Path(),
    example: Annotated[
        str | None, typer.Option(help=f"Start from an example: {', '.join(EXAMPLES)}.")
    ] = None,
    approval: ApprovalOpt = "auto",
) -> None:
    """Create a workspace: a commented retrainer.yaml (and example data with --example).

    Example: [bold]retrainer init rain-demo --example rainfall[/bold]
    """
    spec = guard(lambda: init_workspace(directory, example=example, approval=approval))
    c = console()
    c.print(f"Created {spec}")
    c.print(
        f"Next: edit it, put batch files in {directory / 'data' / 'batches'}, then "
        f"'retrainer run -w {directory}'."
    )
    if example == "rainfall":
        c.print(
            f"Compare retraining policies on all 18,159 days first: 'retrainer backtest "
            f"--spec {spec} --data {directory / 'data' / 'history'} --batch-by rows:500 "
            "--warmup 4 --html backtest.html'."
        )


def quickstart(
    directory: Annotated[
        Path, typer.Argument(help="Folder for the demo workspace (recreated if it is one).")
    ] = Path("retrainer-quickstart"),
    approval: ApprovalOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Stream 50 years of NOAA rainfall data through the real loop and write an HTML report.

    Shows the champion degrading after the data changes, a retrain being triggered,
    validated against the champion on the same holdout and promoted.

    With [bold]--approval manual[/bold] the stream stops at the first version that passes
    its gates: it waits for a person ('retrainer approve'; see docs/access.md).

    Example: [bold]retrainer quickstart /tmp/rain-demo[/bold]
    """
    from retrainer.quickstart.report import write_report
    from retrainer.quickstart.stream import run_quickstart, story

    c = console()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[note]}", markup=False),
        console=Console(stderr=True),
        transient=as_json,
    ) as bar:
        task = bar.add_task("streaming yearly batches", total=None, note="")

        def progress(done: int, total: int, note: str) -> None:
            bar.update(task, completed=done, total=total, note=note[:60])

        result = guard(
            lambda: run_quickstart(
                directory, actor=local_name(), progress=progress, approval=approval
            )
        )
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
    if result.waiting is not None:
        v = result.waiting
        c.print(
            bold(f"Stopped: version {v} passed its gates and waits for approval."),
            f"\nNext: cd {directory}; create an approver's token with 'retrainer token "
            f"create --role approver --actor alice', then 'RETRAINER_TOKEN=<token> retrainer "
            f'approve rain {v} --comment "reviewed"\'. Whoever trained it (you) cannot '
            "approve it: separation of duties. See docs/access.md.",
            sep="",
            soft_wrap=True,
        )
        return
    c.print(
        f"Explore: cd {directory} && retrainer status  (also: models list, models show rain, "
        "audit log)"
    )


def _render_cycle(c: Console, result: CycleResult, as_json: bool) -> None:
    if as_json:
        print_json(c, result.to_dict())
        return
    resumed = " (resumed an interrupted run)" if result.resumed else ""
    c.print(f"run {result.run_id}{resumed}: ", bold(result.status), sep="")
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
            + "".join(
                f"\n  flagged {f['key']}: {', '.join(f['flags'])}" for f in out.get("flagged", [])
            )
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


def run(workspace: WorkspaceOpt = Path(), as_json: JsonOpt = False) -> None:
    """Run one cycle: ingest new batches, check them, decide, retrain, validate, promote.

    An interrupted cycle is resumed where it stopped. Example: [bold]retrainer run[/bold]
    """
    c = console()

    def body() -> CycleResult:
        with open_workspace(workspace) as ws:
            return run_cycle(ws, actor=acting(ws, "run", "running a cycle"))

    _render_cycle(c, guard(body), as_json)


def retrain(
    name: Annotated[str, typer.Argument(help="Model name.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in lineage and audit).")],
    workspace: WorkspaceOpt = Path(),
    as_json: JsonOpt = False,
) -> None:
    """Retrain now (a manual trigger), then validate and promote as usual.

    Example: [bold]retrainer retrain rain --reason "new sensor calibration"[/bold]
    """
    c = console()

    def body() -> CycleResult:
        with open_workspace(workspace) as ws:
            check_model(ws, name)
            return run_cycle(ws, actor=acting(ws, "run", "retraining"), manual_reason=reason)

    _render_cycle(c, guard(body), as_json)


def status(workspace: WorkspaceOpt = Path(), as_json: JsonOpt = False) -> None:
    """The workspace at a glance: champion, recent runs, quarantined batches.

    Example: [bold]retrainer status -w rain-demo --json[/bold]
    """
    c = console()

    def body() -> dict[str, Any]:
        with open_workspace(workspace) as ws:
            return workspace_status(ws)

    st = guard(body)
    if as_json:
        print_json(c, st)
        return
    ch = st["champion"]
    c.print(bold(st["model"]), f" ({st['task']}) in {st['workspace']}", sep="")
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
            f"Inspect: retrainer quarantine show {st['model']} ID; then release or discard "
            "it with --reason"
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
