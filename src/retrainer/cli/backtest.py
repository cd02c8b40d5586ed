"""``retrainer backtest``: replay a history and compare retraining policies (no workspace)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from retrainer.cli.common import console, guard
from retrainer.cli.render import fmt_metric, table

__all__ = ["backtest_cmd"]


def backtest_cmd(
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="The history: a Parquet or CSV file, or a folder of them (read in name order).",
            show_default=False,
        ),
    ],
    spec: Annotated[
        Path, typer.Option("--spec", help="The spec whose model, window and gates are replayed.")
    ] = Path("retrainer.yaml"),
    time_column: Annotated[
        str | None,
        typer.Option(
            "--time-column", help="Orders the rows (default: the spec's data.time_column)."
        ),
    ] = None,
    batch_by: Annotated[
        str,
        typer.Option(
            "--batch-by",
            help="Cut the history into batches: day, week, month, or rows:N.",
        ),
    ] = "month",
    label_delay: Annotated[
        int,
        typer.Option(
            "--label-delay", help="Batches before a batch's labels are known to the policies."
        ),
    ] = 0,
    warmup: Annotated[
        int,
        typer.Option("--warmup", help="First batches that train the initial champion."),
    ] = 3,
    policies: Annotated[
        str,
        typer.Option(
            "--policies",
            help="Comma-separated: never, every_batch, periodic:K, spec, spec:PATH.",
        ),
    ] = "never,every_batch,spec",
    min_labels: Annotated[
        int,
        typer.Option("--min-labels", help="Labelled rows a batch needs to be scored."),
    ] = 20,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            help="Processes running policies side by side (0: one per policy, at most one "
            "per CPU; 1: all in this process).",
        ),
    ] = 0,
    json_out: Annotated[
        Path | None,
        typer.Option(
            "--json",
            help="Write the result as JSON to this file ('-': stdout, no table).",
            show_default=False,
        ),
    ] = None,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            help="Write a self-contained HTML report (metric over time, retrains, drift, cost).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Replay a history batch by batch and compare retraining policies on it.

    The warm-up batches train the first champion. Then each batch is answered by the
    serving champion and scored on its labels; each policy decides, from what it could
    know at that moment (labels arrive --label-delay batches late), whether to retrain;
    a retrain uses the spec's window, trainer and gates, as 'retrainer run' does, and a
    promoted model serves from the next batch. Policies: [bold]never[/bold] (the static
    model), [bold]every_batch[/bold] (retrain and promote every batch),
    [bold]periodic:K[/bold], [bold]spec[/bold] (the spec's triggers, cooldown and gates)
    and [bold]spec:PATH[/bold] (another spec's). Writes nothing but --json and --html.

    Example: [bold]retrainer backtest --spec rain/retrainer.yaml --data rain/history
    --batch-by rows:500 --warmup 4 --policies never,every_batch,spec --html backtest.html[/bold]
    """
    from retrainer.backtest import BacktestSettings, parse_batch_by, parse_policies, run_backtest
    from retrainer.backtest.report_html import write_html
    from retrainer.textfile import write_text_atomic

    to_stdout = json_out == Path("-")

    def body() -> tuple[dict[str, Any], Path | None, Path | None]:
        settings = BacktestSettings(
            spec=spec,
            data=data,
            batch_by=parse_batch_by(batch_by),
            policies=parse_policies(policies),
            time_column=time_column,
            label_delay=label_delay,
            warmup=warmup,
            min_labels=min_labels,
            workers=workers,
        )
        with _Bars(settings.policies, quiet=to_stdout) as report:
            result = run_backtest(settings, report)
        text = json.dumps(result, indent=2)
        saved = None
        if json_out is not None and not to_stdout:
            saved = write_text_atomic(json_out, text + "\n")
        page = None if html is None else write_html(result, html)
        return result, saved, page

    result, saved, page = guard(body)
    c = console()
    if to_stdout:
        c.file.write(json.dumps(result, indent=2) + "\n")
        return
    _print(c, result)
    for what, path in (("JSON", saved), ("HTML report", page)):
        if path is not None:
            c.print(f"{what}: {path}")


class _Bars:
    """One progress bar per policy, on stderr (hidden with --json -)."""

    def __init__(self, policies: list[Any], *, quiet: bool) -> None:
        self.progress = Progress(
            TextColumn("{task.description}", style="bold", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            disable=quiet,
        )
        self.tasks = {p.name: self.progress.add_task(p.name, total=None) for p in policies}

    def __enter__(self) -> Any:
        self.progress.start()
        return self.update

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, name: str, done: int, total: int) -> None:
        self.progress.update(self.tasks[name], completed=done, total=total)


def _print(c: Console, result: dict[str, Any]) -> None:
    batches = result["batches"]
    warm = sum(1 for b in batches if b["warmup"])
    rows = sum(b["rows"] for b in batches)
    s = result["settings"]
    c.print(
        f"{len(batches)} batches ({s['batch_by']}, {rows} rows); the first {warm} trained "
        f"the initial champion; labels {s['label_delay']} batch(es) late"
    )
    metric = result["metric"]
    c.print(
        table(
            f"Policies ({metric} of the serving model on each batch as it arrived)",
            ["policy", "mean", "worst", "retrains", "promotions", "train CPU s", "wall s"],
            [
                (
                    name,
                    fmt_metric(p["mean"]),
                    fmt_metric(p["worst"]),
                    p["retrains"],
                    p["promotions"],
                    f"{p['train_seconds']:.1f}",
                    f"{p['wall_seconds']:.1f}",
                )
                for name, p in result["policies"].items()
            ],
            numeric=["mean", "worst", "retrains", "promotions", "train CPU s", "wall s"],
            no_wrap=["policy"],
        )
    )
    unscored = {
        name: len(p["per_batch"]) - p["scored_batches"] for name, p in result["policies"].items()
    }
    if any(unscored.values()):
        n = max(unscored.values())
        c.print(f"{n} batch(es) had fewer than {s['min_labels']} labelled rows: not scored")
    quarantined = [
        b for b in next(iter(result["policies"].values()))["per_batch"] if not b["accepted"]
    ]
    if quarantined:
        c.print(
            f"{len(quarantined)} batch(es) failed the data contract: answered and scored, "
            "never trained on"
        )
