"""A retraining cycle on a 2-worker Dask LocalCluster at up to 20M rows (issue 8).

A seeded synthetic dataset (N rows x 30 columns: 25 float32 features, 3 string
categoricals, a timestamp, an int8 label) is written as Parquet files of 1,000,000 rows,
one chunk at a time, with a "current" dataset of ``--current-share`` of the rows in
which five columns are shifted (:data:`SHIFTS`). Then, on a ``LocalCluster`` (worker
processes on loopback, one thread each, ``--memory-limit`` per worker), the steps of a
cycle (:data:`STEPS`) run one after the other and each is timed:

* ``profile``: ``ReferenceProfile.build`` (on the executor) of the reference files (project API);
* ``drift``: ``sample_rows`` of the current files, ``drift_report`` against the profile;
* ``train``: LightGBM on the reference files. ``--trainer project`` (default): the
  product's path, ``executor.fit`` of a ``lightgbm.LGBMClassifier`` trainer
  (``retrainer.train.distributed``; the result records the fitted pipeline's steps,
  features and trees, so what was measured is on file whatever the encoding).
  ``--trainer direct``: ``lightgbm.DaskLGBMClassifier`` on ``dask.dataframe.read_parquet``
  partitions, one per file, the categoricals as codes of their reference levels, all 28
  features float32, partition ``i`` persisted on worker ``i % 2``;
* ``evaluate``: ROC AUC on the current files through ``holdout_scores``.

A step whose project function is missing is reported as skipped, with the reason; one
that runs longer than ``--step-timeout`` seconds is reported as failed and the run stops.

Memory: a thread samples the resident set (psutil, every ``--sample-every`` s) of the
client process (which also runs the scheduler and the nannies), of each worker process
(pids from ``client.run(os.getpid)``) and of other children, and reports the peak per
process for the run, per step and for the train step's read and fit phases. The
cluster and its memory settings are :mod:`scale_cluster`'s (workers neither spill nor
pause, pyarrow on the system allocator); LightGBM histograms are column-wise. If the
nanny kills a worker (95 % of its limit), the step fails at once rather than waiting
for LightGBM, which never returns, and the run stops. Each ``--rows`` size runs on a
new cluster, but the client process is the same: for a clean client peak per size, run
one size per invocation.

    .venv/bin/python benchmarks/dask_scale.py --rows 20M --json OUT.json  # ~6 min
    .venv/bin/python benchmarks/dask_scale.py --rows 2M 5M 10M 20M --json OUT.json
    .venv/bin/python benchmarks/dask_scale.py --rows 2M --trainer direct --steps train
    .venv/bin/python benchmarks/dask_scale.py --rows 20M --generate-only

Data goes to ``--data-dir`` (default /work/bench-data), one folder per dataset
(``reference-<rows>-s<seed>``, ``current-<rows>-s<seed>``) with a ``manifest.json``; a
folder whose manifest has the same rows, seed and generator version is reused. The
result (settings, machine, load, per-step figures) is JSON, to ``--json`` or stdout;
``benchmarks/scale_report.py`` turns results into tables. The local-against-Dask
comparison is ``benchmarks/dask_vs_local.py``.
"""

from __future__ import annotations

import _thread
import argparse
import json
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cloudpickle
import scale_data
import scale_direct
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
from scale_data import (
    CATEGORICAL,
    FEATURES,
    NUMERIC,
    SHIFTS,
    TARGET,
    Dataset,
    datasets,
)
from scale_direct import direct_model, train_direct

cloudpickle.register_pickle_by_value(scale_data)  # workers need not import them
cloudpickle.register_pickle_by_value(scale_direct)

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
        ctx.executor = build_executor(scheduler_uri(ctx.client))
    return ctx.executor


def parquet_files(dataset: Dataset) -> Any:
    (files,) = _project("retrainer.data.parts", "ParquetFiles")
    return files(paths=dataset.paths)


def profile_rows(args: argparse.Namespace) -> int | None:
    """The ``profile_rows`` the profile uses: ``--profile-rows`` or its default."""
    if args.profile_rows is not None:
        return int(args.profile_rows)
    try:
        from retrainer.monitor.drift.partial import PROFILE_ROWS
    except ImportError:
        return None
    return int(PROFILE_ROWS)


def step_profile(ctx: Context) -> dict[str, Any]:
    """Reference profile of the reference files, built on the workers."""
    (profile_cls,) = _project("retrainer.monitor.drift.profile", "ReferenceProfile")
    executor = project_executor(ctx)
    options = {} if ctx.args.profile_rows is None else {"profile_rows": ctx.args.profile_rows}
    profile = profile_cls.build(
        parquet_files(ctx.reference),
        NUMERIC,
        CATEGORICAL,
        seed=ctx.args.seed,
        executor=executor,
        **options,
    )
    ctx.results["profile"] = profile
    return {
        "profile_rows": profile_rows(ctx.args),
        "profile_bytes": len(profile.to_bytes()) if hasattr(profile, "to_bytes") else None,
    }


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
    """LightGBM on the reference files: the project's ``executor.fit`` or, with
    ``--trainer direct``, lightgbm.DaskLGBMClassifier (:mod:`scale_direct`)."""
    if ctx.args.trainer == "direct":
        return train_direct(ctx, lightgbm_params(ctx.args))
    return train_with_executor(ctx)


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
    data = parquet_files(ctx.reference)
    pipeline = executor.fit(trainer, data, seed=ctx.args.seed)
    ctx.results["pipeline"] = pipeline
    return {
        "trainer": "project executor.fit",
        "settings": {**params, "random_state": ctx.args.seed},
        **fitted_model(pipeline),
    }


def fitted_model(pipeline: Any) -> dict[str, Any]:
    """What the project's fit returned: its steps, the booster's features (those it treats
    as categorical: LightGBM lists their levels under ``values``) and trees."""
    steps = getattr(pipeline, "steps", None) or [("model", pipeline)]
    out: dict[str, Any] = {"pipeline": [f"{n}: {type(s).__name__}" for n, s in steps]}
    booster = getattr(steps[-1][1], "booster_", None)
    if booster is not None:
        infos = booster.dump_model(num_iteration=1)["feature_infos"]
        out.update(
            booster_features=booster.num_feature(),
            categorical_in_booster=[n for n, i in infos.items() if i.get("values")],
            trees=booster.num_trees(),
        )
    return out


def step_evaluate(ctx: Context) -> dict[str, Any]:
    """ROC AUC of the trained model on the current files, scored on the workers."""
    (holdout_scores,) = _project("retrainer.evaluate.partitioned", "holdout_scores")
    (score,) = _project("retrainer.evaluate.metrics", "score")
    if "model" not in ctx.results and "pipeline" not in ctx.results:
        raise Skipped("no model (the train step did not run)")
    model = ctx.results.get("pipeline")
    if model is None:
        model = direct_model(ctx)
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


class StepTimeout:
    """Interrupts the main thread when a step outlives ``seconds`` (None: never)."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.fired = False
        self._timer: threading.Timer | None = None

    def start(self) -> None:
        self.cancel()
        self.fired = False
        if self.seconds is not None:
            self._timer = threading.Timer(self.seconds, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self.fired = True
        _thread.interrupt_main()


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
        timeout = StepTimeout(args.step_timeout)
        for name in args.steps:
            sampler.step(name)
            t0 = time.perf_counter()
            entry: dict[str, Any]
            timeout.start()
            try:
                entry = {"status": "ok", **STEPS[name](ctx)}
            except Skipped as exc:
                entry = {"status": "skipped", "reason": str(exc)}
            except Exception as exc:  # noqa: BLE001 - a failed step is a finding to report
                entry = {"status": "failed", "error": repr(exc), "trace": traceback.format_exc()}
            except KeyboardInterrupt:
                if sampler.lost:
                    entry = {"status": "failed", "error": f"worker process lost: {sampler.lost}"}
                elif timeout.fired:
                    entry = {"status": "failed", "error": f"over {args.step_timeout} s: stopped"}
                else:
                    raise
            finally:
                timeout.cancel()
            entry["wall_s"] = time.perf_counter() - t0
            now = worker_roles(client)
            if set(now) != set(roles):
                entry["workers_replaced"] = {"before": roles, "after": now}
                roles = now
                sampler.set_roles(roles)
            steps[name] = entry
            print(f"  {name:<9} {entry['status']:<8} {entry['wall_s']:8.1f} s", file=sys.stderr)
            if sampler.lost or timeout.fired:
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
    whole: dict[str, dict[str, int]] = {}  # a step's peaks, its phases' included
    for name, peaks in sampler.step_peaks.items():
        step, _, phase = name.partition(":")
        if step in steps:
            if phase:
                steps[step][f"peak_rss_mib_{phase}"] = {k: mib(v) for k, v in sorted(peaks.items())}
            tally = whole.setdefault(step, {})
            for label, rss in peaks.items():
                tally[label] = max(tally.get(label, 0), rss)
    for step, tally in whole.items():
        steps[step]["peak_rss_mib"] = {k: mib(v) for k, v in sorted(tally.items())}
    workers = [v for k, v in sampler.peaks.items() if k.startswith("worker-")]
    result.update(
        steps=steps,
        peak_rss_mib={k: mib(v) for k, v in sorted(sampler.peaks.items())},
        peak_rss_client_mib=mib(sampler.peaks.get("client")),
        peak_rss_worker_max_mib=mib(max(workers)) if workers else None,
        rss_samples=sampler.samples,
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", type=parse_rows, nargs="+", default=[20_000_000], help="e.g. 2M 20M"
    )
    add_options(parser)
    parser.add_argument("--steps", type=lambda s: s.split(","), default=list(STEPS))
    parser.add_argument("--drift-rows", type=int, default=200_000)
    parser.add_argument(
        "--profile-rows", type=int, help="ReferenceProfile.build's profile_rows (default: its own)"
    )
    parser.add_argument("--n-estimators", type=int, default=50)
    parser.add_argument("--num-leaves", type=int, default=63)
    parser.add_argument("--max-bin", type=int, default=255)
    parser.add_argument(
        "--trainer",
        choices=("project", "direct"),
        default="project",
        help="project: the product's executor.fit; direct: DaskLGBMClassifier on float32 codes",
    )
    parser.add_argument("--categoricals", choices=("codes", "drop"), default="codes")
    parser.add_argument("--train-input", choices=("array", "frame"), default="array")
    parser.add_argument("--force-col-wise", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--placement",
        choices=("round-robin", "scheduler"),
        default="round-robin",
        help="training partitions: file i on worker i %% n, or wherever Dask puts them",
    )
    parser.add_argument(
        "--step-timeout", type=float, help="fail a step (and stop) after this many seconds"
    )
    parser.add_argument("--generate-only", action="store_true")
    args = parser.parse_args(argv)
    unknown = [s for s in args.steps if s not in STEPS]
    if unknown:
        parser.error(f"unknown steps {unknown}; known: {', '.join(STEPS)}")

    apply_arrow_pool(args)
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
        "cluster": {"options": cluster_options(args), "dask_config": memory_config(args)},
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
