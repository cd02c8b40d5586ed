"""Shared fixtures: an isolated HOME, and a migrated store on SQLite and on PostgreSQL.

PostgreSQL tests use the server named by RETRAINER_TEST_PG_URL (default: the local
``test`` database as ``postgres``), each in a fresh schema dropped afterwards. They are
skipped, with the reason, only when no server answers.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from retrainer.registry.db import Database, build_engine
from retrainer.registry.migrate import migrate

# Two xdist workers share two cores. OpenMP (scikit-learn's histogram gradient boosting)
# would start a thread per core in each worker and in every CLI subprocess, and its
# spinning threads then fight for the cores: a quickstart took 86 s instead of 22 s under
# one core of other load. One thread each; set before anything loads OpenMP, and
# inherited by the subprocesses the tests start.
os.environ.setdefault("OMP_NUM_THREADS", "1")

PG_URL = os.environ.get(
    "RETRAINER_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
_pg_state: dict[str, str | None] = {}


def pg_unavailable() -> str | None:
    """None when PostgreSQL answers, else why not (checked once per session)."""
    if "reason" not in _pg_state:
        try:
            engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            engine.dispose()
            _pg_state["reason"] = None
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
            _pg_state["reason"] = f"PostgreSQL not reachable at {PG_URL}: {exc}"
    return _pg_state["reason"]


@pytest.fixture(autouse=True)
def _isolated_env(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("MPLCONFIGDIR", str(home / ".mpl"))
    monkeypatch.setenv("RETRAINER_ACTOR", "tester")
    monkeypatch.delenv("RETRAINER_WORKSPACE", raising=False)
    monkeypatch.delenv("RETRAINER_TOKEN", raising=False)


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A URL whose connections use a fresh PostgreSQL schema (dropped afterwards)."""
    reason = pg_unavailable()
    if reason:
        pytest.skip(reason)
    schema = f"rt_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same tests on SQLite (a file in tmp_path) and on PostgreSQL (a fresh schema)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url: str = request.getfixturevalue("pg_schema_url")
    return url


@pytest.fixture
def db(store_url: str, tmp_path: Path) -> Iterator[Database]:
    """A migrated store."""
    database = Database(build_engine(store_url, base_dir=tmp_path))
    migrate(database)
    yield database
    database.dispose()


# -- a small synthetic workspace for cycle, CLI and fault tests ----------------------------

SYNTHETIC_SPEC = """\
model:
  name: toy
  task: classification
  target: y
  features:
    numeric: [x1, x2]
    categorical: [color]
data:
  source: data/batches
  time_column: ts
  window: {{rows: 2000}}
  holdout: {{fraction: 0.25, by: time}}
contract:
  min_rows: 50
triggers:
  - performance: {{below: 0.7, min_rows: 50}}
  - data_volume: {{rows: 600}}
  - manual: {{}}
train:
  estimator: sklearn.linear_model.LogisticRegression
  params: {{max_iter: 200}}
  seed: 3
evaluate:
  metric: roc_auc
  non_inferiority_margin: 0.02
  bootstrap_resamples: 200
approval:
  mode: {approval}
store: {store}
"""


def synthetic_batch(seed: int, rows: int, *, start_day: int, flipped: bool = False) -> pd.DataFrame:
    """Rows whose label depends on x1 (or, once ``flipped``, on -x1): a concept change."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=rows)
    x2 = rng.normal(size=rows)
    color = rng.choice(["red", "green", "blue"], size=rows)
    signal = (-x1 if flipped else x1) + 0.3 * x2
    y = (signal + rng.normal(scale=0.5, size=rows) > 0).astype(int)
    ts = pd.Timestamp("2024-01-01") + pd.to_timedelta(start_day + np.arange(rows) / rows, unit="D")
    return pd.DataFrame({"ts": ts, "x1": x1, "x2": x2, "color": color, "y": y})


@pytest.fixture
def make_workspace(tmp_path: Path) -> Callable[..., Path]:
    """Create a workspace folder:
    ``make_workspace(approval="auto", store=None, executor="local") -> Path``.

    The spec is SYNTHETIC_SPEC; the store defaults to SQLite inside the workspace.
    Write batches with ``add_batch(ws_dir, name, frame)``.
    """

    def make(
        *,
        approval: str = "auto",
        store: str | None = None,
        name: str = "ws",
        executor: str = "local",
    ) -> Path:
        root = tmp_path / name
        (root / "data" / "batches").mkdir(parents=True)
        store_url = store or "sqlite:///.retrainer/retrainer.db"
        spec = SYNTHETIC_SPEC.format(approval=approval, store=store_url)
        spec += f"executor: {executor}\n"
        (root / "retrainer.yaml").write_text(spec)
        return root

    return make


@pytest.fixture(scope="session")
def dask_scheduler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``dask://127.0.0.1:PORT`` of a LocalCluster (2 worker processes, one thread each,
    spill files in a temporary folder), shared by this test process's Dask tests."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        local_directory=str(tmp_path_factory.mktemp("dask")),
    ) as cluster:
        yield "dask://" + str(cluster.scheduler_address).removeprefix("tcp://")


def add_batch(root: Path, name: str, frame: pd.DataFrame) -> Path:
    """Write a batch file into the workspace's source folder (atomically)."""
    from retrainer.quickstart import write_batch

    return write_batch(root / "data" / "batches", name, frame)
