"""Markdown tables of the issue 8 benchmarks' JSON results, for docs/benchmarks.md.

``dask_scale`` results (one or more files, one or more sizes each): wall time and peak
RSS per step and size (several runs of a size: the median wall time, each run's in
brackets, and the highest peak of each process label over the runs), then each step's
scaling against the smallest size (medians) as
``(time ratio) / (size ratio)`` (at most 1: time grows at most linearly), and the
memory limits of issue 8 (client under 1 GB, each worker under 4 GB; GB = 10^9 bytes,
the unit of Dask's ``--memory-limit 4GB``). ``dask_vs_local`` results: wall time per
side and step, the overhead ratio and the equality checks.

    .venv/bin/python benchmarks/scale_report.py RESULT.json [RESULT.json ...]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
from pathlib import Path
from typing import Any

CLIENT_LIMIT_MIB = 1e9 / 2**20
WORKER_LIMIT_MIB = 4e9 / 2**20
STEPS = ("profile", "drift", "train", "evaluate")


def _mib(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.0f}"


def _highest(tallies: list[dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for tally in tallies:
        for label, v in tally.items():
            out[label] = max(out.get(label, 0.0), v)
    return out


def merge_runs(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One run per size: median wall time per step (``walls``: each run's), highest peaks."""
    merged = []
    for rows in sorted({r["rows"] for r in runs}):
        same = [r for r in runs if r["rows"] == rows]
        steps = {}
        for step in STEPS:
            entries = [r["steps"][step] for r in same if step in r["steps"]]
            if not entries:
                continue
            statuses = sorted({e["status"] for e in entries})
            walls = [e["wall_s"] for e in entries]
            steps[step] = {
                "status": "/".join(statuses),
                "wall_s": statistics.median(walls),
                "walls": walls,
                "peak_rss_mib": _highest([e.get("peak_rss_mib", {}) for e in entries]),
            }
        peaks = _highest([r.get("peak_rss_mib", {}) for r in same])
        merged.append({"rows": rows, "steps": steps, "peak_rss_mib": peaks, "n": len(same)})
    return merged


def _walls(e: dict[str, Any]) -> str:
    each = e.get("walls", [e["wall_s"]])
    if len(each) == 1:
        return f"{e['wall_s']:.1f}"
    return f"{e['wall_s']:.1f} ({' / '.join(f'{w:.1f}' for w in each)})"


def scale_tables(runs: list[dict[str, Any]]) -> list[str]:
    runs = merge_runs(runs)
    out = [
        "| rows | step | status | wall s | client peak MiB | worker-0 peak MiB | "
        "worker-1 peak MiB |",
        "| ---: | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in runs:
        total = 0.0
        for step in STEPS:
            e = r["steps"].get(step)
            if e is None:
                continue
            total += e["wall_s"]
            peaks = e.get("peak_rss_mib", {})
            out.append(
                f"| {r['rows']:,} | {step} | {e['status']} | {_walls(e)} | "
                f"{_mib(peaks.get('client'))} | {_mib(peaks.get('worker-0'))} | "
                f"{_mib(peaks.get('worker-1'))} |"
            )
        peaks = r.get("peak_rss_mib", {})
        out.append(
            f"| {r['rows']:,} | **all four** ({r['n']} run{'s' if r['n'] > 1 else ''}) | | "
            f"**{total:.1f}** | "
            f"**{_mib(peaks.get('client'))}** | **{_mib(peaks.get('worker-0'))}** | "
            f"**{_mib(peaks.get('worker-1'))}** |"
        )
    out += ["", *ratio_table(runs), "", *limit_lines(runs)]
    return out


def _wall(r: dict[str, Any], step: str) -> float | None:
    e = r["steps"].get(step)
    return e["wall_s"] if e is not None and e["status"] == "ok" else None


def _ratios(base: dict[str, Any], r: dict[str, Any]) -> list[str]:
    """(time ratio) / (size ratio) of ``r`` against ``base``, per step and all four."""
    size = r["rows"] / base["rows"]
    cells = []
    for step in STEPS:
        a, b = _wall(base, step), _wall(r, step)
        cells.append("n/a" if a is None or b is None else f"{b / a / size:.2f}")
    totals = [[_wall(x, s) for s in STEPS] for x in (base, r)]
    if all(v is not None for t in totals for v in t):
        cells.append(f"{sum(totals[1]) / sum(totals[0]) / size:.2f}")
    else:
        cells.append("n/a")
    return cells


def ratio_table(runs: list[dict[str, Any]]) -> list[str]:
    """Each size against the smallest, and against the size before it."""
    out = [
        "(time ratio) / (size ratio), 1.00 = linear:",
        "",
        "| rows | against | size ratio | " + " | ".join(STEPS) + " | all four |",
        "| ---: | ---: | ---: |" + " ---: |" * (len(STEPS) + 1),
    ]
    pairs = [(runs[0], r) for r in runs[1:]] + list(itertools.pairwise(runs[1:]))
    for base, r in pairs:
        size = r["rows"] / base["rows"]
        out.append(
            f"| {r['rows']:,} | {base['rows']:,} | {size:g} | "
            + " | ".join(_ratios(base, r))
            + " |"
        )
    return out


def limit_lines(runs: list[dict[str, Any]]) -> list[str]:
    out = []
    for r in runs:
        peaks = r.get("peak_rss_mib", {})
        client = peaks.get("client")
        workers = {k: v for k, v in peaks.items() if k.startswith("worker-")}
        worst = max(workers.values()) if workers else None
        ok_c = client is not None and client < CLIENT_LIMIT_MIB
        ok_w = worst is not None and worst < WORKER_LIMIT_MIB
        out.append(
            f"- {r['rows']:,} rows: client peak {_mib(client)} MiB "
            f"({'under' if ok_c else 'NOT under'} 1 GB = {CLIENT_LIMIT_MIB:.0f} MiB); "
            f"largest worker peak {_mib(worst)} MiB "
            f"({'under' if ok_w else 'NOT under'} 4 GB = {WORKER_LIMIT_MIB:.0f} MiB)"
        )
    return out


def _max_peaks(d: dict[str, Any], side: str, steps: tuple[str, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    for step in steps:
        for label, v in d["peak_rss_mib"][side].get(step, {}).items():
            out[label] = max(out.get(label, 0.0), v)
    return out


def compare_tables(d: dict[str, Any]) -> list[str]:
    out = [
        "| step | local s (each run) | Dask s (each run) | local median | Dask median | "
        "Dask / local | local client peak MiB | Dask client / worker peaks MiB |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    steps = ("profile", "drift")
    for step in (*steps, "total"):
        cells = []
        for side in ("local", "dask"):
            walls = d["wall_s"][side]
            each = (
                walls[step]
                if step in walls
                else [sum(t) for t in zip(*walls.values(), strict=True)]
            )
            cells.append(", ".join(f"{w:.1f}" for w in each))
        med = d["median_wall_s"]
        local_peak, dask_peak = (_max_peaks(d, side, steps) for side in ("local", "dask"))
        if step in steps:
            local_peak = d["peak_rss_mib"]["local"].get(step, {})
            dask_peak = d["peak_rss_mib"]["dask"].get(step, {})
        dask_cells = " / ".join(
            _mib(dask_peak.get(k)) for k in ("client", "worker-0", "worker-1") if dask_peak
        )
        out.append(
            f"| {step} | {cells[0]} | {cells[1]} | {med['local'][step]:.2f} | "
            f"{med['dask'][step]:.2f} | {d['overhead_dask_over_local'][step]:.2f} | "
            f"{_mib(local_peak.get('client'))} | {dask_cells} |"
        )
    out.append("")
    for c in d["checks"]:
        out.append(
            f"- {c['side']} run {c['repeat']} against local run 1: profile bytes "
            f"{'identical' if c['profile_identical'] else 'DIFFER'} ({c['profile_bytes'][1]:,} B), "
            f"drift report to_dict() "
            f"{'identical' if c['report_identical'] else 'DIFFERS'}, drift sample "
            f"{'identical' if c['drift_sample_identical'] else 'DIFFERS'}"
        )
        for diff in c["report_keys_differing"]:
            out.append(f"  - `{diff['key']}`: {diff['first']!r} vs {diff['this']!r}")
        for member in c["profile_members_differing"]:
            out.append(f"  - profile member `{member}` differs")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="+")
    args = parser.parse_args(argv)
    scale_runs: list[dict[str, Any]] = []
    lines: list[str] = []
    for path in args.results:
        d = json.loads(path.read_text())
        if d.get("benchmark") == "dask_scale":
            scale_runs += d["runs"]
        elif d.get("benchmark") == "dask_vs_local":
            lines += [f"{d['rows']:,} rows, {path.name}:", "", *compare_tables(d), ""]
        else:
            parser.error(f"{path}: not a dask_scale or dask_vs_local result")
    if scale_runs:
        lines = [*scale_tables(scale_runs), "", *lines]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
