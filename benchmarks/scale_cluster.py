"""The 2-worker LocalCluster and the options shared by the issue 8 benchmarks.

:func:`add_options` adds the data and cluster options of ``benchmarks/dask_scale.py``
and ``benchmarks/dask_vs_local.py``; :func:`start_cluster` starts the cluster they
describe: worker processes on loopback, one thread each, ``--memory-limit`` per worker,
no dashboard. Workers neither spill (LightGBM keeps a socket in worker memory, which
cannot be pickled) nor pause, unless ``--spill`` / ``--pause`` say otherwise. A paused
worker (80 % of its limit by default) starts no task and fetches no data, while the
memory LightGBM's partitions hold is not released until training ends: with the
direct trainer at 20M rows both workers paused for 2 min 18 s of training. With pausing
off, a worker either finishes or outgrows its limit and is killed by the nanny at 95 %,
which the benchmark reports.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

SEED = 20261126


def parse_rows(text: str) -> int:
    """``"2M"``, ``"200K"``, ``"2_000_000"`` -> an int."""
    text = text.strip().upper().replace("_", "").replace(",", "")
    scale = {"K": 10**3, "M": 10**6}.get(text[-1:], 1)
    return int(float(text[:-1]) * scale) if scale > 1 else int(text)


def add_options(parser: argparse.ArgumentParser) -> None:
    """The data, cluster and sampling options both benchmarks take."""
    parser.add_argument("--data-dir", type=Path, default=Path("/work/bench-data"))
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--current-share", type=float, default=0.1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="4GB")
    parser.add_argument(
        "--spill",
        action="store_true",
        help="let workers spill to disk (default: off; LightGBM's sockets cannot be pickled)",
    )
    parser.add_argument(
        "--pause",
        action="store_true",
        help="let workers pause at 80%% of their limit (default: off; a paused worker "
        "starts no task while LightGBM holds its partitions)",
    )
    parser.add_argument(
        "--arrow-pool",
        choices=("default", "system"),
        default="system",
        help="pyarrow's memory pool in every process (system: malloc, trimmed by the nanny)",
    )
    parser.add_argument("--sample-every", type=float, default=0.2)
    parser.add_argument("--json", type=Path, help="write the result here")


def apply_arrow_pool(args: argparse.Namespace) -> None:
    """Set pyarrow's pool before pyarrow is loaded here or in a worker (inherited)."""
    if args.arrow_pool == "system":
        os.environ["ARROW_DEFAULT_MEMORY_POOL"] = "system"


def memory_config(args: argparse.Namespace) -> dict[str, Any]:
    """The Dask settings the workers start with (reported with the results)."""
    config: dict[str, Any] = {"distributed.worker.daemon": False}
    if not args.spill:
        config["distributed.worker.memory.target"] = False
        config["distributed.worker.memory.spill"] = False
    if not args.pause:
        config["distributed.worker.memory.pause"] = False
    return config


def cluster_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``LocalCluster`` arguments (reported with the results)."""
    return {
        "n_workers": args.workers,
        "threads_per_worker": 1,
        "processes": True,
        "host": "127.0.0.1",
        "dashboard_address": None,
        "memory_limit": args.memory_limit,
    }


def start_cluster(args: argparse.Namespace) -> tuple[Any, Any]:
    """A ``LocalCluster`` as :func:`cluster_options` and :func:`memory_config` say, and
    its client."""
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set(memory_config(args)):
        cluster = LocalCluster(**cluster_options(args))
    return cluster, Client(cluster)


def worker_roles(client: Any) -> dict[int, str]:
    """Worker pids labelled ``worker-0``, ``worker-1``... (by address)."""
    pids = client.run(os.getpid)
    return {pid: f"worker-{i}" for i, (_, pid) in enumerate(sorted(pids.items()))}


def scheduler_uri(client: Any) -> str:
    """The client's scheduler as the project's ``executor`` value (``dask://HOST:PORT``)."""
    return str(client.scheduler.address).replace("tcp://", "dask://")
