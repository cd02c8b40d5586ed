"""The ``retrainer`` command line: the Typer app and where each command lives.

Commands are in :mod:`retrainer.cli.loop` (init, quickstart, run, retrain, status),
:mod:`retrainer.cli.models` (models list/show, promote, rollback),
:mod:`retrainer.cli.explain` (explain: a version's decision record),
:mod:`retrainer.cli.audit` (audit log), :mod:`retrainer.cli.rollout` (rollout status,
abort, advance), :mod:`retrainer.cli.contract` (contract infer,
check) and :mod:`retrainer.cli.quarantine` (quarantine list, show, release, discard).

Exit codes: 0 success; 1 unexpected error; 2 bad input (spec, arguments, data);
3 not found; 4 conflict (state changed under you, or another cycle is running);
5 integrity (artifact hash mismatch, untrusted artifact); 6 refused by policy;
7 environment (disk full, store unreachable).
"""

from __future__ import annotations

import logging
import os
import sys

import typer

from retrainer.cli import (
    approvals,
    audit,
    contract,
    loop,
    models,
    monitor,
    quarantine,
    retention,
    rollout,
    token,
)
from retrainer.cli.backtest import backtest_cmd
from retrainer.cli.bundle import bundle_cmd
from retrainer.cli.card import card_cmd
from retrainer.cli.doctor import doctor_cmd
from retrainer.cli.drift import drift_cmd
from retrainer.cli.explain import explain_cmd
from retrainer.cli.lineage import lineage_cmd, reproduce_cmd
from retrainer.cli.serve import serve_cmd
from retrainer.cli.spec import spec_show
from retrainer.cli.watch import watch_cmd

__all__ = ["app", "main"]

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
    "5 integrity, 6 refused by policy, 7 environment (disk full, store unreachable).",
)
models_app = typer.Typer(no_args_is_help=True, help="List and inspect model versions.")
audit_app = typer.Typer(no_args_is_help=True, help="Read, verify and anchor the audit trail.")
contract_app = typer.Typer(no_args_is_help=True, help="Infer a data contract; check a file.")
quarantine_app = typer.Typer(
    no_args_is_help=True, help="Inspect, release or discard quarantined batches."
)
app.add_typer(models_app, name="models")
app.add_typer(audit_app, name="audit")
app.add_typer(contract_app, name="contract")
app.add_typer(quarantine_app, name="quarantine")
rollout_app = typer.Typer(no_args_is_help=True, help="Watch and steer a shadow or canary rollout.")
app.add_typer(rollout_app, name="rollout")
approvals_app = typer.Typer(no_args_is_help=True, help="Versions waiting for a person.")
app.add_typer(approvals_app, name="approvals")
token_app = typer.Typer(no_args_is_help=True, help="Create, list and revoke API tokens.")
app.add_typer(token_app, name="token")
retention_app = typer.Typer(no_args_is_help=True, help="Plan and apply the retention policy.")
app.add_typer(retention_app, name="retention")

for command in (loop.init, loop.quickstart, loop.run, loop.retrain, loop.status):
    app.command()(command)
app.command("promote")(models.promote_cmd)
app.command("rollback")(models.rollback_cmd)
app.command("drift")(drift_cmd)
app.command("doctor")(doctor_cmd)
app.command("backtest")(backtest_cmd)
app.command("watch")(watch_cmd)
app.command("monitor")(monitor.monitor_cmd)
app.command("explain")(explain_cmd)
app.command("lineage")(lineage_cmd)
app.command("reproduce")(reproduce_cmd)
app.command("bundle")(bundle_cmd)
app.command("card")(card_cmd)
app.command("serve")(serve_cmd)
models_app.command("list")(models.models_list)
models_app.command("show")(models.models_show)
audit_app.command("log")(audit.audit_log)
audit_app.command("verify")(audit.audit_verify)
audit_app.command("anchor")(audit.audit_anchor)
contract_app.command("infer")(contract.contract_infer)
contract_app.command("check")(contract.contract_check)
quarantine_app.command("list")(quarantine.quarantine_list)
quarantine_app.command("show")(quarantine.quarantine_show)
quarantine_app.command("release")(quarantine.quarantine_release)
quarantine_app.command("discard")(quarantine.quarantine_discard)
retention_app.command("plan")(retention.retention_plan)
retention_app.command("apply")(retention.retention_apply)
rollout_app.command("status")(rollout.rollout_status_cmd)
rollout_app.command("abort")(rollout.rollout_abort)
rollout_app.command("advance")(rollout.rollout_advance)
token_app.command("create")(token.token_create)
token_app.command("list")(token.token_list)
token_app.command("revoke")(token.token_revoke)
app.command("whoami")(token.whoami)
app.command("approve")(approvals.approve_cmd)
app.command("reject")(approvals.reject_cmd)
approvals_app.command("list")(approvals.approvals_list)
approvals_app.command("show")(approvals.approvals_show)
spec_app = typer.Typer(no_args_is_help=True, help="Show the spec as retrainer reads it.")
app.add_typer(spec_app, name="spec")
spec_app.command("show")(spec_show)


def main() -> None:
    """Console entry point."""
    level = os.environ.get("RETRAINER_LOG", "WARNING")
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # Dask's distributed sets its own loggers to INFO when imported (a Dask executor):
    # the same level as ours, unless the user configured Dask's logging themselves
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", level.lower())
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
