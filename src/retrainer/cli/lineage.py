"""Where a version came from and whether it can be made again: ``lineage``, ``reproduce``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from retrainer.cli.common import JsonOpt, WorkspaceOpt, bold, console, guard, open_workspace
from retrainer.cli.render import fmt_metric, print_json, table

__all__ = ["lineage_cmd", "reproduce_cmd"]

NameArg = Annotated[str, typer.Argument(help="The model's name.", show_default=False)]
VersionArg = Annotated[int, typer.Argument(help="The version number.", show_default=False)]


def lineage_cmd(
    name: NameArg,
    version: VersionArg,
    workspace: WorkspaceOpt = Path(),
    as_json: JsonOpt = False,
) -> None:
    """Where a version came from: data -> run -> version -> approvals -> deployments.

    The batches and the train and holdout snapshots it was made from (rows, time range,
    content hash), the run that trained it and why, what it is (artifact hash, parameters,
    seed, spec hash, code commit, Python and packages), who approved it, and where it was
    deployed (alias moves, rollouts).

    Example: [bold]retrainer lineage rain 3[/bold]
    """
    from retrainer.governance.chain import version_chain

    c = console()

    def body() -> dict[str, Any]:
        with open_workspace(workspace) as ws:
            return version_chain(ws, name, version)

    chain = guard(body)
    if as_json:
        print_json(c, chain)
        return
    c.soft_wrap = True  # long hashes and lists stay on one line; tables fit the width
    v = chain["version_record"]
    aliases = f"  aliases: {', '.join(v['aliases'])}" if v["aliases"] else ""
    c.print(bold(f"{name} v{version}"), f"  {chain['status']}{aliases}", sep="")
    missing = chain["lineage_missing"]
    if missing:
        c.print(Text(f"lineage incomplete: not recorded: {', '.join(missing)}", style="yellow"))
    else:
        c.print("lineage complete")
    _data(c, chain["data"])
    _run(c, chain["run"])
    _version(c, v)
    _approvals(c, chain["approvals"])
    _deployments(c, chain["deployments"])


def _section(c: Any, title: str) -> None:
    c.print()
    c.print(bold(title))


def _t(value: Any) -> str:
    """A timestamp to the minute (UTC as stored)."""
    return "-" if value is None else str(value)[:16].replace("T", " ")


def _h(value: Any) -> str:
    return "-" if not value else f"{str(value)[:12]}…"


def _data(c: Any, data: dict[str, Any]) -> None:
    derived = " (derived from the newest batch id: not recorded)" if data["derived"] else ""
    _section(c, f"Data  source {data['source']}")
    batches = data["batches"]
    statuses = {b["status"] for b in batches}
    same = len(statuses) == 1
    title = f"batches the training rows came from{derived}"
    if same:
        title += f", all {next(iter(statuses))}"
    columns = ["batch", "file", *([] if same else ["status"]), "rows", "from", "to", "sha256"]
    c.print(
        table(
            title,
            columns,
            [
                (
                    b["id"],
                    b["key"],
                    *([] if same else [b["status"]]),
                    b["rows"],
                    _t(b["time_min"])[:10],
                    _t(b["time_max"])[:10],
                    _h(b["content_hash"]),
                )
                for b in batches
            ],
            numeric=["batch", "rows"],
            no_wrap=["file", "from", "to"],
        )
    )
    for kind in ("train", "holdout"):
        snap = data[kind]
        if snap is None:
            c.print(f"{kind} snapshot: not recorded")
            continue
        recorded = (
            "as recorded"
            if snap["matches_record"]
            else Text(f"NOT as recorded ({snap['recorded_sha256']})", style="red")
        )
        c.print(
            f"{kind} snapshot {snap['snapshot']}: {_n(snap['rows'])} rows, "
            f"{_t(snap['time_min'])} .. {_t(snap['time_max'])}, "
            f"content sha256 {snap['content_hash']}, ",
            recorded,
            sep="",
            soft_wrap=True,
        )


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _run(c: Any, run: dict[str, Any] | None) -> None:
    _section(c, "Run")
    if run is None:
        c.print("not made by a cycle (no run recorded)")
        return
    trigger = run.get("trigger") or {}
    if run.get("missing"):
        c.print(f"run {run['id']} (its record is gone)")
    else:
        c.print(
            f"run {run['id']}  {run['status']}  started {_t(run['started_at'])} by {run['actor']}"
        )
    c.print(f"trigger: {trigger.get('kind', '-')}: {trigger.get('reason', '-')}", soft_wrap=True)


def _version(c: Any, v: dict[str, Any]) -> None:
    _section(c, "Version")
    env, code = v["environment"], v["code"]
    c.print(f"artifact sha256 {v['artifact_sha256']}")
    c.print(f"created {_t(v['created_at'])} by {v['created_by']}")
    trainer = v["trainer"] or {}
    what = trainer.get("estimator") or trainer.get("entrypoint") or "-"
    c.print(f"trainer: {what} {trainer.get('params', '')}".rstrip(), soft_wrap=True)
    params = v["estimator_params"]
    if params:
        own = {k.split("__", 1)[1]: p for k, p in params.items() if k.startswith("estimator__")}
        shown = own or params
        c.print(
            f"resolved parameters ({len(params)} in all, --json lists them): "
            + ", ".join(f"{k}={p}" for k, p in sorted(shown.items())),
            soft_wrap=True,
        )
    else:
        c.print("resolved parameters: not recorded")
    c.print(f"seed {v['seed']}; spec sha256 {v['spec_sha256']}")
    stored = v["spec_artifact_sha256"]
    c.print(f"spec stored as artifact {stored}" if stored else "spec document: not recorded")
    c.print(f"code: {_code(code)}", soft_wrap=True)
    packages = ", ".join(f"{k} {p}" for k, p in sorted((env.get("packages") or {}).items()))
    c.print(f"python {env.get('python') or '-'} on {env.get('platform') or '-'}")
    c.print(f"packages: {packages or '-'}", soft_wrap=True)
    c.print(f"environment lock sha256 {env.get('env_lock_sha256') or '-'}")
    metrics = ", ".join(
        f"{k} {p if k == 'holdout_rows' else fmt_metric(p)}" for k, p in v["metrics"].items()
    )
    dec = v["decision"]
    gates = "-" if dec["passed"] is None else ("passed" if dec["passed"] else "failed")
    c.print(f"metrics: {metrics or '-'}; gates {gates}", soft_wrap=True)


def _code(code: dict[str, Any] | None) -> str:
    if not code:
        return "not recorded"
    entry = code.get("entrypoint")
    extra = (
        ""
        if not entry
        else f"; entrypoint file {entry.get('file')} sha256 {_h(entry.get('sha256'))}"
    )
    if code.get("repository") is False:
        return "not in a git repository" + extra
    state = "dirty: " + ", ".join(code.get("changed") or []) if code.get("dirty") else "clean"
    return f"git commit {code.get('commit')} ({state}) in {code.get('path')}" + extra


def _approvals(c: Any, approvals: list[dict[str, Any]]) -> None:
    _section(c, "Approvals")
    if not approvals:
        c.print("none recorded")
        return
    c.print(
        table(
            None,
            ["when", "actor", "role", "decision", "override", "expires", "comment"],
            [
                (
                    _t(a["created_at"]),
                    a["actor"],
                    a["role"],
                    a["decision"],
                    "yes" if a["override"] else "",
                    _t(a["expires_at"]),
                    a["comment"],
                )
                for a in approvals
            ],
            no_wrap=["when"],
        )
    )


def _deployments(c: Any, deployments: dict[str, Any]) -> None:
    _section(c, "Deployments")
    moves, rollouts = deployments["alias_moves"], deployments["rollouts"]
    if not moves and not rollouts:
        c.print("never deployed")
        return
    if moves:
        c.print(
            table(
                "alias moves",
                ["when", "alias", "from", "to", "actor", "reason"],
                [
                    (
                        _t(m["at"]),
                        m["alias"],
                        _v(m["from_version"]),
                        _v(m["to_version"]),
                        m["actor"],
                        m["reason"],
                    )
                    for m in moves
                ],
                no_wrap=["when"],
            )
        )
    if rollouts:
        c.print(
            table(
                "rollouts",
                ["id", "strategy", "candidate", "baseline", "state", "started", "finished"],
                [
                    (
                        r["id"],
                        r["strategy"],
                        _v(r["candidate"]),
                        _v(r["baseline"]),
                        r["state"],
                        _t(r["started_at"]),
                        _t(r["finished_at"]),
                    )
                    for r in rollouts
                ],
                numeric=["id"],
            )
        )


def _v(version: int | None) -> str:
    return "-" if version is None else f"v{version}"


def reproduce_cmd(
    name: Annotated[
        str | None, typer.Argument(help="The model's name.", show_default=False)
    ] = None,
    version: Annotated[
        int | None, typer.Argument(help="The version number.", show_default=False)
    ] = None,
    tolerance: Annotated[
        float,
        typer.Option(
            help="Largest absolute difference of predictions accepted as a match (for "
            "estimators that are not deterministic). Default: exact."
        ),
    ] = 0.0,
    from_bundle: Annotated[
        Path | None,
        typer.Option(
            "--from-bundle",
            help="Reproduce from a bundle (folder or .zip from retrainer bundle) instead "
            "of the workspace's store; its MANIFEST.json is verified first.",
            show_default=False,
        ),
    ] = None,
    trust: Annotated[
        list[str] | None,
        typer.Option(
            "--trust",
            help="With --from-bundle: a model type to trust beyond retrainer's list "
            "(as train.trusted_types; repeatable). A bundle never grants trust itself.",
            show_default=False,
        ),
    ] = None,
    workspace: WorkspaceOpt = Path(),
    as_json: JsonOpt = False,
) -> None:
    """Retrain a version from its recorded spec, snapshots and seed; compare with the stored one.

    The recorded inputs are verified against their hashes first (a changed one
    is reported and not used). Both models then predict the recorded holdout
    rows. With --from-bundle the inputs come from a bundle (no workspace needed)
    and a file that does not match its MANIFEST.json is refused. Exit 0 when
    the predictions match (exactly, or within --tolerance), 6 when they differ,
    5 when an input changed, 3 when one is missing, 2 for a bundle member that
    would escape it.

    Example: [bold]retrainer reproduce rain 3 --tolerance 1e-9[/bold]
    or [bold]retrainer reproduce --from-bundle rain-v3.zip[/bold]
    """
    from retrainer.errors import SpecError
    from retrainer.governance.bundle_read import reproduce_bundle
    from retrainer.governance.reproduce import reproduce

    c = console()
    status = console(stderr=True)

    def body() -> dict[str, Any]:
        if from_bundle is not None and name is not None:
            raise SpecError("expected NAME VERSION or --from-bundle PATH, not both")
        if trust and from_bundle is None:
            raise SpecError("--trust applies to --from-bundle; a workspace's spec lists its own")
        with status.status("reproducing") as spinner:
            if from_bundle is not None:
                report = reproduce_bundle(
                    from_bundle, tolerance=tolerance, trusted=trust or (), progress=spinner.update
                )
            elif name is None or version is None:
                raise SpecError("expected NAME VERSION, or --from-bundle PATH")
            else:
                with open_workspace(workspace) as ws:
                    report = reproduce(
                        ws, name, version, tolerance=tolerance, progress=spinner.update
                    )
            return report.to_dict() | {"exit_code": report.exit_code}

    done = guard(body)
    if as_json:
        print_json(c, done)
    else:
        c.soft_wrap = True
        _report(c, done)
    if done["exit_code"]:
        raise typer.Exit(done["exit_code"])


def _report(c: Any, r: dict[str, Any]) -> None:
    c.print(bold(f"{r['model']} v{r['version']}"), f"  reproduction: {r['verdict']}", sep="")
    c.print(f"spec: {r['spec_source']}")
    for check in r["inputs"]:
        mark = "ok     " if check["ok"] else ("MISSING" if check["missing"] else "CHANGED")
        label = "rows sha256" if "snapshot" in check["what"] else "sha256"
        line = f"{mark} {check['what']}: {label} {check['expected']}"
        c.print(Text(line, style="" if check["ok"] else "red"), soft_wrap=True)
        if check["problem"]:
            c.print(Text(f"        {check['problem']}", style="red"), soft_wrap=True)
    p = r["predictions"]
    if p is None:
        why = "changed" if r["verdict"] == "inputs changed" else "is missing"
        c.print(Text(f"not retrained: a recorded input {why}", style="red"))
        return
    rows = f"{p['rows']:,} holdout rows, {p['compared']}"
    if p["verdict"] == "identical":
        c.print(f"predictions: identical ({rows})")
    elif p["verdict"] == "within tolerance":
        c.print(
            f"predictions: within tolerance {p['tolerance']:g} (max abs diff "
            f"{p['max_abs_diff']:.3g}; {rows})"
        )
    else:
        c.print(
            Text(
                f"predictions: differ (max abs diff {p['max_abs_diff']:.3g}, "
                f"{p['rows_differ']:,} rows; {rows})",
                style="red",
            )
        )
    a = r["artifact"]
    if a["bytes_identical"]:
        c.print(f"artifact: identical sha256 {a['recorded_sha256']}")
    else:
        c.print(
            "artifact: sha256 differs (format not byte-deterministic); fitted state "
            + (
                "identical"
                if a["fitted_state"] == "identical"
                else "differs at " + ", ".join(a["state_differences"])
            )
        )
    params = r["params_differ"]
    c.print("parameters: as recorded" if not params else "parameters differ: " + "; ".join(params))
    changes = r["environment_changes"]
    c.print(
        "environment: as recorded" if not changes else "environment changed: " + "; ".join(changes),
        soft_wrap=True,
    )
