"""Render benchmarks/results/*.json into the results section of docs/benchmarks.md.

Only the text between ``<!-- results:start -->`` and ``<!-- results:end -->`` is
replaced; the rest of the page (how to run, what is measured, the analysis) is kept as
written. With ``--stdout`` the section is printed instead.

    .venv/bin/python benchmarks/report.py [--quick] [--stdout]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DOC = HERE.parent / "docs" / "benchmarks.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"
MiB = 2**20

LABELS = {
    "numpy_floor": "numpy floor: `np.sort` of every numeric column of both frames",
    "scipy_loop": "scipy loop: `ks_2samp` x 50 + `chi2_contingency` x 10",
    "retrainer_full": "retrainer: `ReferenceProfile.build` + `drift_report`",
    "retrainer_prebuilt": "retrainer: `drift_report` against a prebuilt profile",
    "evidently_ks": "Evidently `DataDriftPreset(num_method='ks', cat_method='chisquare')`",
    "evidently_default": "Evidently `DataDriftPreset()` (its default tests)",
}


def _s(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _x(ratio: float) -> str:
    return f"{ratio:.2f}x" if ratio < 10 else f"{ratio:.1f}x"


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def _machine(data: dict[str, Any]) -> list[str]:
    m = data["machine"]
    lines = [
        f"- CPU: {m['cpu_model']}, {m['cpu_count']} logical CPUs "
        f"({m['cpu_affinity']} usable by the process); RAM {m['mem_total_bytes'] / 2**30:.1f} GiB",
        f"- OS: {m['os']}; Python {m['python']}",
        f"- retrainer at git {m['git_commit']}"
        + (" with uncommitted changes under src/" if m.get("src_dirty") else ""),
    ]
    return lines


def _load(data: dict[str, Any]) -> str:
    a, b = data["load_start"], data["load_end"]
    return (
        f"load average (1/5/15 min) at start {a['1m']:.2f}/{a['5m']:.2f}/{a['15m']:.2f} "
        f"({a['at']}), at end {b['1m']:.2f}/{b['5m']:.2f}/{b['15m']:.2f} ({b['at']})"
    )


def _drift(data: dict[str, Any]) -> list[str]:
    methods = data["methods"]
    full = methods.get("retrainer_full", {})
    floor = methods.get("numpy_floor", {})
    out = [
        f"### Drift report: {data['rows']:,} rows x {data['numeric']} numeric + "
        f"{data['categorical']} categorical columns",
        "",
        f"`{data['command']}`; {_load(data)}.",
        "",
    ]
    versions: dict[str, str] = {}
    for name in ("retrainer_full", "evidently_ks"):
        for k, v in methods.get(name, {}).get("versions", {}).items():
            versions.setdefault(
                f"{k} ({'project venv' if name.startswith('retr') else 'Evidently venv'})", v
            )
    out.append("Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".")
    if data.get("drift_package_sha256"):
        out.append("")
        edited = data.get("drift_package_edited_during_run")
        out.append(
            f"Drift package `src/retrainer/monitor/drift/*.py` digest "
            f"{data['drift_package_sha256']}"
            + (
                " (edited during the run; every worker imported a snapshot taken at the start)"
                if edited
                else " (unchanged during the run)"
            )
            + "."
        )
    out.append("")
    if full:
        out.append(
            f"The two frames take {full['frame_bytes'] / MiB:,.0f} MiB in memory as loaded "
            f"(pandas `memory_usage(deep=True)`; dtypes {', '.join(full['dtypes'])}), of which "
            f"{full['numeric_bytes'] / MiB:,.0f} MiB numeric."
        )
        out.append("")
    out += [
        "| method | median wall | min wall | median CPU | calls timed | peak RSS increase "
        "| wall vs retrainer full | wall vs numpy floor |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in methods.items():
        vs_full = _x(r["median_s"] / full["median_s"]) if full else "-"
        vs_floor = _x(r["median_s"] / floor["median_s"]) if floor else "-"
        peak = r["peak_increase_bytes"] / MiB
        out.append(
            f"| {LABELS.get(name, name)} | {_s(r['median_s'])} | {_s(r['min_s'])} | "
            f"{_s(r['cpu_median_s'])} | {r['repeats']} (+{r['warmup']} warm-up) | "
            f"{peak:,.0f} MiB | {vs_full} | {vs_floor} |"
        )
    for name, why in data.get("skipped", {}).items():
        out.append(f"| {LABELS.get(name, name)} | skipped: {why} | | | | | | |")
    out.append("")
    return out


def _pair(methods: dict[str, Any], a: str, b: str) -> tuple[float, float] | None:
    """(wall ratio, CPU ratio) of method a over method b."""
    if a not in methods or b not in methods:
        return None
    ra, rb = methods[a], methods[b]
    return ra["median_s"] / rb["median_s"], ra["cpu_median_s"] / rb["cpu_median_s"]


def _both(pair: tuple[float, float] | None) -> str:
    return "-" if pair is None else f"{_x(pair[0])} wall ({_x(pair[1])} CPU)"


def _targets(drift: dict[str, Any] | None, scaling: dict[str, Any] | None) -> list[str]:
    out = ["### Targets (issue 3)", "", "| target | figure | verdict |", "| --- | --- | --- |"]
    if drift:
        m = drift["methods"]
        r = _pair(m, "retrainer_full", "numpy_floor")
        if r is not None:
            pre = _pair(m, "retrainer_prebuilt", "numpy_floor")
            out.append(
                f"| full report within 2x of the numpy sort floor | {_both(r)}; "
                f"prebuilt profile: {_both(pre)} | {_verdict(max(r) <= 2)} |"
            )
        r = _pair(m, "evidently_ks", "retrainer_full")
        if r is not None:
            d = _pair(m, "evidently_default", "retrainer_full")
            pre = _pair(m, "evidently_ks", "retrainer_prebuilt")
            out.append(
                f"| 20x faster than Evidently's DataDriftPreset (goal) | KS forced: {_both(r)}; "
                f"its default tests: {_both(d)}; KS forced vs prebuilt profile: {_both(pre)} "
                f"| {_verdict(min(r) >= 20)} |"
            )
        r = _pair(m, "scipy_loop", "retrainer_full")
        if r is not None:
            out.append(f"| (no target) scipy loop / retrainer full | {_both(r)} | - |")
        full = m.get("retrainer_full")
        if full:
            rise = full["peak_increase_bytes"] / full["frame_bytes"]
            total = full["peak_rss_bytes"] / full["frame_bytes"]
            out.append(
                f"| full report's peak memory at most 3x the two frames | rise of peak RSS over "
                f"the loaded frames: {_x(rise)}; whole process's peak RSS (interpreter, "
                f"libraries, Arrow's read buffers and the frames included): {_x(total)} "
                f"| {_verdict(rise <= 3)} |"
            )
    if scaling:
        last = scaling["sizes"][-1]
        cold = last.get("check_cold_ratio")
        ok = all(x <= last["log_ratio"] for x in (last["check_ratio"], cold) if x is not None)
        cold_text = "" if cold is None else f", cold cache x{cold:.2f}"
        out.append(
            f"| a check grows no faster than log(n) of the reference | "
            f"{last['reference_rows']:,} vs {scaling['sizes'][0]['reference_rows']:,} rows: "
            f"time x{last['check_ratio']:.2f}{cold_text}, log(n) x{last['log_ratio']:.2f} "
            f"(n x{last['n_ratio']:,.0f}) | {_verdict(ok)} |"
        )
    out.append("")
    return out


def _agreement(data: dict[str, Any]) -> list[str]:
    agr = data.get("agreement", {})
    if not agr:
        return []
    out = [
        "### Agreement of the statistics",
        "",
        "| comparison | statistic | max abs diff | worst column | columns |",
        "| --- | --- | ---: | --- | ---: |",
    ]
    for comparison, parts in agr.items():
        for stat, v in parts.items():
            if isinstance(v, dict):
                diff = v["max_abs_diff"]
                shown = "-" if diff is None else f"{diff:.3g}"
                out.append(
                    f"| {comparison.replace('_vs_', ' vs ')} | {stat} | {shown} | "
                    f"{v['column']} | {v['columns_compared']} |"
                )
    notes = [v["note"] for v in agr.values() if isinstance(v, dict) and "note" in v]
    out.append("")
    out += [f"{n}." for n in notes]
    out.append("")
    return out


def _scaling(data: dict[str, Any]) -> list[str]:
    out = [
        f"### Checking a {data['batch_rows']:,}-row batch against a prebuilt profile",
        "",
        f"`{data['command']}`; {_load(data)}. {len(data['numeric'])} numeric + "
        f"{len(data['categorical'])} categorical columns; median of {data['repeats']} checks "
        "after one warm-up; cold: 256 MiB of scratch memory written before each check, so "
        "the reference is no longer cached.",
        "",
        "| reference rows | profile build | profile size | check (drift_report) | x first | "
        "cold check | x first | log(n) x first | KS only | scipy ks_2samp on raw reference "
        "| x first |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in data["sizes"]:
        size = r["profile_bytes"] / MiB
        cold = (
            f"{_s(r['check_cold_median_s'])} | {r['check_cold_ratio']:.2f}"
            if "check_cold_ratio" in r
            else "- | -"
        )
        out.append(
            f"| {r['reference_rows']:,} | {_s(r['build_s'])} | {size:,.1f} MiB | "
            f"{_s(r['check_median_s'])} | {r['check_ratio']:.2f} | {cold} | "
            f"{r['log_ratio']:.2f} | "
            f"{_s(r['ks_only_median_s'])} | {_s(r['scipy_ks_2samp_median_s'])} | "
            f"{r['scipy_ratio']:.1f} |"
        )
    out.append("")
    return out


def _hotspots(data: dict[str, Any]) -> list[str]:
    out = []
    for name in ("retrainer_full", "retrainer_prebuilt"):
        text = data["methods"].get(name, {}).get("profile_top")
        if text:
            body = text[text.find("ncalls") :] if "ncalls" in text else text
            out += [
                f"<details><summary>cProfile of one {name} call (by own time)</summary>",
                "",
                "```",
                body.rstrip(),
                "```",
                "",
                "</details>",
                "",
            ]
    return out


def render(quick: bool) -> str:
    suffix = ".quick.json" if quick else ".json"
    drift_path = HERE / "results" / f"drift{suffix}"
    scaling_path = HERE / "results" / f"profile_scaling{suffix}"
    drift = json.loads(drift_path.read_text()) if drift_path.exists() else None
    scaling = json.loads(scaling_path.read_text()) if scaling_path.exists() else None
    if drift is None and scaling is None:
        raise SystemExit(
            f"no results in {HERE / 'results'}: run drift_bench.py / profile_scaling.py"
        )
    lines = [START, "", "## Results", ""]
    if quick:
        lines += ["*Quick smoke-run sizes: not representative.*", ""]
    lines += ["Machine:", "", *_machine(drift or scaling), ""]  # type: ignore[arg-type]
    lines += _targets(drift, scaling)
    if drift:
        lines += _drift(drift) + _agreement(drift)
    if scaling:
        lines += _scaling(scaling)
    if drift:
        lines += _hotspots(drift)
    if scaling and scaling.get("profile_top"):
        text = scaling["profile_top"]
        body = text[text.find("ncalls") :] if "ncalls" in text else text
        n = scaling["sizes"][-1]["reference_rows"]
        lines += [
            f"<details><summary>cProfile of one check against {n:,} reference rows "
            "(by own time)</summary>",
            "",
            "```",
            body.rstrip(),
            "```",
            "",
            "</details>",
            "",
        ]
    lines.append(END)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="render the *.quick.json results")
    parser.add_argument("--stdout", action="store_true", help="print instead of rewriting the doc")
    parser.add_argument("--doc", type=Path, default=DOC)
    args = parser.parse_args(argv)
    section = render(args.quick)
    if args.stdout:
        sys.stdout.write(section)
        return 0
    text = args.doc.read_text() if args.doc.exists() else f"# Benchmarks\n\n{START}\n{END}\n"
    if START not in text or END not in text:
        raise SystemExit(f"{args.doc} has no {START} ... {END} section to replace")
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    args.doc.write_text(head + section.rstrip("\n") + tail)
    print(f"rewrote the results section of {args.doc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
