"""How the cost of checking one batch grows with the size of the reference.

A 10,000-row batch is checked (drift_report, default DriftConfig) against a reference
profile built beforehand and held in memory, warm (the same check repeated, the
reference's touched lines still cached) and cold (256 MiB of scratch memory written
before each timed check, so the reference is read from memory again), for references
of 100k, 1M and 10M rows (5 numeric + 3 categorical columns from benchmarks/synth.py,
so 10M rows fit in memory). With the reference sorted once, a check should grow like
log(n): the KS and Wasserstein statistics place the batch in the sorted reference.

For contrast, the same batch is also tested the way one would without a profile:
scipy.stats.ks_2samp against the raw reference columns (which sorts them every time).

Results go to benchmarks/results/profile_scaling.json (.quick.json with --quick).

    .venv/bin/python benchmarks/profile_scaling.py           # 100k, 1M, 10M (~3 min)
    .venv/bin/python benchmarks/profile_scaling.py --quick   # 10k, 30k, 100k
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import math
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from machine import load_average, machine_info
from measure import peak_bytes, reset_peak, rss_bytes
from scipy import stats as sst
from synth import column_specs, make_table

from retrainer.monitor.drift.profile import ReferenceProfile
from retrainer.monitor.drift.report import DriftConfig, drift_report
from retrainer.monitor.drift.stats import ks_test

HERE = Path(__file__).resolve().parent
BATCH_ROWS = 10_000


EVICT_BYTES = 256 * 2**20
"""Scratch memory written before each cold check: more than the last-level cache, so
the reference arrays are no longer cached (as after other work in production)."""


def _median_time(
    fn: Callable[[], Any], repeats: int, before: Callable[[], Any] | None = None
) -> tuple[float, list[float]]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if before is not None:
            before()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="references of 10k, 30k, 100k rows")
    parser.add_argument("--sizes", type=int, nargs="+")
    parser.add_argument("--repeats", type=int, default=30, help="timed checks per size")
    parser.add_argument("--seed", type=int, default=20251126)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--profile", action="store_true", help="also cProfile one check at the largest size"
    )
    args = parser.parse_args(argv)
    sizes = args.sizes or (
        [10_000, 30_000, 100_000] if args.quick else [100_000, 1_000_000, 10_000_000]
    )
    repeats = min(args.repeats, 5) if args.quick else args.repeats
    out = args.out or HERE / "results" / (
        "profile_scaling.quick.json" if args.quick else "profile_scaling.json"
    )

    specs = column_specs(n_numeric=5, levels=(8, 50, 200))
    numeric = [s.name for s in specs if s.kind == "numeric"]
    categorical = [s.name for s in specs if s.kind == "categorical"]
    config = DriftConfig()
    batch = make_table(specs, BATCH_ROWS, args.seed + 1, current=True).to_pandas()
    batch_numeric = {c: batch[c].to_numpy(dtype=np.float64) for c in numeric}
    batch_numeric = {c: v[np.isfinite(v)] for c, v in batch_numeric.items()}

    scratch = np.zeros(EVICT_BYTES // 8)

    def evict() -> None:
        np.add(scratch, 1.0, out=scratch)  # reads and writes every line, off the clock

    load_start = load_average()
    profile_top = None
    rows: list[dict[str, Any]] = []
    for n in sizes:
        frame = make_table(specs, n, args.seed, current=False).to_pandas()
        gc.collect()
        reset_peak()
        before = rss_bytes()
        t0 = time.perf_counter()
        # every value kept, as when these figures were first recorded (issue 3); the
        # default since issue 8 keeps a sample of 250,000 rows' values above that size
        profile = ReferenceProfile.build(
            frame, numeric=numeric, categorical=categorical, profile_rows=len(frame)
        )
        build_s = time.perf_counter() - t0
        build_peak = peak_bytes() - before
        raw = {c: frame[c].to_numpy(dtype=np.float64) for c in numeric}
        raw = {c: v[np.isfinite(v)] for c, v in raw.items()}
        del frame
        gc.collect()

        check_s, check_times = _median_time(
            lambda p=profile: drift_report(p, batch, config), repeats
        )
        cold_s, cold_times = _median_time(
            lambda p=profile: drift_report(p, batch, config), repeats, before=evict
        )
        ks_s, _ = _median_time(
            lambda p=profile: [ks_test(p.numeric[c].sample, batch_numeric[c]) for c in numeric],
            repeats,
        )
        scipy_s, _ = _median_time(
            lambda r=raw: [sst.ks_2samp(r[c], batch_numeric[c]) for c in numeric],
            max(3, repeats // 10),
        )
        profile_bytes = len(profile.to_bytes())
        if args.profile and n == sizes[-1]:
            evict()
            prof = cProfile.Profile()
            prof.runcall(drift_report, profile, batch, config)
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).strip_dirs().sort_stats("tottime").print_stats(20)
            profile_top = buf.getvalue()
        report = drift_report(profile, batch, config)
        rows.append(
            {
                "reference_rows": n,
                "build_s": build_s,
                "build_peak_increase_bytes": build_peak,
                "profile_bytes": profile_bytes,
                "check_median_s": check_s,
                "check_times_s": check_times,
                "check_cold_median_s": cold_s,
                "check_cold_times_s": cold_times,
                "ks_only_median_s": ks_s,
                "scipy_ks_2samp_median_s": scipy_s,
                "drifted": report.drifted,
            }
        )
        print(
            f"n={n:>11,}  build {build_s:7.2f}s  check {check_s * 1e3:7.1f} ms  "
            f"cold {cold_s * 1e3:7.1f} ms  "
            f"(KS only {ks_s * 1e3:6.2f} ms; scipy ks_2samp {scipy_s * 1e3:8.1f} ms)",
            file=sys.stderr,
        )
        del profile, raw
        gc.collect()

    base = rows[0]
    for r in rows:
        r["check_ratio"] = r["check_median_s"] / base["check_median_s"]
        r["check_cold_ratio"] = r["check_cold_median_s"] / base["check_cold_median_s"]
        r["ks_only_ratio"] = r["ks_only_median_s"] / base["ks_only_median_s"]
        r["scipy_ratio"] = r["scipy_ks_2samp_median_s"] / base["scipy_ks_2samp_median_s"]
        r["log_ratio"] = math.log(r["reference_rows"]) / math.log(base["reference_rows"])
        r["n_ratio"] = r["reference_rows"] / base["reference_rows"]

    command = "benchmarks/profile_scaling.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    summary = {
        "benchmark": "profile_scaling",
        "command": f".venv/bin/python {command.strip()}",
        "quick": args.quick,
        "batch_rows": BATCH_ROWS,
        "numeric": numeric,
        "categorical": categorical,
        "repeats": repeats,
        "machine": machine_info(),
        "versions": {m: _version(m) for m in ("numpy", "scipy", "pandas", "pyarrow", "retrainer")},
        "load_start": load_start,
        "load_end": load_average(),
        "sizes": rows,
        "profile_top": profile_top,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1))
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main())
