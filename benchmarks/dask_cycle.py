"""Whole retraining cycles (``retrainer run``) on a 2-worker Dask cluster (issue 8).

Where ``benchmarks/dask_scale.py`` times the heavy steps one by one, this runs the
product end to end: a workspace whose spec says ``executor: dask://...`` and whose
source folder holds the seeded Parquet files of ``benchmarks/scale_data.py`` (N rows x 30
columns in files of 1,000,000 rows, each file a batch), then ``run_cycle`` twice:

1. **bootstrap**: ingest and contract-check every file, choose the window in parts,
   train LightGBM on the workers, judge it on the holdout, build its profile, promote;
2. **drift**: a shifted batch (the first file of the "current" dataset, 5 columns
   changed) arrives; the monitor measures its drift and realised ROC AUC against the
   champion, the drift trigger fires, and the cycle retrains on the new window.

The scheduler and the workers are separate processes (``dask scheduler`` and ``dask
worker --nworkers 2 --nthreads 1 --memory-limit``), so the client's resident memory is
the cycle's own. Reported per cycle: wall time per step (from the step callbacks) and
peak RSS of the client and of each worker.

    .venv/bin/python benchmarks/dask_cycle.py --rows 2M --json OUT.json
    .venv/bin/python benchmarks/dask_cycle.py --rows 20M --json OUT.json   # ~15 min
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from machine import load_average, machine_info
from rss_sampler import RssSampler, mib
from scale_data import CATEGORICAL, NUMERIC, TARGET, TIMESTAMP, datasets

SEED = 20261126


def parse_rows(text: str) -> int:
    text = text.strip().upper()
    return int(float(text[:-1]) * 1_000_000) if text.endswith("M") else int(text)


def spec(source: Path, address: str, rows: int) -> dict[str, Any]:
    return {
        "model": {
            "name": "scale",
            "task": "classification",
            "target": TARGET,
            "features": {"numeric": NUMERIC, "categorical": CATEGORICAL},
        },
        "data": {
            "source": str(source),
            "time_column": TIMESTAMP,
            "window": {"rows": rows},
            "holdout": {"fraction": 0.2, "by": "time"},
        },
        "contract": {"min_rows": 1000},
        "triggers": [{"drift": {"share": 0.1}}],
        "train": {
            "estimator": "lightgbm.LGBMClassifier",
            "params": {"n_estimators": 50, "num_leaves": 63, "verbose": -1},
            "seed": 7,
            "trusted_types": [
                "collections.OrderedDict",
                "lightgbm.basic.Booster",
                "lightgbm.sklearn.LGBMClassifier",
            ],
        },
        "evaluate": {"metric": "roc_auc", "bootstrap_resamples": 200},
        "executor": address,
    }


def start_cluster(folder: Path, workers: int, memory: str) -> tuple[list[Any], str]:
    """A scheduler and ``workers`` worker processes on loopback; their address."""
    dask = str(Path(sys.executable).parent / "dask")
    info = folder / "scheduler.json"
    scheduler = subprocess.Popen(
        [dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
         "--scheduler-file", str(info)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(600):
        if info.exists() and info.stat().st_size:
            break
        time.sleep(0.1)
    address = json.loads(info.read_text())["address"]
    worker = subprocess.Popen(
        [dask, "worker", "--scheduler-file", str(info), "--nworkers", str(workers),
         "--nthreads", "1", "--memory-limit", memory, "--no-dashboard",
         "--local-directory", str(folder / "workers")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return [worker, scheduler], address


def worker_pids(address: str, workers: int) -> dict[int, str]:
    from distributed import Client

    with Client(address, timeout="60s") as client:
        client.wait_for_workers(workers, timeout=120)
        pids = client.run(os.getpid)
    return {pid: f"worker-{i}" for i, pid in enumerate(sorted(pids.values()))}


class StepClock:
    """Wall time and per-process peak RSS of each step, from ``run_cycle``'s callback."""

    def __init__(self, cycle: str, sampler: RssSampler, steps: tuple[str, ...]) -> None:
        self.cycle, self.sampler, self.steps = cycle, sampler, steps
        self.times: dict[str, float] = {}
        self.peaks: dict[str, dict[str, float | None]] = {}
        self.last = time.perf_counter()
        sampler.step(f"{cycle}:{steps[0]}")

    def __call__(self, step: str, output: dict[str, Any]) -> None:
        self.sampler.sample()
        now = time.perf_counter()
        self.times[step] = round(now - self.last, 2)
        tally = self.sampler.step_peaks.get(f"{self.cycle}:{step}", {})
        self.peaks[step] = {k: mib(v) for k, v in tally.items()}
        self.last = now
        print(f"  {self.cycle:9s} {step:9s} {self.times[step]:7.1f} s  {self.peaks[step]}")
        after = self.steps.index(step) + 1
        following = self.steps[after] if after < len(self.steps) else None
        self.sampler.step(None if following is None else f"{self.cycle}:{following}")


def run_cycles(root: Path, current_file: str, sampler: RssSampler) -> list[dict[str, Any]]:
    from retrainer.orchestrate import STEPS, run_cycle
    from retrainer.workspace import Workspace

    out = []
    for name in ("bootstrap", "drift"):
        if name == "drift":
            (root / "data" / "zz-current.parquet").hardlink_to(current_file)
        clock = StepClock(name, sampler, tuple(STEPS))
        started = time.perf_counter()
        with Workspace.open(root) as ws:
            result = run_cycle(ws, actor="bench", on_step=clock)
            info = ws.registry.get("scale", result.version) if result.version else None
        decision = {} if info is None else dict(info.decision)
        out.append(
            {
                "cycle": name,
                "status": result.status,
                "outcome": result.outcome,
                "wall_s": round(time.perf_counter() - started, 2),
                "steps_s": clock.times,
                "steps_peak_rss_mib": clock.peaks,
                "monitor": result.steps.get("monitor"),
                "decide": result.steps.get("decide"),
                "candidate_roc_auc": decision.get("candidate_metric"),
                "holdout_rows": decision.get("holdout_rows"),
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=parse_rows, default=2_000_000)
    parser.add_argument("--data-dir", type=Path, default=Path("/work/bench-data"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="4GB")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    reference, current = datasets(args.data_dir, args.rows, SEED, 0.1)
    work = Path(tempfile.mkdtemp(prefix=f"cycle-{args.rows}-", dir=args.data_dir))
    procs, address = start_cluster(work, args.workers, args.memory_limit)
    try:
        root = work / "ws"
        (root / "data").mkdir(parents=True)
        for path in reference.paths:
            (root / "data" / Path(path).name).hardlink_to(path)  # no symlinks: they are ignored
        executor = "dask://" + address.removeprefix("tcp://")
        text = yaml.safe_dump(spec(root / "data", executor, args.rows))
        (root / "retrainer.yaml").write_text(text)
        sampler = RssSampler(roles={os.getpid(): "client", **worker_pids(address, args.workers)})
        load_start = load_average()
        sampler.start()
        try:
            cycles = run_cycles(root, current.paths[0], sampler)
        finally:
            sampler.watching = False
            sampler.stop()
        peaks = {k: mib(v) for k, v in sampler.peaks.items()}
        result = {
            "benchmark": "dask_cycle",
            "command": " ".join([".venv/bin/python", "benchmarks/dask_cycle.py", *sys.argv[1:]]),
            "rows": args.rows,
            "workers": args.workers,
            "memory_limit": args.memory_limit,
            "machine": machine_info(),
            "load_start": load_start,
            "load_end": load_average(),
            "cycles": cycles,
            "peak_rss_mib": peaks,
        }
        print(f"peak RSS MiB: {peaks}")
        text = json.dumps(result, indent=1, default=str)
        if args.json:
            args.json.write_text(text)
        else:
            print(text)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
