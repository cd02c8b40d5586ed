"""The Dask executor: partitions run on Dask workers, results merge on the client.

Imported only when the spec's ``executor`` is ``dask-local`` or ``dask://HOST:PORT``
(the ``retrainer[dask]`` extra). ``dask-local`` starts a ``LocalCluster`` of worker
processes bound to loopback, one thread each, that do not spill to disk; ``dask://``
connects to a running scheduler. A pandas frame is split into contiguous partitions of
:data:`~retrainer.orchestrate.executors.DEFAULT_PARTITION_ROWS` rows; each file of a
:class:`~retrainer.data.parts.ParquetFiles` is read on a worker; a Dask
dataframe is used as it is. Only the functions' results travel back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import dask
import dask.dataframe as dd
import pandas as pd
from dask.delayed import delayed
from distributed import Client, KilledWorker, LocalCluster
from distributed.comm.core import CommClosedError

from retrainer.data.parts import ParquetFiles
from retrainer.errors import ExecutorError
from retrainer.orchestrate.executors import Data, partitions_for

if TYPE_CHECKING:
    from retrainer.train.trainers import Trainer

__all__ = ["DaskExecutor"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def _read(files: ParquetFiles) -> pd.DataFrame:
    return files.read(0)


_LOCAL_CONFIG = {
    "distributed.worker.daemon": False,
    # a LocalCluster we start does not spill to disk: LightGBM's Dask training keeps a
    # socket in worker memory, which cannot be pickled (docs/benchmarks.md, issue 8)
    "distributed.worker.memory.target": False,
    "distributed.worker.memory.spill": False,
}


class DaskExecutor:
    """Runs partitions on a Dask cluster (see the module docstring); data stays in parts
    on the workers (``keeps_parts``).

    Args:
        address: ``tcp://HOST:PORT`` of a scheduler, or None for a new LocalCluster.
        workers: Worker processes of a LocalCluster (None: Dask's default for this machine).
        memory_limit: Per-worker memory limit of a LocalCluster (Dask's syntax, e.g. "4GB").
        connect_timeout: How long to try reaching a scheduler (Dask's syntax, e.g. "10s").
    """

    def __init__(
        self,
        address: str | None,
        *,
        workers: int | None = None,
        memory_limit: str | None = None,
        connect_timeout: str = "10s",
    ) -> None:
        self.address = address
        self.keeps_parts = True
        self.name = "dask-local" if address is None else f"dask://{address.removeprefix('tcp://')}"
        self._workers = workers
        self._memory_limit = memory_limit
        self._timeout = connect_timeout
        self._cluster: LocalCluster | None = None
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        """The Dask client, connecting (or starting the LocalCluster) on first use.

        Raises:
            ExecutorError: the scheduler cannot be reached (the message names it).
        """
        if self._client is None:
            with dask.config.set(_LOCAL_CONFIG):
                if self.address is None:
                    options: dict[str, Any] = {
                        "processes": True,
                        "threads_per_worker": 1,
                        "host": "127.0.0.1",
                        "dashboard_address": "127.0.0.1:0",  # its HTTP routes: loopback
                    }
                    if self._workers is not None:
                        options["n_workers"] = self._workers
                    if self._memory_limit is not None:
                        options["memory_limit"] = self._memory_limit
                    self._cluster = LocalCluster(**options)
                    self._client = Client(self._cluster)
                else:
                    try:
                        self._client = Client(self.address, timeout=self._timeout)
                    except OSError as exc:
                        raise ExecutorError(
                            f"executor: cannot reach the Dask scheduler at {self.name}: {exc}"
                        ) from exc
        return self._client

    def _parts(self, data: Data) -> list[Any]:
        if isinstance(data, pd.DataFrame):
            n = partitions_for(len(data))
            data = dd.from_pandas(data, npartitions=n, sort=False)
        if isinstance(data, ParquetFiles):
            return [delayed(_read)(data.part(i)) for i in range(len(data.paths))]
        if isinstance(data, dd.DataFrame):
            return list(data.to_delayed())
        raise TypeError(
            f"the Dask executor takes a pandas or Dask frame or ParquetFiles, got {type(data)}"
        )

    def map_partitions(
        self, fn: Callable[..., T], data: Data, args: Sequence[Any] | None = None
    ) -> list[T]:
        parts = self._parts(data)
        if args is not None and len(args) != len(parts):
            raise ValueError(f"expected {len(parts)} partition arguments, got {len(args)}")
        tasks = [
            delayed(fn)(part) if args is None else delayed(fn)(part, args[i])
            for i, part in enumerate(parts)
        ]
        client = self.client
        try:
            return list(client.gather(client.compute(tasks)))
        except (KilledWorker, CommClosedError) as exc:  # the cluster, not the function
            raise ExecutorError(
                f"executor {self.name}: a task was lost with its worker ({exc}); the "
                "champion is untouched, run the cycle again once the cluster is healthy"
            ) from exc

    def partition_count(self, data: Data) -> int:
        return len(self._parts(data))

    def frame(self, data: Data) -> dd.DataFrame:
        """``data`` as a Dask dataframe (lazy; nothing is read)."""
        if isinstance(data, dd.DataFrame):
            return data
        if isinstance(data, pd.DataFrame):
            return dd.from_pandas(data, npartitions=partitions_for(len(data)), sort=False)
        if isinstance(data, ParquetFiles):
            return dd.from_delayed(self._parts(data))
        raise TypeError(f"cannot make a Dask dataframe of {type(data)}")

    def fit(self, trainer: Trainer, data: Data, *, seed: int) -> Any:
        from retrainer.train.distributed import fit_distributed

        fitted = fit_distributed(trainer, self.frame(data), self.client, seed=seed)
        if fitted is not None:
            return fitted
        log.info("%s trains on the client: only LightGBM and XGBoost train on Dask", self.name)
        return trainer.fit(self.materialize(data), seed=seed)

    def materialize(self, data: Data) -> pd.DataFrame:
        if isinstance(data, pd.DataFrame):
            return data
        frame: pd.DataFrame = self.frame(data).compute()
        return frame.reset_index(drop=True)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None
