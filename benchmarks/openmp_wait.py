"""The quickstart on an idle and on a busy machine: how many OpenMP threads, how they wait.

scikit-learn's histogram gradient boosting runs OpenMP parallel regions; between them
libgomp's threads wait by spinning for a while. Next to other busy processes, spinning
threads and the threads they wait for take turns on the cores. This runs
``retrainer quickstart --json`` side by side in one run, alone and next to as many
busy-loop processes as there are cores, with:

* ``default``: no OpenMP variable (``OMP_WAIT_POLICY=""`` is ignored by libgomp): what
  retrainer itself does (since retrainer.threads, one thread for small model calls);
* ``PASSIVE``: ``OMP_WAIT_POLICY=PASSIVE``, waiting threads sleep;
* ``1 thread``: ``OMP_NUM_THREADS=1`` for the whole process.

    .venv/bin/python benchmarks/openmp_wait.py              # each case twice (~8 min)
    .venv/bin/python benchmarks/openmp_wait.py --repeat 1

Results go to benchmarks/results/openmp_wait.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from machine import machine_info

ROOT = Path(__file__).resolve().parent
RETRAINER = [sys.executable, "-m", "retrainer"]
# name -> environment: libgomp's default, sleeping waiters, one thread (nothing to wait for)
CONFIGS = {
    "default": {"OMP_WAIT_POLICY": ""},
    "PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "1 thread": {"OMP_WAIT_POLICY": "", "OMP_NUM_THREADS": "1"},
}


def _spin(stop: Any) -> None:
    while not stop.is_set():
        sum(range(10_000))


def _quickstart(config: dict[str, str], folder: Path) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    env |= config | {"HOME": str(folder / "home"), "MPLCONFIGDIR": str(folder)}
    started = time.perf_counter()
    subprocess.run(
        [*RETRAINER, "quickstart", str(folder / "ws"), "--json"],
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "openmp_wait.json")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    rows: list[dict[str, Any]] = []
    for busy in sorted({0, cores}):
        stop = multiprocessing.Event()
        spinners = [multiprocessing.Process(target=_spin, args=(stop,)) for _ in range(busy)]
        for p in spinners:
            p.start()
        try:
            times: dict[str, list[float]] = {name: [] for name in CONFIGS}
            for _ in range(args.repeat):  # interleaved, so drifting load hits all alike
                for name, config in CONFIGS.items():
                    with tempfile.TemporaryDirectory() as tmp:
                        times[name].append(_quickstart(config, Path(tmp)))
            for name, seconds in times.items():
                rows.append({"busy_processes": busy, "config": name, "seconds": seconds})
                print(f"busy={busy} {name:8s} " + " ".join(f"{t:6.1f}s" for t in seconds))
        finally:
            stop.set()
            for p in spinners:
                p.join()
    print("\n| busy processes | " + " | ".join(f"{n} s (median)" for n in CONFIGS) + " |")
    print("|---|" + "---|" * len(CONFIGS))
    summary = []
    for busy in sorted({r["busy_processes"] for r in rows}):
        medians = {
            r["config"]: statistics.median(r["seconds"])
            for r in rows
            if r["busy_processes"] == busy
        }
        summary.append({"busy_processes": busy, "median_seconds": medians})
        print(f"| {busy} | " + " | ".join(f"{medians[n]:.1f}" for n in CONFIGS) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {"machine": machine_info(), "cases": rows, "summary": summary}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nresults: {args.out}")


if __name__ == "__main__":
    main()
