"""A retraining cycle on a 2-worker Dask LocalCluster at up to 20M rows (issue 8).

A seeded synthetic dataset (N rows x 30 columns: 25 float32 features, 3 string
categoricals, a timestamp, an int8 label) is written as Parquet files of 1,000,000 rows,
one chunk at a time, with a "current" dataset of ``--current-share`` of the rows in
which five columns are shifted (:data:`SHIFTS`). Then, on a ``LocalCluster`` (worker
processes on loopback, one thread each, ``--memory-limit`` per worker), the steps of a
cycle (:data:`STEPS`) run one after the other and each is timed:

* ``profile``: ``build_profile`` of the reference files (project API);
* ``drift``: ``sample_rows`` of the current files, ``drift_report`` against the profile;
* ``train``: LightGBM on the reference files. ``--trainer direct`` (default):
  ``lightgbm.DaskLGBMClassifier`` on ``dask.dataframe.read_parquet`` partitions, one per
  file, the categoricals as codes of their reference levels, all 28 features float32,
  partition ``i`` persisted on worker ``i % 2``. ``--trainer project``: the project's
  ``executor.fit`` (``retrainer.train.distributed``: one-hot, float64);
* ``evaluate``: ROC AUC on the current files through ``holdout_scores``.

A step whose project function is missing is reported as skipped, with the reason.

Memory: a thread samples the resident set (psutil, every ``--sample-every`` s) of the
client process (which also runs the scheduler and the nannies), of each worker process
(pids from ``client.run(os.getpid)``) and of other children, and reports the peak per
process for the run, per step and for the train step's read and fit phases. Workers do
not spill (LightGBM keeps a socket in worker memory, which cannot be pickled), pyarrow
uses the system allocator (``--arrow-pool``), and LightGBM histograms are column-wise.
If the nanny kills a worker (95 % of its limit), the step fails at once rather than
waiting for LightGBM, which never returns, and the run stops.

    .venv/bin/python benchmarks/dask_scale.py --rows 20M --json OUT.json  # ~6 min
    .venv/bin/python benchmarks/dask_scale.py --rows 2M 5M 10M 20M --json OUT.json
    .venv/bin/python benchmarks/dask_scale.py --rows 2M --trainer project --steps train
    .venv/bin/python benchmarks/dask_scale.py --rows 20M --generate-only

Data goes to ``--data-dir`` (default /work/bench-data), one folder per dataset
(``reference-<rows>-s<seed>``, ``current-<rows>-s<seed>``) with a ``manifest.json``; a
folder whose manifest has the same rows, seed and generator version is reused. The
result (settings, machine, load, per-step figures) is JSON, to ``--json`` or stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import scale_data
from machine import load_average, machine_info
from rss_sampler import RssSampler, mib
from scale_data import (
    CATEGORICAL,
    FEATURES,
    NUMERIC,
    SHIFTS,
    TARGET,
    Dataset,
    datasets,
    levels,
)

cloudpickle.register_pickle_by_value(scale_data)  # workers need not import it

# --------------------------------------------------------------------------- steps


@dataclass
class Context:
    """What the steps share: the cluster, the data and what earlier steps produced."""

    args: argparse.Namespace
    reference: Dataset
    current: Dataset
    client: Any
    sampler: RssSampler
    executor: Any = None
    results: dict[str, Any] = field(default_factory=dict)


class Skipped(Exception):
    """A step could not run (its project function is missing); the message says why."""


def _project(module: str, *names: str) -> list[Any]:
    """Names from a project module, or :class:`Skipped` naming what is missing."""
    import importlib

    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise Skipped(f"{module} is not importable: {exc}") from exc
    missing = [n for n in names if not hasattr(mod, n)]
    if missing:
        raise Skipped(f"{module} has no {', '.join(missing)}")
    return [getattr(mod, n) for n in names]


def project_executor(ctx: Context) -> Any:
    """The project's Dask executor on this benchmark's cluster (built once)."""
    if ctx.executor is None:
        (build_executor,) = _project("retrainer.orchestrate.executors", "build_executor")
        ctx.executor = build_executor(ctx.client.scheduler.address.replace("tcp://", "dask://"))
    return ctx.executor


def parquet_files(dataset: Dataset) -> Any:
    (files,) = _project("retrainer.orchestrate.executors", "ParquetFiles")
    return files(paths=dataset.paths)


def step_profile(ctx: Context) -> dict[str, Any]:
    """Reference profile of the reference files, built on the workers."""
    (build_profile,) = _project("retrainer.monitor.drift.partial", "build_profile")
    executor = project_executor(ctx)
    options = {} if ctx.args.profile_rows is None else {"profile_rows": ctx.args.profile_rows}
    profile = build_profile(
        executor, parquet_files(ctx.reference), NUMERIC, CATEGORICAL, seed=ctx.args.seed, **options
    )
    ctx.results["profile"] = profile
    return {"profile_bytes": len(profile.to_bytes()) if hasattr(profile, "to_bytes") else None}


def step_drift(ctx: Context) -> dict[str, Any]:
    """A sample of the current files, checked against the reference profile."""
    (sample_rows,) = _project("retrainer.monitor.drift.partial", "sample_rows")
    drift_report, drift_config = _project("retrainer.monitor.drift", "drift_report", "DriftConfig")
    if "profile" not in ctx.results:
        raise Skipped("no reference profile (the profile step did not run)")
    executor = project_executor(ctx)
    frame = sample_rows(
        executor, parquet_files(ctx.current), ctx.args.drift_rows, seed=ctx.args.seed
    )
    report = drift_report(ctx.results["profile"], frame, drift_config())
    drifted = getattr(report, "drifted", None)
    return {"sample_rows": len(frame), "drifted": drifted, "expected_shifted": sorted(SHIFTS)}


def _codes(part: Any, dtype: str) -> Any:
    """Categoricals as codes of the fixed reference levels (-1 -> NaN for unseen)."""
    import pandas as pd

    out = part.copy()
    for name in CATEGORICAL:
        codes = pd.Index(levels(name)).get_indexer(part[name]).astype(dtype)
        codes[codes < 0] = np.nan
        out[name] = codes
    return out


def training_inputs(ctx: Context, dataset: Dataset) -> tuple[Any, Any, list[str]]:
    """Lazy X (float32) and y of ``dataset`` as LightGBM's Dask estimator takes them."""
    import dask.dataframe as dd

    args = ctx.args
    features = NUMERIC + (CATEGORICAL if args.categoricals == "codes" else [])
    ddf = dd.read_parquet(list(dataset.paths), columns=[*features, TARGET], split_row_groups=False)
    if ddf.npartitions != len(dataset.paths):
        raise RuntimeError(f"{ddf.npartitions} partitions for {len(dataset.paths)} files")
    if args.categoricals == "codes":
        meta = ddf._meta.assign(**{c: np.float32(0) for c in CATEGORICAL})
        ddf = ddf.map_partitions(_codes, "float32", meta=meta)
    x, y = ddf[features], ddf[TARGET]
    if args.train_input == "array":
        lengths = list(dataset.part_rows)
        x = x.to_dask_array(lengths=lengths).astype(np.float32)
        y = y.to_dask_array(lengths=lengths)
    return x, y, features


def place(client: Any, x: Any, y: Any, *, round_robin: bool) -> tuple[Any, Any]:
    """``x`` and ``y`` persisted on the workers: partition ``i`` on worker ``i % n``
    (sorted by address), or where the scheduler puts them."""
    if not round_robin:
        placed = client.persist([x, y])
        return placed[0], placed[1]
    import dask.array as da
    import dask.dataframe as dd

    workers = sorted(client.scheduler_info()["workers"])
    is_array = isinstance(x, da.Array)
    xb, yb = (x.blocks, y.blocks) if is_array else (x.partitions, y.partitions)
    xs, ys = [], []
    for i in range(x.numblocks[0] if is_array else x.npartitions):
        xi, yi = client.persist([xb[i], yb[i]], workers=[workers[i % len(workers)]])
        xs.append(xi)
        ys.append(yi)
    if is_array:
        return da.concatenate(xs, axis=0), da.concatenate(ys, axis=0)
    return dd.concat(xs), dd.concat(ys)


def lightgbm_params(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "n_estimators": args.n_estimators,
        "num_leaves": args.num_leaves,
        "max_bin": args.max_bin,
        "learning_rate": 0.1,
        "force_col_wise": args.force_col_wise,
        "verbose": -1,
    }


def step_train(ctx: Context) -> dict[str, Any]:
    """LightGBM on the reference files: lightgbm.DaskLGBMClassifier directly, or the
    project's ``executor.fit`` (``--trainer project``)."""
    if ctx.args.trainer == "project":
        return train_with_executor(ctx)
    import lightgbm as lgb
    from distributed import wait

    args = ctx.args
    x, y, features = training_inputs(ctx, ctx.reference)
    categorical = (
        [features.index(c) for c in CATEGORICAL] if args.categoricals == "codes" else "auto"
    )
    ctx.sampler.step("train:read")
    t0 = time.perf_counter()
    x, y = place(ctx.client, x, y, round_robin=args.placement == "round-robin")
    wait([x, y])
    load_s = time.perf_counter() - t0
    placement: dict[str, int] = {}
    for holders in ctx.client.who_has(x).values():
        for address in holders:
            placement[address] = placement.get(address, 0) + 1
    ctx.sampler.step("train:fit")
    t0 = time.perf_counter()
    model = lgb.DaskLGBMClassifier(
        client=ctx.client, n_jobs=1, random_state=args.seed, **lightgbm_params(args)
    )
    model.fit(x, y, categorical_feature=categorical)
    fit_s = time.perf_counter() - t0
    ctx.results["model"] = model
    ctx.results["features"] = features
    booster = model.booster_
    del x, y
    return {
        "read_persist_s": load_s,
        "fit_s": fit_s,
        "partitions_per_worker": dict(sorted(placement.items())),
        "features": len(features),
        "categoricals": args.categoricals,
        "train_input": args.train_input,
        "trees": booster.num_trees(),
        "settings": {**lightgbm_params(args), "n_jobs": 1},
    }


def train_with_executor(ctx: Context) -> dict[str, Any]:
    """The project's path: ``executor.fit`` of a ``lightgbm.LGBMClassifier`` trainer."""
    model_section, train_section, features = _project(
        "retrainer.spec", "ModelSection", "TrainSection", "Features"
    )
    (build_trainer,) = _project("retrainer.train", "build_trainer")
    spec = model_section(
        name="dask-scale",
        task="classification",
        target=TARGET,
        features=features(numeric=NUMERIC, categorical=CATEGORICAL),
    )
    params = lightgbm_params(ctx.args)
    trainer = build_trainer(spec, train_section(estimator="lightgbm.LGBMClassifier", params=params))
    executor = project_executor(ctx)
    ctx.sampler.step("train:fit")
    data = parquet_files(ctx.reference)
    ctx.results["pipeline"] = executor.fit(trainer, data, seed=ctx.args.seed)
    return {"trainer": "project executor.fit", "settings": params}


def _as_trained(frame: Any, features: list[str], as_frame: bool) -> Any:
    """The raw feature columns as the model was trained on them (float32)."""
    coded = _codes(frame, "float32") if set(CATEGORICAL) & set(features) else frame
    x = coded[features].astype(np.float32)
    return x if as_frame else x.to_numpy()


def step_evaluate(ctx: Context) -> dict[str, Any]:
    """ROC AUC of the trained model on the current files, scored on the workers."""
    (holdout_scores,) = _project("retrainer.evaluate.partitioned", "holdout_scores")
    (score,) = _project("retrainer.evaluate.metrics", "score")
    if "model" not in ctx.results and "pipeline" not in ctx.results:
        raise Skipped("no model (the train step did not run)")
    from functools import partial

    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    model = ctx.results.get("pipeline")
    if model is None:
        model = make_pipeline(
            FunctionTransformer(
                partial(
                    _as_trained,
                    features=ctx.results["features"],
                    as_frame=ctx.args.train_input == "frame",
                )
            ),
            ctx.results["model"].to_local(),
        )
    y, scores = holdout_scores(
        project_executor(ctx),
        {"candidate": model},
        parquet_files(ctx.current),
        features=FEATURES,
        target=TARGET,
        metric="roc_auc",
    )
    return {"rows": len(y), "roc_auc": score("roc_auc", y, scores["candidate"])}


STEPS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "profile": step_profile,
    "drift": step_drift,
    "train": step_train,
    "evaluate": step_evaluate,
}


# --------------------------------------------------------------------------- run


def start_cluster(args: argparse.Namespace) -> tuple[Any, Any]:
    import dask
    from distributed import Client, LocalCluster

    memory = {} if args.spill else {"target": False, "spill": False}
    config = {"distributed.worker.daemon": False}
    config.update({f"distributed.worker.memory.{k}": v for k, v in memory.items()})
    with dask.config.set(config):
        cluster = LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            memory_limit=args.memory_limit,
        )
    return cluster, Client(cluster)


def worker_roles(client: Any) -> dict[int, str]:
    pids = client.run(os.getpid)
    return {pid: f"worker-{i}" for i, (_, pid) in enumerate(sorted(pids.items()))}


def run_once(args: argparse.Namespace, rows: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    reference, current = datasets(args.data_dir, rows, args.seed, args.current_share)
    data_s = time.perf_counter() - t0
    result: dict[str, Any] = {
        "rows": rows,
        "reference": {"folder": str(reference.folder), "files": len(reference.paths)},
        "current": {"folder": str(current.folder), "rows": current.rows},
        "data_s": data_s,
        "generated_s": {"reference": reference.generated_s, "current": current.generated_s},
    }
    if args.generate_only:
        return result

    sampler = RssSampler(every=args.sample_every).start()
    steps: dict[str, Any] = {}
    cluster = client = ctx = None
    try:
        sampler.step("cluster")
        t0 = time.perf_counter()
        cluster, client = start_cluster(args)
        roles = worker_roles(client)
        sampler.set_roles(roles)
        steps["cluster"] = {"status": "ok", "wall_s": time.perf_counter() - t0}
        ctx = Context(args, reference, current, client, sampler)
        for name in args.steps:
            sampler.step(name)
            t0 = time.perf_counter()
            entry: dict[str, Any]
            try:
                entry = {"status": "ok", **STEPS[name](ctx)}
            except Skipped as exc:
                entry = {"status": "skipped", "reason": str(exc)}
            except Exception as exc:  # noqa: BLE001 - a failed step is a finding to report
                entry = {"status": "failed", "error": repr(exc), "trace": traceback.format_exc()}
            except KeyboardInterrupt:
                if not sampler.lost:
                    raise
                entry = {"status": "failed", "error": f"worker process lost: {sampler.lost}"}
            entry["wall_s"] = time.perf_counter() - t0
            now = worker_roles(client)
            if set(now) != set(roles):
                entry["workers_replaced"] = {"before": roles, "after": now}
                roles = now
                sampler.set_roles(roles)
            steps[name] = entry
            print(f"  {name:<9} {entry['status']:<8} {entry['wall_s']:8.1f} s", file=sys.stderr)
            if sampler.lost:
                break  # the cluster's state is unknown: later steps would measure nothing
    finally:
        sampler.watching = False
        sampler.step(None)
        if ctx is not None and ctx.executor is not None and hasattr(ctx.executor, "close"):
            ctx.executor.close()
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
        sampler.stop()
    for name, peaks in sampler.step_peaks.items():
        step, _, phase = name.partition(":")
        if step in steps:
            key = f"peak_rss_mib_{phase}" if phase else "peak_rss_mib"
            steps[step][key] = {k: mib(v) for k, v in sorted(peaks.items())}
    workers = [v for k, v in sampler.peaks.items() if k.startswith("worker-")]
    result.update(
        steps=steps,
        peak_rss_mib={k: mib(v) for k, v in sorted(sampler.peaks.items())},
        peak_rss_client_mib=mib(sampler.peaks.get("client")),
        peak_rss_worker_max_mib=mib(max(workers)) if workers else None,
        rss_samples=sampler.samples,
    )
    return result


def parse_rows(text: str) -> int:
    text = text.strip().upper().replace("_", "").replace(",", "")
    scale = {"K": 10**3, "M": 10**6}.get(text[-1:], 1)
    return int(float(text[:-1]) * scale) if scale > 1 else int(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", type=parse_rows, nargs="+", default=[20_000_000], help="e.g. 2M 20M"
    )
    parser.add_argument("--data-dir", type=Path, default=Path("/work/bench-data"))
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--current-share", type=float, default=0.1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="4GB")
    parser.add_argument("--steps", type=lambda s: s.split(","), default=list(STEPS))
    parser.add_argument("--drift-rows", type=int, default=200_000)
    parser.add_argument(
        "--profile-rows", type=int, help="build_profile's profile_rows (default: its own)"
    )
    parser.add_argument("--n-estimators", type=int, default=50)
    parser.add_argument("--num-leaves", type=int, default=63)
    parser.add_argument("--max-bin", type=int, default=255)
    parser.add_argument(
        "--trainer",
        choices=("direct", "project"),
        default="direct",
        help="direct: DaskLGBMClassifier on float32 codes; project: executor.fit",
    )
    parser.add_argument("--categoricals", choices=("codes", "drop"), default="codes")
    parser.add_argument("--train-input", choices=("array", "frame"), default="array")
    parser.add_argument("--force-col-wise", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--spill",
        action="store_true",
        help="let workers spill to disk (default: off; LightGBM's sockets cannot be pickled)",
    )
    parser.add_argument(
        "--arrow-pool",
        choices=("default", "system"),
        default="system",
        help="pyarrow's memory pool in the workers (system: malloc, trimmed by the nanny)",
    )
    parser.add_argument(
        "--placement",
        choices=("round-robin", "scheduler"),
        default="round-robin",
        help="training partitions: file i on worker i %% n, or wherever Dask puts them",
    )
    parser.add_argument("--sample-every", type=float, default=0.2)
    parser.add_argument("--generate-only", action="store_true")
    parser.add_argument("--json", type=Path, help="write the result here")
    args = parser.parse_args(argv)
    unknown = [s for s in args.steps if s not in STEPS]
    if unknown:
        parser.error(f"unknown steps {unknown}; known: {', '.join(STEPS)}")

    if args.arrow_pool == "system":
        os.environ["ARROW_DEFAULT_MEMORY_POOL"] = "system"
    load_start = load_average()
    runs = []
    for rows in args.rows:
        print(f"rows={rows:,}", file=sys.stderr)
        run = run_once(args, rows)
        runs.append(run)
        if not args.generate_only:
            print(
                f"  peak RSS MiB: client {run['peak_rss_client_mib']}, "
                f"worker max {run['peak_rss_worker_max_mib']}",
                file=sys.stderr,
            )
    command = " ".join(argv if argv is not None else sys.argv[1:])
    summary = {
        "benchmark": "dask_scale",
        "command": f".venv/bin/python benchmarks/dask_scale.py {command}".strip(),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": machine_info(),
        "load_start": load_start,
        "load_end": load_average(),
        "runs": runs,
    }
    text = json.dumps(summary, indent=1, default=str)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text)
        print(f"wrote {args.json}", file=sys.stderr)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
