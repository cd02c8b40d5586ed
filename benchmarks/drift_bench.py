"""Drift report at scale: retrainer against a numpy floor, a scipy loop and Evidently.

One run, one data set, one machine. The script writes a seeded synthetic reference and
current frame (1,000,000 rows x 50 numeric + 10 categorical columns by default) to
Parquet, then starts one worker process per method (benchmarks/worker.py), each
reading the same files, so every method gets a fresh process and a clean memory
high-water mark:

* numpy_floor: sorts every numeric column of both frames, nothing else;
* scipy_loop: scipy.stats.ks_2samp per numeric column, chi2_contingency per
  categorical column;
* retrainer_full: ReferenceProfile.build + drift_report;
* retrainer_prebuilt: drift_report against a profile built before the clock starts;
* evidently_ks / evidently_default: Evidently's DataDriftPreset with KS (numeric) and
  chi-square (categorical) forced, and with its own default tests, run by the
  interpreter of its own venv (benchmarks/.venv-evidently).

Results (median wall time of --repeats timed calls after --warmup untimed ones -- for
Evidently, whose single call takes minutes at 1M rows, 3 calls with KS forced and 1
with its defaults, no warm-up -- peak RSS increase, per-column statistics and their
agreement) go to
benchmarks/results/drift.json (drift.quick.json with --quick); benchmarks/report.py
renders them into docs/benchmarks.md.

    .venv/bin/python benchmarks/drift_bench.py            # the full run (~40 min on 2 cores)
    .venv/bin/python benchmarks/drift_bench.py --quick    # a 20,000-row smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from machine import load_average, machine_info, source_digest
from synth import write_frames

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
EVIDENTLY_PYTHON = HERE / ".venv-evidently" / "bin" / "python"
OWN_METHODS = ("numpy_floor", "scipy_loop", "retrainer_full", "retrainer_prebuilt")
EVIDENTLY_METHODS = ("evidently_ks", "evidently_default")


def _run_worker(
    env: dict[str, str] | None,
    python: Path | str,
    data: Path,
    method: str,
    repeats: int,
    warmup: int,
    out_dir: Path,
    profile: bool,
) -> dict[str, Any]:
    out = out_dir / f"{method}.json"
    cmd = [
        str(python),
        str(HERE / "worker.py"),
        "--data",
        str(data),
        "--method",
        method,
        "--out",
        str(out),
        "--repeats",
        str(repeats),
        "--warmup",
        str(warmup),
    ]
    if profile:
        cmd += ["--profile", str(out_dir / f"{method}.prof")]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{method} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(out.read_text())
    result["process_wall_s"] = time.perf_counter() - t0
    return result


def _max_abs_diff(
    a: dict[str, Any], b: dict[str, Any], key: str, b_key: str | None = None
) -> dict[str, Any]:
    """Largest |a[col][key] - b[col][b_key]| over the columns both report."""
    diffs: dict[str, float] = {}
    for col, va in a.items():
        vb = b.get(col, {})
        x, y = va.get(key), vb.get(b_key or key)
        if x is None or y is None:
            continue
        x, y = float(x), float(y)
        diffs[col] = 0.0 if (math.isnan(x) and math.isnan(y)) else abs(x - y)
    if not diffs:
        return {"max_abs_diff": None, "column": None, "columns_compared": 0}
    worst = max(diffs, key=lambda c: diffs[c])
    return {"max_abs_diff": diffs[worst], "column": worst, "columns_compared": len(diffs)}


def _agreement(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    scipy = results.get("scipy_loop", {}).get("stats", {})
    out: dict[str, Any] = {}
    for name in ("retrainer_full", "retrainer_prebuilt"):
        mine = results.get(name, {}).get("stats")
        if mine and scipy:
            out[f"{name}_vs_scipy"] = {
                "ks_statistic": _max_abs_diff(mine, scipy, "ks"),
                "chi2_statistic": _max_abs_diff(mine, scipy, "chi2"),
                "p_value": _max_abs_diff(mine, scipy, "p"),
            }
    evi = results.get("evidently_ks", {}).get("stats")
    if evi and scipy:
        ks_cols = {c: v for c, v in evi.items() if v.get("method") == "ks"}
        out["evidently_ks_vs_scipy"] = {
            "ks_p_value": _max_abs_diff(ks_cols, scipy, "value", "p"),
            "note": "Evidently's ValueDrift exposes the KS p-value only, not D; its "
            "'chisquare' is a goodness-of-fit test against reference shares, not scipy's "
            "contingency test, so categorical values are not compared",
        }
    return out


def _ratios(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    t = {k: v["median_s"] for k, v in results.items()}
    out: dict[str, float] = {}
    pairs = [
        ("retrainer_full / numpy_floor", "retrainer_full", "numpy_floor"),
        ("retrainer_prebuilt / numpy_floor", "retrainer_prebuilt", "numpy_floor"),
        ("evidently_ks / retrainer_full", "evidently_ks", "retrainer_full"),
        ("evidently_default / retrainer_full", "evidently_default", "retrainer_full"),
        ("evidently_ks / retrainer_prebuilt", "evidently_ks", "retrainer_prebuilt"),
        ("scipy_loop / retrainer_full", "scipy_loop", "retrainer_full"),
        ("scipy_loop / retrainer_prebuilt", "scipy_loop", "retrainer_prebuilt"),
    ]
    for label, a, b in pairs:
        if a in t and b in t and t[b] > 0:
            out[label] = t[a] / t[b]
    full = results.get("retrainer_full")
    if full:
        out["retrainer_full peak memory / frames"] = (
            full["peak_increase_bytes"] / full["frame_bytes"]
        )
    pre = results.get("retrainer_prebuilt")
    if pre:
        out["retrainer_prebuilt peak memory / frames"] = (
            pre["peak_increase_bytes"] / pre["frame_bytes"]
        )
    return out


def _profile_text(prof: Path, top: int = 25) -> str:
    import io
    import pstats

    buf = io.StringIO()
    stats = pstats.Stats(str(prof), stream=buf)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 rows, 2 repeats (smoke run)")
    parser.add_argument("--rows", type=int, help="rows per frame (default 1,000,000)")
    parser.add_argument("--repeats", type=int, help="timed calls per method (default 5)")
    parser.add_argument(
        "--evidently-repeats", type=int, help="timed calls of Evidently with KS forced (default 3)"
    )
    parser.add_argument(
        "--evidently-default-repeats",
        type=int,
        help="timed calls of Evidently with its default tests (default 1)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="untimed calls first (default 1; Evidently: 0, a call takes minutes)",
    )
    parser.add_argument("--seed", type=int, default=20251126)
    parser.add_argument("--methods", nargs="+", choices=[*OWN_METHODS, *EVIDENTLY_METHODS])
    parser.add_argument("--evidently-python", type=Path, default=EVIDENTLY_PYTHON)
    parser.add_argument("--no-evidently", action="store_true")
    parser.add_argument(
        "--profile", action="store_true", help="also cProfile one call of the retrainer methods"
    )
    parser.add_argument(
        "--workdir", type=Path, help="where the Parquet files go (default: a temp dir)"
    )
    parser.add_argument(
        "--out", type=Path, help="results file (default benchmarks/results/drift[.quick].json)"
    )
    args = parser.parse_args(argv)

    rows = args.rows or (20_000 if args.quick else 1_000_000)
    repeats = args.repeats or (2 if args.quick else 5)
    repeats_of = {
        "evidently_ks": args.evidently_repeats or (1 if args.quick else 3),
        "evidently_default": args.evidently_default_repeats or 1,
    }
    out = args.out or RESULTS / ("drift.quick.json" if args.quick else "drift.json")
    methods = list(args.methods or [*OWN_METHODS, *EVIDENTLY_METHODS])
    skipped: dict[str, str] = {}
    if args.no_evidently or not Path(args.evidently_python).exists():
        why = (
            "--no-evidently" if args.no_evidently else f"no interpreter at {args.evidently_python}"
        )
        skipped.update({m: why for m in methods if m in EVIDENTLY_METHODS})
        methods = [m for m in methods if m not in EVIDENTLY_METHODS]

    drift_src = HERE.parent / "src" / "retrainer" / "monitor" / "drift"
    digest_start = source_digest(drift_src)
    machine = machine_info()  # at the start: the git revision that is measured
    load_start = load_average()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="drift-bench-"))
    outputs = Path(tempfile.mkdtemp(prefix="drift-bench-out-"))
    try:
        # Every retrainer worker imports the same snapshot of src/, even if the work
        # tree is edited while the benchmark runs.
        shutil.copytree(HERE.parent / "src" / "retrainer", outputs / "src" / "retrainer")
        own_env = {**os.environ, "PYTHONPATH": str(outputs / "src")}
        probe = [sys.executable, "-c", "import retrainer; print(retrainer.__file__)"]
        imported = subprocess.run(
            probe, env=own_env, capture_output=True, text=True, check=False
        ).stdout
        if not imported.startswith(str(outputs)):
            raise RuntimeError(f"the snapshot of src/ is not what imports: {imported}")
        t0 = time.perf_counter()
        manifest = write_frames(workdir, rows, args.seed)
        print(
            f"data: {rows:,} rows x {len(manifest['numeric'])} numeric + "
            f"{len(manifest['categorical'])} categorical in {time.perf_counter() - t0:.1f}s "
            f"({workdir})",
            file=sys.stderr,
        )
        results: dict[str, dict[str, Any]] = {}
        for method in methods:
            evidently = method in EVIDENTLY_METHODS
            python = args.evidently_python if evidently else sys.executable
            n = repeats_of.get(method, repeats)
            warmup = 0 if evidently else args.warmup
            profile = args.profile and method.startswith("retrainer")
            env = None if evidently else own_env
            results[method] = _run_worker(env, python, workdir, method, n, warmup, outputs, profile)
            if profile:
                results[method]["profile_top"] = _profile_text(outputs / f"{method}.prof")
            r = results[method]
            peak_mib = r["peak_increase_bytes"] / 2**20
            print(
                f"{method:20s} median {r['median_s']:8.3f}s  peak +{peak_mib:8.0f} MiB",
                file=sys.stderr,
            )
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(outputs, ignore_errors=True)
    load_end = load_average()

    command = "benchmarks/drift_bench.py " + " ".join(argv if argv is not None else sys.argv[1:])
    summary = {
        "benchmark": "drift",
        "command": f".venv/bin/python {command.strip()}",
        "quick": args.quick,
        "rows": rows,
        "seed": args.seed,
        "numeric": len(manifest["numeric"]),
        "categorical": len(manifest["categorical"]),
        "columns": manifest["columns"],
        "machine": machine,
        "drift_package_sha256": digest_start,
        "drift_package_edited_during_run": source_digest(drift_src) != digest_start,
        "load_start": load_start,
        "load_end": load_end,
        "skipped": skipped,
        "ratios": _ratios(results),
        "agreement": _agreement(results),
        "methods": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1))
    for label, value in summary["ratios"].items():
        print(f"{label:45s} {value:8.2f}", file=sys.stderr)
    print(json.dumps(summary["agreement"], indent=1), file=sys.stderr)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
