"""``retrainer watch``: run cycles whenever work may be due, one leader per model.

The loop runs in a worker thread; the main thread only waits for it and turns the
first SIGTERM or SIGINT into a stop request (the running cycle stops between two
steps, its run stays resumable, the lease is released, exit 0 after ``stopped``).
A second signal stops at once (the run stays resumable; the lease frees itself).
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from retrainer.cli.common import JsonOpt, WorkspaceOpt, acting, console, guard, open_workspace
from retrainer.orchestrate.watch import DEFAULT_LEASE_TTL, WatchEvent, watch
from retrainer.spec import parse_duration

__all__ = ["watch_cmd"]

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def watch_cmd(
    workspace: WorkspaceOpt = Path(),
    interval: Annotated[
        str,
        typer.Option(
            "--interval", help="How often to look for new batches and schedule ticks (30s, 5m)."
        ),
    ] = "30s",
    lease_ttl: Annotated[
        str,
        typer.Option(
            "--lease-ttl",
            help="Lifetime of the leader lease, renewed every third of it; another watch "
            "takes over after it if the leader's host is gone.",
        ),
    ] = f"{int(DEFAULT_LEASE_TTL.total_seconds())}s",
    once: Annotated[
        bool,
        typer.Option("--once", help="Take the lead, run one cycle and exit (e.g. from cron)."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Keep the model fresh: run a cycle whenever new batches arrive or a schedule ticks.

    One watch leads per model (a lease in the store); the others wait and take over.

    Prints one line per event; with --json one JSON object per line.

    SIGTERM or Ctrl-C stops between two steps; the next watch or run resumes the run.

    Example: [bold]retrainer watch -w rain-demo --interval 1m[/bold]
    """
    every = _duration(interval, "--interval")
    ttl = _duration(lease_ttl, "--lease-ttl")
    c = console()

    def show(event: WatchEvent) -> None:
        if event.kind == "idle":
            return
        line = json.dumps(event.to_dict(), default=str) if as_json else event.message
        c.file.write(line + "\n")
        c.file.flush()

    stop = threading.Event()

    def who() -> str:
        with open_workspace(workspace) as ws:
            return acting(ws, "run", "watching (running cycles)")

    name = guard(who)

    def body() -> None:
        watch(
            workspace,
            actor=name,
            interval=every,
            lease_ttl=ttl,
            once=once,
            stop_event=stop,
            on_event=show,
        )

    with _stop_on_signals(stop):
        guard(lambda: _in_worker(body))


def _duration(text: str, option: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """The first SIGTERM/SIGINT sets ``stop``; the handlers then revert, so a second one
    stops the process at once (SIGTERM: killed; SIGINT: KeyboardInterrupt, exit 130)."""
    previous = {sig: signal.getsignal(sig) for sig in _STOP_SIGNALS}

    def handler(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        stop.set()  # safe: only the worker thread ever waits on this event

    for sig in _STOP_SIGNALS:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            if old is not None:  # None: set outside Python, cannot be restored
                signal.signal(sig, old)


def _in_worker(fn: Callable[[], None]) -> None:
    """Run ``fn`` in a daemon thread, re-raising its error here.

    The main thread only joins it, so a signal handler never interrupts the loop while it
    holds a lock, and a second signal can end the process without waiting for it.
    """
    errors: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - the main thread re-raises it
            errors.append(exc)

    worker = threading.Thread(target=target, name="retrainer watch", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.5)
    if errors:
        raise errors[0]
