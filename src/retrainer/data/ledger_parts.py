"""Snapshots kept in parts: a mixin of :class:`~retrainer.data.ledger.Ledger`.

A training window chosen on a Dask executor is never gathered: its train and holdout
snapshots are manifests naming the accepted batches' snapshot blobs and a packed mask of
the rows each keeps (:mod:`retrainer.data.parts`), recorded like any snapshot with the
partitioned content hash (:func:`~retrainer.data.snapshot.partitioned_sha256`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from retrainer.data.parts import ParquetFiles, manifest_bytes, read_manifest
from retrainer.data.snapshot import SnapshotInfo
from retrainer.errors import DataSourceError
from retrainer.registry.artifacts import ArtifactStore

if TYPE_CHECKING:
    from retrainer.data.ledger import SnapshotRecord

__all__ = ["SnapshotParts"]


class SnapshotParts:
    """Reading and recording snapshots in parts (see the module docstring)."""

    artifacts: ArtifactStore
    _record: Callable[[str, str, str, SnapshotInfo, Callable[[], str]], SnapshotRecord]
    """The ledger's: the existing record of these rows, or store the blob and record it."""

    def files(self, snapshots: Sequence[SnapshotRecord]) -> ParquetFiles:
        """Whole-frame snapshots as one dataset in parts, read lazily (each blob's
        sha256 checked as it is read)."""
        shas = [s.artifact_sha256 for s in snapshots]
        return ParquetFiles(tuple(self.artifacts.uri_of(h) for h in shas), sha256=tuple(shas))

    def parts(self, snapshot: SnapshotRecord) -> ParquetFiles | None:
        """The parts of a snapshot kept in parts (:meth:`snapshot_parts`), else None."""
        data = self.artifacts.get(snapshot.artifact_sha256, what=f"snapshot {snapshot.id}")
        return self._manifest(data, snapshot)

    def snapshot_parts(
        self, model: str, kind: str, source_uri: str, files: ParquetFiles, info: SnapshotInfo
    ) -> SnapshotRecord:
        """Record rows kept in parts (masked whole-frame snapshots, see :meth:`files`)
        without gathering them: a small manifest names each part's blob and row mask;
        ``info`` is :func:`~retrainer.data.snapshot.describe_parts` of ``files``."""
        blob = manifest_bytes(files)
        return self._record(model, kind, source_uri, info, lambda: self.artifacts.put(blob))

    def _manifest(self, data: bytes, snapshot: SnapshotRecord) -> ParquetFiles | None:
        try:
            return read_manifest(data, self.artifacts.uri_of)
        except ValueError as exc:
            raise DataSourceError(f"snapshot {snapshot.id}: not a valid manifest: {exc}") from exc
