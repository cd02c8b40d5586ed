"""How many OpenMP and BLAS threads a model call gets.

scikit-learn's histogram gradient boosting runs an OpenMP parallel region per
iteration and per prediction. On the small frames a cycle mostly handles (a batch, a
holdout, a few years of rows) the threads cost more than they give, and on a busy
machine their spinning waits starve everything else: the quickstart took 23.6 s with
the default threads and 20.9 s with one on an idle 2-core machine, and 89.7 s against
37.6 s next to two busy processes (benchmarks/openmp_wait.py, docs/benchmarks.md).
So calls on fewer than :data:`SMALL_ROWS` rows run on one thread; larger training
frames keep the library's default (a thread per core, or ``OMP_NUM_THREADS``).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

from threadpoolctl import threadpool_limits

__all__ = ["SMALL_ROWS", "model_threads"]

SMALL_ROWS = 20_000


def model_threads(rows: int | None = None) -> AbstractContextManager[Any]:
    """One thread for the calls inside, unless ``rows`` is at least :data:`SMALL_ROWS`."""
    if rows is not None and rows >= SMALL_ROWS:
        return nullcontext()
    limit: AbstractContextManager[Any] = threadpool_limits(limits=1)
    return limit
