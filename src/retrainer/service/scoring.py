"""Calling a loaded model on checked input, as cheaply as the model allows.

A :class:`Scorer` answers with the pipeline on the request's frame. For the pipeline
retrainer's own trainer builds (a ``ColumnTransformer`` that passes the numeric
features through and one-hot encodes the categorical ones, then the estimator) it can
skip pandas: it stacks the request's arrays, encodes the categories with the fitted
encoder and calls the final estimator, which is what the pipeline does, minus the frame
indexing that costs more than the model on one row. That path is taken only when the
loader has checked, on probe rows, that it gives exactly the pipeline's numbers.

OpenMP-parallel models (HistGradientBoosting) spin up one thread per core for every
call; on a server that answers many small requests at once that costs more than it
gives, so :class:`ThreadLimit` caps their threads per call (``model_threads``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from retrainer.monitor.predictions import label_text
from retrainer.service.schema import FeatureSchema, ParsedInput

__all__ = ["Scorer", "ThreadLimit"]

logger = logging.getLogger(__name__)

ToArray = Callable[[ParsedInput], np.ndarray]


class ThreadLimit:
    """``with limit():`` caps the OpenMP threads of model calls made in this thread.

    OpenMP's thread count is a per-thread setting, so it is set once in each thread
    that scores (the server's worker threads are reused) and left there: no cost per
    call after the first. ``threads=None`` leaves the library's default.
    """

    def __init__(self, threads: int | None) -> None:
        self.threads = threads
        self._controller: Any = None
        self._local = threading.local()
        if threads is not None:
            from threadpoolctl import ThreadpoolController

            self._controller = ThreadpoolController()

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        if self._controller is not None and not getattr(self._local, "done", False):
            self._controller.limit(limits=self.threads, user_api="openmp")
            self._local.done = True
        yield


def _numeric(parsed: ParsedInput) -> np.ndarray:
    return parsed.numeric


def _encoded(encoder: Any) -> ToArray:
    names = getattr(encoder, "feature_names_in_", None)

    def encode(parsed: ParsedInput) -> np.ndarray:
        values: Any = parsed.categorical
        if names is not None:  # fitted on a frame: it wants the column names back
            import pandas as pd

            values = pd.DataFrame(values, columns=list(names))
        return np.asarray(encoder.transform(values))

    return encode


def _direct_inputs(estimator: Any, schema: FeatureSchema) -> tuple[Any, ToArray] | None:
    """(final estimator, arrays -> its input) for the trainer's standard pipeline, else None."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

    if not isinstance(estimator, Pipeline) or len(estimator.steps) != 2:
        return None
    transformer, final = estimator.steps[0][1], estimator.steps[1][1]
    if not isinstance(transformer, ColumnTransformer) or hasattr(final, "feature_names_in_"):
        return None
    parts: list[Callable[[ParsedInput], np.ndarray]] = []
    for name, step, columns in transformer.transformers_:
        columns = list(columns) if not isinstance(columns, str) else [columns]
        if name == "remainder" and (step == "drop" or not columns):
            continue
        identity = step == "passthrough" or (  # fitted, "passthrough" becomes this
            isinstance(step, FunctionTransformer) and step.func is None
        )
        if identity and columns == list(schema.numeric):
            parts.append(_numeric)
        elif (
            isinstance(step, OneHotEncoder)
            and columns == list(schema.categorical)
            and not step.sparse_output
        ):
            parts.append(_encoded(step))
        else:
            return None
    if not parts:
        return None
    if len(parts) == 1:
        return final, parts[0]
    return final, lambda p: np.hstack([part(p) for part in parts])


class Scorer:
    """Predicts with one loaded model version; ``score`` gives one result dict per row.

    Classifiers: ``label``, ``probabilities`` by class (as text) and, for two classes,
    ``score`` (the second class's probability). Regressors: ``score``.
    """

    def __init__(self, estimator: Any, task: str, classes: tuple[Any, ...] = ()) -> None:
        self.estimator = estimator
        self.task = task
        self.names = [label_text(c) for c in classes]
        self._direct: tuple[Any, ToArray] | None = None

    @property
    def direct(self) -> bool:
        """Whether the array path is in use."""
        return self._direct is not None

    def enable_direct(self, schema: FeatureSchema, probe: ParsedInput) -> bool:
        """Use the array path if the model allows it and it matches the pipeline on ``probe``."""
        found = _direct_inputs(self.estimator, schema)
        if found is None:
            return False
        self._direct = None
        expected = self._raw(probe)
        self._direct = found
        try:
            same = np.array_equal(self._raw(probe), expected)
        except Exception:
            logger.debug("array path failed on the probe rows", exc_info=True)
            same = False
        if not same:
            self._direct = None
        return same

    def _raw(self, parsed: ParsedInput) -> np.ndarray:
        if self._direct is not None:
            model, to_array = self._direct
            x: Any = to_array(parsed)
        else:
            model, x = self.estimator, parsed.frame
        if self.task == "classification":
            return np.asarray(model.predict_proba(x), dtype=float)
        return np.asarray(model.predict(x), dtype=float).reshape(-1)

    def score(self, parsed: ParsedInput) -> list[dict[str, Any]]:
        """One result per row (see the class docstring)."""
        raw = self._raw(parsed)
        if self.task != "classification":
            return [{"score": float(v)} for v in raw]
        names = self.names
        best = raw.argmax(axis=1)
        out = []
        for i, row in enumerate(raw.tolist()):
            result: dict[str, Any] = {
                "label": names[best[i]],
                "probabilities": dict(zip(names, row, strict=True)),
            }
            if len(names) == 2:
                result["score"] = row[1]
            out.append(result)
        return out
