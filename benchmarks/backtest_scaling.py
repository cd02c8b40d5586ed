"""How backtest wall time grows with the number of batches and with the rows per batch.

A seeded synthetic history (hourly rows, 8 numeric features, a binary label whose
concept changes every ``CHANGE_EVERY`` batches: the label's weights are redrawn and the
means of three features shift, so both the performance and the drift trigger fire) is
written to Parquet in a temporary folder, with a spec that trains
``HistGradientBoostingClassifier(max_iter=50)`` on a window bounded in rows (four
batches), so a retrain costs the same however long the history is.

Two sweeps, policies ``never,periodic:4,spec``, run in this process (``workers=1``: the
engine's own cost, one core; ``OMP_NUM_THREADS=1`` is set before numpy and scikit-learn
load):

* batches: 1,000-row batches, 25, 50, 100, 200 batches;
* rows: 40 batches of 500, 1,000, 2,000, 4,000 rows.

Each point is timed once (``time.perf_counter`` around ``run_backtest``, with the
process's CPU time beside it) after one untimed warm-up run; each sweep gets a least
squares line and the ratio (time ratio / size ratio) of its largest to its smallest
point, about 1 when the growth is linear. The largest point of each sweep is run once
more with ``workers=0`` (one process per policy, at most one per CPU) for the parallel
speed-up.

Results go to benchmarks/results/backtest_scaling.json (.quick.json with --quick).

    .venv/bin/python benchmarks/backtest_scaling.py           # ~4-5 min on 2 cores
    .venv/bin/python benchmarks/backtest_scaling.py --quick   # ~1 min
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"  # before numpy/scikit-learn load: one core, stable times

import argparse
import gc
import json
import resource
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from machine import load_average, machine_info, source_digest

from retrainer.backtest import (
    BacktestSettings,
    parse_batch_by,
    parse_policies,
    run_backtest,
)

HERE = Path(__file__).resolve().parent
ENGINE = HERE.parent / "src" / "retrainer" / "backtest"
POLICIES = "never,periodic:4,spec"
FEATURES = [f"x{i}" for i in range(8)]
CHANGE_EVERY = 10
"""Batches per concept: the work per batch is the same at every history length."""
WINDOW_BATCHES = 4
SWEEPS = {
    "full": {
        "batches": {"batch_rows": 1_000, "batches": [25, 50, 100, 200]},
        "rows": {"batches": 40, "batch_rows": [500, 1_000, 2_000, 4_000]},
    },
    "quick": {
        "batches": {"batch_rows": 500, "batches": [10, 20, 40, 80]},
        "rows": {"batches": 16, "batch_rows": [250, 500, 1_000, 2_000]},
    },
}

SPEC = """\
model:
  name: scaling
  task: classification
  target: y
  features:
    numeric: [{features}]
data:
  source: data/batches
  time_column: ts
  window: {{rows: {window}}}
  holdout: {{fraction: 0.25, by: time}}
contract:
  min_rows: 50
triggers:
  - performance: {{below: 0.7, min_rows: 50}}
  - drift: {{share: 0.3}}
retrain_policy:
  cooldown: {cooldown}h
train:
  estimator: sklearn.ensemble.HistGradientBoostingClassifier
  params: {{max_iter: 50}}
  seed: 3
evaluate:
  metric: roc_auc
  non_inferiority_margin: 0.02
  bootstrap_resamples: 200
"""


def spec_text(batch_rows: int) -> str:
    """The spec for ``batch_rows``-row batches: a window of four batches' rows, and a
    cooldown of two batches' time (rows are hourly)."""
    return SPEC.format(
        features=", ".join(FEATURES),
        window=WINDOW_BATCHES * batch_rows,
        cooldown=2 * batch_rows,
    )


def history(batches: int, batch_rows: int, *, seed: int) -> pd.DataFrame:
    """``batches * batch_rows`` hourly rows from 2000-01-01.

    Concept ``r`` (batches ``r * CHANGE_EVERY`` to ``(r + 1) * CHANGE_EVERY - 1``) has
    its own label weights and shifts the means of features ``3r .. 3r + 2`` (mod 8) by
    0.8 sd. Each batch draws from its own seeded generator, so a shorter history is a
    prefix of a longer one with the same batch size.
    """
    frames = []
    for b in range(batches):
        concept = b // CHANGE_EVERY
        weights = np.random.default_rng([seed, 1, concept]).normal(size=len(FEATURES))
        weights *= 2.0 / np.linalg.norm(weights)
        shift = np.zeros(len(FEATURES))
        shift[[(3 * concept + k) % len(FEATURES) for k in range(3)]] = 0.8
        rng = np.random.default_rng([seed, 2, b])
        noise = rng.normal(size=(batch_rows, len(FEATURES)))
        logit = noise @ weights
        y = (rng.random(batch_rows) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
        frame = pd.DataFrame(noise + shift, columns=FEATURES)
        frame["y"] = y
        frames.append(frame)
    data = pd.concat(frames, ignore_index=True)
    data.insert(0, "ts", pd.date_range("2000-01-01", periods=len(data), freq="h"))
    return data


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_point(root: Path, batches: int, batch_rows: int, *, workers: int, seed: int) -> dict:
    """Write one history and spec under ``root``, run the backtest once, and time it."""
    folder = root / f"b{batches}_r{batch_rows}"
    folder.mkdir(parents=True, exist_ok=True)
    spec, data = folder / "retrainer.yaml", folder / "history.parquet"
    if not data.exists():
        spec.write_text(spec_text(batch_rows))
        history(batches, batch_rows, seed=seed).to_parquet(data)
    settings = BacktestSettings(
        spec=spec,
        data=data,
        batch_by=parse_batch_by(f"rows:{batch_rows}"),
        policies=parse_policies(POLICIES),
        workers=workers,
    )
    gc.collect()
    load = os.getloadavg()[0]
    cpu0, child0 = time.process_time(), _children_cpu()
    t0 = time.perf_counter()
    result = run_backtest(settings)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    child = _children_cpu() - child0
    rows = batches * batch_rows
    policies = {
        name: {k: p[k] for k in ("retrains", "promotions", "mean", "train_seconds", "wall_seconds")}
        | {"warmup_train_seconds": p["warmup_train_seconds"]}
        for name, p in result["policies"].items()
    }
    point = {
        "batches": batches,
        "batch_rows": batch_rows,
        "rows": rows,
        "workers": workers,
        "wall_s": wall,
        "cpu_s": cpu,
        "children_cpu_s": child,
        "engine_wall_s": result["wall_seconds"],
        "s_per_batch": wall / batches,
        "s_per_1k_rows": wall / (rows / 1_000),
        "load_1m_before": load,
        "policies": policies,
    }
    retrains = ", ".join(f"{n} {p['retrains']}" for n, p in policies.items())
    print(
        f"  {batches:>4} batches x {batch_rows:>5,} rows, workers={workers}: "
        f"wall {wall:7.2f} s, CPU {cpu + child:7.2f} s; retrains {retrains}",
        file=sys.stderr,
    )
    return point


def fit_line(xs: list[float], ys: list[float]) -> dict[str, float]:
    """Least squares ``y = intercept + slope * x`` and its R²."""
    x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (intercept + slope * x)
    total = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((residual**2).sum()) / total if total > 0 else 1.0
    return {"slope": float(slope), "intercept": float(intercept), "r2": r2}


def linearity(points: list[dict], size_key: str) -> dict[str, Any]:
    """Lines for wall and CPU time against ``size_key``, and the largest/smallest ratios."""
    sizes = [p[size_key] for p in points]
    first, last = points[0], points[-1]
    size_ratio = last[size_key] / first[size_key]
    out: dict[str, Any] = {"size": size_key, "size_ratio": size_ratio}
    for key in ("wall_s", "cpu_s"):
        times = [p[key] for p in points]
        time_ratio = last[key] / first[key]
        out[key] = {
            "fit": fit_line(sizes, times),
            "time_ratio": time_ratio,
            "linearity": time_ratio / size_ratio,
        }
    return out


def makespan(policies: dict[str, dict], workers: int) -> float:
    """When the last of the policies' replays would end if they were handed, in order,
    to ``workers`` processes as these free up (their own times only: no process start,
    no reading of the history)."""
    times = [p["wall_seconds"] for p in policies.values()]
    free = [0.0] * max(1, min(workers, len(times)))
    for t in times:
        i = free.index(min(free))
        free[i] += t
    return max(free)


def _fmt(seconds: float) -> str:
    return f"{seconds:.2f}"


def markdown(summary: dict[str, Any]) -> str:
    """The tables and fitted lines, as Markdown."""
    lines = [
        f"`{summary['command']}`; OMP_NUM_THREADS=1 (one core per process); "
        f"policies `{POLICIES}`, workers=1 (in one process) unless said otherwise; "
        f"{summary['machine']['cpu_count']} CPUs, Python {summary['machine']['python']}, "
        f"git {summary['machine']['git_commit']}"
        f"{' (src modified)' if summary['machine']['src_dirty'] else ''}, engine digest "
        f"{summary['engine_digest']['start']}"
        f"{'' if len(set(summary['engine_digest'].values())) == 1 else ' (CHANGED during the run)'}"
        "; load average (1 min) "
        f"{summary['load_start']['1m']:.2f} at the start, {summary['load_end']['1m']:.2f} "
        "at the end.",
        "",
    ]
    names = list(summary["sweeps"]["batches"]["points"][0]["policies"])
    for sweep, title in (("batches", "number of batches"), ("rows", "rows per batch")):
        s = summary["sweeps"][sweep]
        lines += [
            f"**Sweep: {title}**",
            "",
            "| batches | rows per batch | total rows | wall s | CPU s | s per batch "
            "| s per 1,000 rows | replay s (" + " / ".join(names) + ") "
            "| retrains (" + " / ".join(names) + ") | load (1 min) |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for p in s["points"]:
            replays = " / ".join(f"{p['policies'][n]['wall_seconds']:.1f}" for n in names)
            retrains = " / ".join(str(p["policies"][n]["retrains"]) for n in names)
            lines.append(
                f"| {p['batches']} | {p['batch_rows']:,} | {p['rows']:,} | {_fmt(p['wall_s'])} "
                f"| {_fmt(p['cpu_s'] + p['children_cpu_s'])} | {p['s_per_batch']:.3f} "
                f"| {p['s_per_1k_rows']:.3f} | {replays} | {retrains} "
                f"| {p['load_1m_before']:.2f} |"
            )
        fit = s["fit"]
        unit = "batch" if sweep == "batches" else "1,000 rows"
        scale = 1.0 if sweep == "batches" else 1_000.0
        lines.append("")
        for key, label in (("wall_s", "wall"), ("cpu_s", "CPU")):
            f = fit[key]["fit"]
            lines.append(
                f"- {label}: {f['intercept']:.2f} s + {f['slope'] * scale:.3f} s per {unit}, "
                f"R² {f['r2']:.4f}; time ratio / size ratio (x{fit['size_ratio']:g}) "
                f"= {fit[key]['time_ratio']:.2f} / {fit['size_ratio']:g} "
                f"= **{fit[key]['linearity']:.2f}**"
            )
        par = s.get("parallel")
        if par:
            seq = s["points"][-1]
            lines.append(
                f"- parallel (workers=0, {par['processes']} processes) at {seq['batches']} x "
                f"{seq['batch_rows']:,} rows: wall {_fmt(par['wall_s'])} s vs "
                f"{_fmt(seq['wall_s'])} s in one process = **{par['speedup']:.2f}x** "
                f"(bound from the policies' own times: {par['ideal_speedup']:.2f}x); "
                f"the replays themselves took {_fmt(par['makespan_in_workers_s'])} s of it; "
                f"CPU of all processes {_fmt(par['cpu_s'] + par['children_cpu_s'])} s"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller sweep, as a smoke run")
    parser.add_argument("--seed", type=int, default=20251126)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--no-parallel", action="store_true", help="skip the workers=0 runs at the largest points"
    )
    args = parser.parse_args(argv)
    plan = SWEEPS["quick" if args.quick else "full"]
    out = args.out or HERE / "results" / (
        "backtest_scaling.quick.json" if args.quick else "backtest_scaling.json"
    )
    machine = machine_info()  # at the start: the code measured, not the code at the end
    digest = source_digest(ENGINE)
    load_start = load_average()
    started = time.perf_counter()
    sweeps: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="backtest-scaling-") as tmp:
        root = Path(tmp)
        b = plan["batches"]
        print("warm-up run (not timed)", file=sys.stderr)
        run_point(root, b["batches"][0], b["batch_rows"], workers=1, seed=args.seed)
        shapes = {
            "batches": [(n, b["batch_rows"]) for n in b["batches"]],
            "rows": [(plan["rows"]["batches"], r) for r in plan["rows"]["batch_rows"]],
        }
        for sweep, points in shapes.items():
            print(f"sweep: {sweep}", file=sys.stderr)
            measured = [run_point(root, n, r, workers=1, seed=args.seed) for n, r in points]
            sweeps[sweep] = {
                "points": measured,
                "fit": linearity(measured, sweep),
            }
            if not args.no_parallel:
                n, r = points[-1]
                par = run_point(root, n, r, workers=0, seed=args.seed)
                processes = min(len(par["policies"]), os.cpu_count() or 1)
                seq = measured[-1]["policies"]
                par |= {
                    "processes": processes,
                    "speedup": measured[-1]["wall_s"] / par["wall_s"],
                    "ideal_speedup": sum(p["wall_seconds"] for p in seq.values())
                    / makespan(seq, processes),
                    "makespan_in_workers_s": makespan(par["policies"], processes),
                }
                sweeps[sweep]["parallel"] = par

    command = "benchmarks/backtest_scaling.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    summary = {
        "benchmark": "backtest_scaling",
        "command": f".venv/bin/python {command.strip()}",
        "quick": args.quick,
        "seed": args.seed,
        "omp_num_threads": os.environ["OMP_NUM_THREADS"],
        "policies": POLICIES,
        "change_every_batches": CHANGE_EVERY,
        "window_batches": WINDOW_BATCHES,
        "machine": machine,
        "engine_digest": {"start": digest, "end": source_digest(ENGINE)},
        "versions": {m: _version(m) for m in ("numpy", "pandas", "scikit-learn", "retrainer")},
        "load_start": load_start,
        "load_end": load_average(),
        "total_seconds": time.perf_counter() - started,
        "sweeps": sweeps,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1))
    print(markdown(summary))
    print(f"wrote {out} ({summary['total_seconds']:.0f} s in all)", file=sys.stderr)
    return 0


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main())
