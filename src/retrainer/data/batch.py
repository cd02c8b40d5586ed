"""What a data source yields: :class:`BatchRef`, and the :class:`Source` protocol.

Kept apart from the backends (:mod:`retrainer.data.folder`, :mod:`retrainer.data.sql`)
and the URI registry (:mod:`retrainer.data.sources`) so that they can all import it
without importing each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import pandas as pd

__all__ = ["BatchRef", "Source"]


@dataclass(frozen=True)
class BatchRef:
    """One batch of new data, as discovered by a source.

    Attributes:
        source_uri: The URI of the source (passwords masked), for lineage.
        key: Folder sources: the file path relative to the folder (posix).
            SQL sources: the condition that selects the rows, e.g. ``"date > 2020-01-01"``.
        fingerprint: Folder sources: sha256 of the file bytes. SQL sources: ``None``.
    """

    source_uri: str
    key: str
    fingerprint: str | None


class Source(Protocol):
    """Where batches come from.

    Implementations hold no ingestion state: the watermark is passed in and out as a
    JSON-serialisable dict. ``discover`` and ``read`` have no side effects on the data
    or the watermark; both raise :class:`DataSourceError` when the source cannot be read.
    """

    uri: str

    def discover(self, watermark: Mapping[str, Any] | None) -> list[BatchRef]:
        """New batches since the watermark, oldest first. Does not mutate anything."""
        ...

    def read(self, ref: BatchRef) -> pd.DataFrame:
        """The rows of ``ref``, exactly as stored (no value is silently coerced)."""
        ...

    def advance(
        self, watermark: Mapping[str, Any] | None, ref: BatchRef, frame: pd.DataFrame
    ) -> dict[str, Any]:
        """The JSON-serialisable watermark after `ref` was ingested (pure function)."""
        ...
