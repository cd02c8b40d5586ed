"""Executors: where the data-heavy work of a cycle runs.

``executor:`` in the spec picks one:

* ``local`` (the default): in this process. Dask is never imported.
* ``dask-local``: a Dask ``LocalCluster`` on this machine (worker processes on loopback,
  one thread each), started on first use and closed with the workspace.
* ``dask://HOST:PORT``: an existing Dask scheduler.

An executor maps a pure function over the *partitions* of a dataset and returns the
results in partition order; the stages build their statistics from such maps and merge
the partial results on the client (:mod:`retrainer.monitor.drift.partial`,
:mod:`retrainer.evaluate.partitioned`). Every merge is exact and independent of how
the rows are split, so the local and the Dask executor compute the same numbers, bit
for bit. A dataset is a pandas frame, a :class:`ParquetFiles` list (read lazily, one
file at a time on the local executor, one task a file on Dask) or, on Dask, a
Dask dataframe.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import pandas as pd

from retrainer.data.parts import ParquetFiles
from retrainer.errors import SpecError
from retrainer.spec import parse_executor

if TYPE_CHECKING:
    from retrainer.train.trainers import Trainer

__all__ = [
    "DEFAULT_PARTITION_ROWS",
    "Executor",
    "LocalExecutor",
    "build_executor",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_PARTITION_ROWS = 250_000
"""Rows per partition when a pandas frame is handed to the Dask executor."""


Data = Any
"""A pandas frame, :class:`ParquetFiles`, or (Dask executor) a Dask dataframe."""


class Executor(Protocol):
    """Runs functions over the partitions of a dataset."""

    name: str
    keeps_parts: bool
    """Whether data stays in parts where it is (a cluster): a cycle then keeps its
    window as snapshots in parts instead of gathering it into one frame."""

    def map_partitions(
        self, fn: Callable[..., T], data: Data, args: Sequence[Any] | None = None
    ) -> list[T]:
        """``fn(partition)``, or ``fn(partition, args[i])`` for partition ``i``, for each
        partition of ``data``, in partition order.

        ``fn`` must be a pure, picklable (module-level) function; on Dask it runs on
        the workers and only its results come back to this process. ``args`` must have
        one item per partition (:meth:`partition_count`).
        """
        ...

    def partition_count(self, data: Data) -> int:
        """How many partitions ``data`` has here."""
        ...

    def fit(self, trainer: Trainer, data: Data, *, seed: int) -> Any:
        """Train ``trainer`` on ``data`` and return the fitted (local) model."""
        ...

    def materialize(self, data: Data) -> pd.DataFrame:
        """The whole dataset as one pandas frame in this process."""
        ...

    def close(self) -> None:
        """Release the cluster or client, if any."""
        ...


class LocalExecutor:
    """Runs everything in this process; a pandas frame is one partition."""

    name = "local"
    keeps_parts = False

    def map_partitions(
        self, fn: Callable[..., T], data: Data, args: Sequence[Any] | None = None
    ) -> list[T]:
        count = self.partition_count(data)
        if args is not None and len(args) != count:
            raise ValueError(f"expected {count} partition arguments, got {len(args)}")
        out: list[T] = []
        for i in range(count):
            part = data if isinstance(data, pd.DataFrame) else data.read(i)
            out.append(fn(part) if args is None else fn(part, args[i]))
        return out

    def partition_count(self, data: Data) -> int:
        if isinstance(data, pd.DataFrame):
            return 1
        if isinstance(data, ParquetFiles):
            return len(data.paths)
        raise TypeError(
            f"the local executor takes a pandas frame or ParquetFiles, got {type(data)}"
        )

    def fit(self, trainer: Trainer, data: Data, *, seed: int) -> Any:
        return trainer.fit(self.materialize(data), seed=seed)

    def materialize(self, data: Data) -> pd.DataFrame:
        if isinstance(data, pd.DataFrame):
            return data
        parts = self.map_partitions(_identity, data)
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    def close(self) -> None:
        return None


def _identity(frame: pd.DataFrame) -> pd.DataFrame:
    return frame


def build_executor(
    value: str, *, workers: int | None = None, connect_timeout: str = "10s"
) -> Executor:
    """The executor ``value`` (the spec's ``executor``) names; ``workers`` sizes a
    ``dask-local`` cluster, ``connect_timeout`` bounds reaching a ``dask://`` scheduler.

    Raises:
        SpecError: the value is malformed, or Dask is not installed (with the fix).
    """
    try:
        kind, address = parse_executor(value)
    except ValueError as exc:
        raise SpecError(f"executor: {exc}") from exc
    if kind == "local":
        return LocalExecutor()
    try:
        from retrainer.orchestrate.dask_executor import DaskExecutor
    except ImportError as exc:
        raise SpecError(
            f"executor: {value!r} needs Dask, which is not installed ({exc}); "
            "install it with: pip install 'retrainer[dask]'"
        ) from exc
    return DaskExecutor(address, workers=workers, connect_timeout=connect_timeout)


def partitions_for(rows: int, partition_rows: int = DEFAULT_PARTITION_ROWS) -> int:
    """How many partitions a frame of ``rows`` rows is split into on Dask."""
    return max(1, math.ceil(rows / partition_rows))
