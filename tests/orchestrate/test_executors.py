"""Executors: the local one and a Dask cluster compute the same profiles, samples, drift
reports and scores; bad executor values and unreachable schedulers are named."""

from __future__ import annotations

import itertools
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from retrainer.data.parts import ParquetFiles
from retrainer.data.snapshot import dataset_sha256
from retrainer.errors import DataSourceError, ExecutorError, SpecError
from retrainer.evaluate.partitioned import holdout_scores
from retrainer.monitor.drift import ReferenceProfile, drift_report
from retrainer.monitor.drift.partial import sample_rows
from retrainer.orchestrate.executors import Executor, LocalExecutor, build_executor
from retrainer.spec import parse_executor

pytestmark = pytest.mark.dask


@pytest.fixture
def dask_exec(dask_scheduler: str) -> Iterator[Executor]:
    executor = build_executor(dask_scheduler)
    yield executor
    executor.close()


def data(rows: int = 4000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    x[rng.choice(rows, rows // 50, replace=False)] = np.nan
    return pd.DataFrame(
        {
            "x": x,
            "z": rng.exponential(size=rows),
            "c": rng.choice(["p", "q", "r"], size=rows),
            "y": (rng.normal(size=rows) + np.nan_to_num(x) > 0).astype(int),
        }
    )


def parquet_parts(frame: pd.DataFrame, folder: Path, cuts: list[int]) -> ParquetFiles:
    bounds = [0, *cuts, len(frame)]
    paths = []
    for i, (a, b) in enumerate(itertools.pairwise(bounds)):
        path = folder / f"part-{i:03d}.parquet"
        frame.iloc[a:b].to_parquet(path)
        paths.append(str(path))
    return ParquetFiles(tuple(paths))


def test_profiles_are_byte_identical_on_dask_and_locally(
    dask_exec: Executor, tmp_path: Path
) -> None:
    frame = data()
    local = ReferenceProfile.build(
        frame, ["x", "z"], ["c"], seed=1, executor=LocalExecutor()
    ).to_bytes()
    lazy = dd.from_pandas(frame, npartitions=5, sort=False)
    files = parquet_parts(frame, tmp_path, [999, 1000, 3210])
    assert dask_exec.partition_count(lazy) == 5
    assert (
        ReferenceProfile.build(lazy, ["x", "z"], ["c"], seed=1, executor=dask_exec).to_bytes()
        == local
    )
    assert (
        ReferenceProfile.build(files, ["x", "z"], ["c"], seed=1, executor=dask_exec).to_bytes()
        == local
    )
    sampled = ReferenceProfile.build(
        frame, ["x", "z"], ["c"], seed=1, profile_rows=1500, executor=LocalExecutor()
    )
    on_dask = ReferenceProfile.build(
        files, ["x", "z"], ["c"], seed=1, profile_rows=1500, executor=dask_exec
    )
    assert on_dask.to_bytes() == sampled.to_bytes()


def test_drift_and_samples_are_identical_on_dask_and_locally(
    dask_exec: Executor, tmp_path: Path
) -> None:
    reference, current = data(), data(rows=3000, seed=7)
    current["z"] = current["z"] + 1.0
    files = parquet_parts(current, tmp_path, [1500])
    local_profile = ReferenceProfile.build(reference, ["x", "z"], ["c"], executor=LocalExecutor())
    dask_profile = ReferenceProfile.build(
        dd.from_pandas(reference, npartitions=3), ["x", "z"], ["c"], executor=dask_exec
    )
    local_batch = sample_rows(LocalExecutor(), current, 2000, seed=3)
    dask_batch = sample_rows(dask_exec, files, 2000, seed=3)
    pd.testing.assert_frame_equal(local_batch, dask_batch)
    local_report = drift_report(local_profile, local_batch).to_dict()
    assert drift_report(dask_profile, dask_batch).to_dict() == local_report
    assert "z" in local_report["drifted"]


def test_scores_come_back_in_row_order(dask_exec: Executor, tmp_path: Path) -> None:
    frame = data()
    model = LogisticRegression().fit(frame[["z"]], frame["y"])
    lazy = dd.from_pandas(frame, npartitions=4, sort=False)
    y, scores = holdout_scores(
        dask_exec, {"m": model}, lazy, features=["z"], target="y", metric="accuracy"
    )
    np.testing.assert_array_equal(scores["m"], model.predict(frame[["z"]]))
    files = parquet_parts(frame, tmp_path, [100, 2000])
    y, scores = holdout_scores(
        dask_exec, {"m": model}, files, features=["z"], target="y", metric="roc_auc"
    )
    np.testing.assert_array_equal(y, frame["y"].to_numpy())
    np.testing.assert_allclose(scores["m"], model.predict_proba(frame[["z"]])[:, 1], rtol=1e-12)


def test_materialize_and_partition_arguments(dask_exec: Executor, tmp_path: Path) -> None:
    frame = data(rows=500)
    files = parquet_parts(frame, tmp_path, [200])
    pd.testing.assert_frame_equal(dask_exec.materialize(files), frame)
    pd.testing.assert_frame_equal(LocalExecutor().materialize(files), frame)
    assert dask_exec.map_partitions(len, files) == [200, 300]
    with pytest.raises(ValueError, match="expected 2 partition arguments, got 1"):
        dask_exec.map_partitions(lambda part, arg: arg, files, [1])


def test_a_missing_parquet_file_is_named(tmp_path: Path) -> None:
    files = ParquetFiles((str(tmp_path / "gone.parquet"),))
    with pytest.raises(DataSourceError, match=r"gone\.parquet: cannot read Parquet"):
        LocalExecutor().map_partitions(len, files)


@pytest.mark.parametrize(
    "value", ["dask", "dask://", "dask://host", "dask://host:99999", "spark://h:1", "dask://h:1/x"]
)
def test_a_bad_executor_value_says_what_is_expected(value: str) -> None:
    with pytest.raises(ValueError, match="expected 'local', 'dask-local' or 'dask://HOST:PORT'"):
        parse_executor(value)
    with pytest.raises(SpecError, match="executor:"):
        build_executor(value)


def test_an_unreachable_scheduler_is_an_executor_error_naming_it() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    executor = build_executor(f"dask://127.0.0.1:{port}", connect_timeout="1s")
    with pytest.raises(ExecutorError, match=f"127.0.0.1:{port}"):
        executor.map_partitions(len, pd.DataFrame({"a": [1]}))


def test_dask_local_starts_its_own_cluster_and_closes_it() -> None:
    executor = build_executor("dask-local", workers=1)
    try:
        assert executor.name == "dask-local"
        assert executor.map_partitions(len, data(rows=10)) == [10]
    finally:
        executor.close()


def test_a_dataset_hashes_the_same_on_dask_and_locally(dask_exec: Executor, tmp_path: Path) -> None:
    frame = data(rows=900)
    files = parquet_parts(frame, tmp_path, [300, 301])
    assert dataset_sha256(dask_exec, files) == dataset_sha256(LocalExecutor(), files)


def _die(frame: pd.DataFrame) -> int:
    os._exit(3)  # the worker process dies mid-task


def test_a_task_lost_with_its_worker_is_an_executor_error() -> None:
    executor = build_executor("dask-local", workers=1)  # imports distributed: its config
    try:
        with (
            dask.config.set({"distributed.scheduler.allowed-failures": 0}),
            pytest.raises(ExecutorError, match="a task was lost with its worker"),
        ):
            executor.map_partitions(_die, data(rows=10))
    finally:
        executor.close()


def test_an_error_in_the_function_is_the_function_s_error(dask_exec: Executor) -> None:
    frame = data(rows=10).assign(x="not a number")
    with pytest.raises(DataSourceError, match="'x' should be numeric"):
        ReferenceProfile.build(frame, ["x"], [], executor=dask_exec)
