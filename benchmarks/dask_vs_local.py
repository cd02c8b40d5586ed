"""The local and the Dask executor on the same Parquet files, side by side (issue 8 (c)).

On the seeded datasets of ``benchmarks/scale_data.py`` (default 2M reference rows and a
current dataset of ``--current-share`` of them), two steps of a cycle run with each
executor in the same process:

* ``profile``: ``ReferenceProfile.build`` (on the executor) of the reference files
  (``--profile-rows``, default the project's own);
* ``drift``: ``sample_rows`` of the current files (``--drift-rows``), then
  ``drift_report`` against that side's profile with the default ``DriftConfig``.

``local`` is ``LocalExecutor`` on ``ParquetFiles``: each file is read in this process,
one at a time. ``dask`` is the project's Dask executor on a 2-worker ``LocalCluster``
(:mod:`scale_cluster`: one thread per worker, no spilling, no pausing), where each file
is read on a worker and only the partial results come back. The cluster is up for both
sides (the local side leaves it idle), the files are read once before the clock starts
(so neither side pays for a cold page cache), and ``--repeat`` runs the sides in turn
(local, dask, local, dask...).

Checked: every profile's ``to_bytes()`` equals the first local one, byte for byte, and
every drift report's ``to_dict()`` (and every drift sample) equals the first local one;
when they differ, the differing members of the profile's ``.npz`` and every differing
key of the report are listed, and the exit status is 1. Reported: wall time per side
and step (each repeat, and their median), the overhead ratio dask / local per step and
for both steps together, and peak RSS per process (psutil, sampled every
``--sample-every`` s) per side and step; the client's RSS when each step starts is
recorded too, since both sides run in the same process.

    .venv/bin/python benchmarks/dask_vs_local.py --rows 2M --json OUT.json
    .venv/bin/python benchmarks/dask_vs_local.py --rows 200K --repeat 1   # smoke
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import psutil
from machine import load_average, machine_info
from rss_sampler import RssSampler, mib
from scale_cluster import (
    add_options,
    apply_arrow_pool,
    cluster_options,
    memory_config,
    parse_rows,
    scheduler_uri,
    start_cluster,
    worker_roles,
)
from scale_data import CATEGORICAL, NUMERIC, Dataset, datasets

SIDES = ("local", "dask")
STEPS = ("profile", "drift")


def run_side(
    executor: Any, reference: Dataset, current: Dataset, args: Any, sampler: Any, tag: str
) -> dict[str, Any]:
    """Profile and drift through ``executor``; the timings and what to compare."""
    from retrainer.data.parts import ParquetFiles
    from retrainer.monitor.drift import DriftConfig, drift_report
    from retrainer.monitor.drift.partial import sample_rows
    from retrainer.monitor.drift.profile import ReferenceProfile

    options = {} if args.profile_rows is None else {"profile_rows": args.profile_rows}
    out: dict[str, Any] = {"wall_s": {}, "client_rss_before_mib": {}}

    def start(step: str) -> float:
        sampler.step(f"{tag}:{step}")
        out["client_rss_before_mib"][step] = mib(psutil.Process().memory_info().rss)
        return time.perf_counter()

    t0 = start("profile")
    profile = ReferenceProfile.build(
        ParquetFiles(paths=reference.paths),
        NUMERIC,
        CATEGORICAL,
        seed=args.seed,
        executor=executor,
        **options,
    )
    out["wall_s"]["profile"] = time.perf_counter() - t0
    t0 = start("drift")
    frame = sample_rows(
        executor, ParquetFiles(paths=current.paths), args.drift_rows, seed=args.seed
    )
    report = drift_report(profile, frame, DriftConfig())
    out["wall_s"]["drift"] = time.perf_counter() - t0
    sampler.step(None)
    out["profile_bytes"] = profile.to_bytes()
    out["report"] = report.to_dict()
    out["sample"] = frame
    out["drifted"] = report.drifted
    return out


def npz_differences(a: bytes, b: bytes) -> list[str]:
    """The members of two profiles' ``.npz`` whose bytes differ (or that one lacks)."""
    with zipfile.ZipFile(io.BytesIO(a)) as za, zipfile.ZipFile(io.BytesIO(b)) as zb:
        names = sorted(set(za.namelist()) | set(zb.namelist()))
        return [
            n
            for n in names
            if n not in za.namelist() or n not in zb.namelist() or za.read(n) != zb.read(n)
        ]


def dict_differences(a: Any, b: Any, path: str = "") -> list[dict[str, Any]]:
    """Every key path at which two JSON-like values differ, with both values (``first``:
    the first local run's)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            here = f"{path}.{key}" if path else str(key)
            if key not in a or key not in b:
                out.append({"key": here, "first": a.get(key), "this": b.get(key)})
            else:
                out += dict_differences(a[key], b[key], here)
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            name = x.get("feature", i) if isinstance(x, dict) else i
            out += dict_differences(x, y, f"{path}[{name}]")
        return out
    return [] if a == b else [{"key": path, "first": a, "this": b}]


def compare(base: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """Whether ``other`` computed exactly what ``base`` did, and where not."""
    same_profile = base["profile_bytes"] == other["profile_bytes"]
    report_diff = dict_differences(base["report"], other["report"])
    same_sample = base["sample"].equals(other["sample"]) and list(base["sample"].dtypes) == list(
        other["sample"].dtypes
    )
    return {
        "profile_identical": same_profile,
        "profile_bytes": [len(base["profile_bytes"]), len(other["profile_bytes"])],
        "profile_members_differing": (
            [] if same_profile else npz_differences(base["profile_bytes"], other["profile_bytes"])
        ),
        "report_identical": not report_diff,
        "report_keys_differing": report_diff,
        "drift_sample_identical": same_sample,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Both sides, ``args.repeat`` times, on one cluster; timings, peaks and checks."""
    from retrainer.orchestrate.executors import LocalExecutor, build_executor

    reference, current = datasets(args.data_dir, args.rows, args.seed, args.current_share)
    for path in [*reference.paths, *current.paths]:  # warm the page cache for both sides
        Path(path).read_bytes()
    sampler = RssSampler(every=args.sample_every).start()
    cluster = client = dask_executor = None
    runs: list[dict[str, Any]] = []
    checks: list[dict[str, Any]] = []
    base: dict[str, Any] = {}
    try:
        sampler.step("cluster")
        cluster, client = start_cluster(args)
        sampler.set_roles(worker_roles(client))
        dask_executor = build_executor(scheduler_uri(client))
        executors = {"local": LocalExecutor(), "dask": dask_executor}
        for i in range(args.repeat):
            for side in SIDES:
                tag = f"{side}#{i + 1}"
                result = run_side(executors[side], reference, current, args, sampler, tag)
                if base:  # checked at once: only the first run's profile and sample are kept
                    checks.append({"side": side, "repeat": i + 1, **compare(base, result)})
                    for heavy in ("profile_bytes", "sample", "report"):
                        del result[heavy]
                else:
                    base = result
                runs.append({"side": side, "repeat": i + 1, **result})
                walls = ", ".join(f"{s} {result['wall_s'][s]:.1f} s" for s in STEPS)
                print(f"  {tag:<8} {walls}", file=sys.stderr)
    finally:
        sampler.watching = False
        sampler.step(None)
        if dask_executor is not None:
            dask_executor.close()
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
        sampler.stop()

    identical = bool(checks) and all(
        c["profile_identical"] and c["report_identical"] and c["drift_sample_identical"]
        for c in checks
    )
    wall = {
        side: {step: [r["wall_s"][step] for r in runs if r["side"] == side] for step in STEPS}
        for side in SIDES
    }
    median = {side: {s: statistics.median(v) for s, v in wall[side].items()} for side in SIDES}
    for side in SIDES:
        median[side]["total"] = sum(median[side][s] for s in STEPS)
    overhead = {s: median["dask"][s] / median["local"][s] for s in [*STEPS, "total"]}
    peaks: dict[str, dict[str, dict[str, float | None]]] = {side: {} for side in SIDES}
    for name, tally in sampler.step_peaks.items():
        tag, _, step = name.partition(":")
        side = tag.partition("#")[0]
        if side in peaks and step:
            merged = peaks[side].setdefault(step, {})
            for label, rss in tally.items():
                merged[label] = max(merged.get(label) or 0, mib(rss) or 0)
    return {
        "rows": args.rows,
        "reference": {"folder": str(reference.folder), "files": len(reference.paths)},
        "current": {"folder": str(current.folder), "rows": current.rows},
        "identical": identical,
        "checks": checks,
        "drifted": {r["side"] + f"#{r['repeat']}": r["drifted"] for r in runs},
        "wall_s": wall,
        "median_wall_s": median,
        "overhead_dask_over_local": overhead,
        "peak_rss_mib": peaks,
        "client_rss_before_mib": {
            f"{r['side']}#{r['repeat']}": r["client_rss_before_mib"] for r in runs
        },
        "peak_rss_run_mib": {k: mib(v) for k, v in sorted(sampler.peaks.items())},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=parse_rows, default=2_000_000, help="e.g. 2M")
    add_options(parser)
    parser.add_argument("--drift-rows", type=int, default=200_000)
    parser.add_argument(
        "--profile-rows", type=int, help="ReferenceProfile.build's profile_rows (default: its own)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side, in turn")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    apply_arrow_pool(args)
    load_start = load_average()
    result = run(args)
    from retrainer.monitor.drift.partial import PROFILE_ROWS

    command = " ".join(argv if argv is not None else sys.argv[1:])
    summary = {
        "benchmark": "dask_vs_local",
        "command": f".venv/bin/python benchmarks/dask_vs_local.py {command}".strip(),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "profile_rows_used": args.profile_rows or PROFILE_ROWS,
        "cluster": {"options": cluster_options(args), "dask_config": memory_config(args)},
        "machine": machine_info(),
        "load_start": load_start,
        "load_end": load_average(),
        **result,
    }
    ratio = ", ".join(f"{k} {v:.2f}" for k, v in result["overhead_dask_over_local"].items())
    verdict = "identical" if result["identical"] else "NOT identical"
    print(f"  profile and drift: {verdict}; dask/local (median): {ratio}", file=sys.stderr)
    text = json.dumps(summary, indent=1, default=str)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text)
        print(f"wrote {args.json}", file=sys.stderr)
    else:
        print(text)
    return 0 if result["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
