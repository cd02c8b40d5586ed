"""Run one drift method on the benchmark's Parquet files, in this process, and write
its timings, peak memory and per-column statistics as JSON.

drift_bench.py starts one of these per method so that every method gets a fresh
process (no shared caches, a clean memory high-water mark): retrainer's methods and
the numpy/scipy baselines under the project's venv, Evidently's under its own venv.
Each method's imports happen before the clock starts.

    python benchmarks/worker.py --data DIR --method NAME --out FILE [--repeats N]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import platform
import sys
import warnings
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from measure import rss_bytes, run_repeats

Frames = tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]
Stats = dict[str, dict[str, Any]]


def _numeric_pair(ref: pd.DataFrame, cur: pd.DataFrame, col: str) -> tuple[np.ndarray, np.ndarray]:
    x = ref[col].to_numpy(dtype=np.float64)
    y = cur[col].to_numpy(dtype=np.float64)
    return x[~np.isnan(x)], y[~np.isnan(y)]


# --- methods: each takes the frames and returns a prepared zero-argument callable ------


def numpy_floor(frames: Frames) -> Callable[[], Stats]:
    """Sort every numeric column of both frames; nothing else (the practical floor)."""
    ref, cur, manifest = frames

    def run() -> Stats:
        for col in manifest["numeric"]:
            np.sort(ref[col].to_numpy(dtype=np.float64))
            np.sort(cur[col].to_numpy(dtype=np.float64))
        return {}

    return run


def scipy_loop(frames: Frames) -> Callable[[], Stats]:
    """scipy.stats.ks_2samp per numeric column (NaN dropped), chi2_contingency per
    categorical column on the aligned counts (missing values dropped)."""
    from scipy import stats as sst

    ref, cur, manifest = frames

    def run() -> Stats:
        out: Stats = {}
        for col in manifest["numeric"]:
            x, y = _numeric_pair(ref, cur, col)
            res = sst.ks_2samp(x, y)
            out[col] = {"ks": float(res.statistic), "p": float(res.pvalue)}
        for col in manifest["categorical"]:
            a = ref[col].value_counts(dropna=True)
            b = cur[col].value_counts(dropna=True)
            table = pd.concat([a, b], axis=1).fillna(0).to_numpy(dtype=np.int64).T
            res = sst.chi2_contingency(table)
            out[col] = {"chi2": float(res.statistic), "p": float(res.pvalue)}
        return out

    return run


def _retrainer_parts() -> tuple[Any, Any, Any]:
    from retrainer.monitor.drift.profile import ReferenceProfile
    from retrainer.monitor.drift.report import DriftConfig, drift_report

    return ReferenceProfile, drift_report, DriftConfig()  # the defaults: KS and chi-square


def _report_stats(report: Any) -> Stats:
    out: Stats = {}
    for f in report.features:
        m = f.metrics
        if f.kind == "numeric":
            out[f.feature] = {"ks": m.get("ks"), "p": m.get("ks_p_value"), "status": f.status}
        else:
            out[f.feature] = {"chi2": m.get("chi2"), "p": m.get("chi2_p_value"), "status": f.status}
    return out


def retrainer_full(frames: Frames) -> Callable[[], Stats]:
    """ReferenceProfile.build on the reference + drift_report (default DriftConfig) on
    the current frame."""
    ref, cur, manifest = frames
    profile_cls, drift_report, config = _retrainer_parts()

    def run() -> Stats:
        profile = profile_cls.build(
            ref,
            numeric=manifest["numeric"],
            categorical=manifest["categorical"],
            profile_rows=len(ref),  # every value: the comparison with the other tools
        )
        return _report_stats(drift_report(profile, cur, config))

    return run


def retrainer_prebuilt(frames: Frames) -> Callable[[], Stats]:
    """drift_report (default DriftConfig) on the current frame against a profile built
    beforehand (outside the clock)."""
    ref, cur, manifest = frames
    profile_cls, drift_report, config = _retrainer_parts()
    profile = profile_cls.build(
        ref,
        numeric=manifest["numeric"],
        categorical=manifest["categorical"],
        profile_rows=len(ref),  # every value: the comparison with the other tools
    )

    def run() -> Stats:
        return _report_stats(drift_report(profile, cur, config))

    return run


def _evidently(frames: Frames, **preset_kw: Any) -> Callable[[], Stats]:
    ref, cur, manifest = frames
    try:  # the API of Evidently >= 0.7
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset
    except ImportError:  # the legacy API (Evidently < 0.7)
        return _evidently_legacy(frames, **preset_kw)
    definition = DataDefinition(
        numerical_columns=manifest["numeric"], categorical_columns=manifest["categorical"]
    )

    def run() -> Stats:
        report = Report([DataDriftPreset(**preset_kw)])
        snapshot = report.run(
            Dataset.from_pandas(cur, data_definition=definition),
            Dataset.from_pandas(ref, data_definition=definition),
        )
        out: Stats = {}
        for metric in snapshot.dict()["metrics"]:
            cfg = metric["config"]
            if cfg.get("type", "").endswith("ValueDrift"):
                out[cfg["column"]] = {"value": float(metric["value"]), "method": cfg["method"]}
        return out

    return run


def _evidently_legacy(frames: Frames, **preset_kw: Any) -> Callable[[], Stats]:
    from evidently.metric_preset import DataDriftPreset  # type: ignore[import-not-found]
    from evidently.pipeline.column_mapping import ColumnMapping  # type: ignore[import-not-found]
    from evidently.report import Report  # type: ignore[import-not-found]

    ref, cur, manifest = frames
    mapping = ColumnMapping(
        numerical_features=manifest["numeric"], categorical_features=manifest["categorical"]
    )
    legacy_kw = {
        {"num_method": "num_stattest", "cat_method": "cat_stattest"}[k]: v
        for k, v in preset_kw.items()
    }

    def run() -> Stats:
        report = Report(metrics=[DataDriftPreset(**legacy_kw)])
        report.run(reference_data=ref, current_data=cur, column_mapping=mapping)
        out: Stats = {}
        for metric in report.as_dict()["metrics"]:
            columns = metric.get("result", {}).get("drift_by_columns")
            for col, res in (columns or {}).items():
                out[col] = {"value": float(res["drift_score"]), "method": res["stattest_name"]}
        return out

    return run


def evidently_ks(frames: Frames) -> Callable[[], Stats]:
    """DataDriftPreset with KS for numeric and chi-square for categorical columns."""
    return _evidently(frames, num_method="ks", cat_method="chisquare")


def evidently_default(frames: Frames) -> Callable[[], Stats]:
    """DataDriftPreset with its own choice of test per column."""
    return _evidently(frames)


METHODS: dict[str, Callable[[Frames], Callable[[], Stats]]] = {
    "numpy_floor": numpy_floor,
    "scipy_loop": scipy_loop,
    "retrainer_full": retrainer_full,
    "retrainer_prebuilt": retrainer_prebuilt,
    "evidently_ks": evidently_ks,
    "evidently_default": evidently_default,
}

VERSIONED = ("numpy", "scipy", "pandas", "pyarrow", "evidently", "retrainer")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in VERSIONED:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--method", choices=sorted(METHODS), required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--profile", type=Path, help="write cProfile stats of one call here")
    args = parser.parse_args(argv)

    warnings.simplefilter("ignore")  # Evidently/scipy warn on zero expected counts
    manifest = json.loads((args.data / "manifest.json").read_text())
    rss_empty = rss_bytes()
    ref = pd.read_parquet(args.data / "reference.parquet")
    cur = pd.read_parquet(args.data / "current.parquet")
    frame_bytes = int(ref.memory_usage(deep=True).sum() + cur.memory_usage(deep=True).sum())
    rss_loaded = rss_bytes()
    fn = METHODS[args.method]((ref, cur, manifest))

    figures, stats = run_repeats(fn, args.repeats, args.warmup)
    if args.profile:  # after the timed calls, so that it cannot disturb them
        prof = cProfile.Profile()
        prof.runcall(fn)
        prof.dump_stats(str(args.profile))
    result = {
        "method": args.method,
        "doc": (METHODS[args.method].__doc__ or "").strip(),
        "rows": manifest["rows"],
        "repeats": args.repeats,
        "warmup": args.warmup,
        "python_executable": sys.executable,
        "versions": _versions(),
        "frame_bytes": frame_bytes,
        "numeric_bytes": int(
            sum(f[c].memory_usage(index=False) for f in (ref, cur) for c in manifest["numeric"])
        ),
        "rss_after_load_bytes": rss_loaded,
        "rss_load_increase_bytes": rss_loaded - rss_empty,
        "dtypes": sorted({str(t) for t in ref.dtypes}),
        **figures,
        "stats": stats,
    }
    args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
