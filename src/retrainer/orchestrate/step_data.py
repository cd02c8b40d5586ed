"""How the steps of a run reach their data: frames here, or parts on the executor.

A mixin of :class:`~retrainer.orchestrate.steps.Steps`. On the local executor a
snapshot is a pandas frame, loaded once per run. On any other executor the training
window stays in parts (:mod:`retrainer.train.partitioned`): the train and holdout
snapshots are manifests of masked batch blobs, read where the executor runs; the
client only gathers a holdout sample to judge (``evaluate.max_holdout_rows``), a sample
for the leakage checks, and the statistics that merge (profiles, null shares).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from retrainer.data.ledger import BatchRecord, SnapshotRecord
from retrainer.data.parts import ParquetFiles
from retrainer.data.rules import merge_null_counts, null_counts, null_shares
from retrainer.data.snapshot import describe_parts
from retrainer.monitor.drift.partial import sample_rows
from retrainer.train.partitioned import partitioned_sets

if TYPE_CHECKING:
    from retrainer.spec import PipelineSpec
    from retrainer.workspace import Workspace

__all__ = ["StepData"]


class StepData:
    """Snapshot access for the steps (see the module docstring)."""

    ws: Workspace
    spec: PipelineSpec
    model: str
    _frames: dict[int, pd.DataFrame]
    _parts: dict[int, ParquetFiles | None]

    def _frame(self, snapshot_id: int) -> pd.DataFrame:
        """A snapshot's rows as a frame, kept for the rest of the run (see
        :meth:`_remember`)."""
        if snapshot_id in self._frames:
            return self._frames[snapshot_id]
        frame = self.ws.ledger.load_frame(self.ws.ledger.get_snapshot(snapshot_id))
        self._remember(snapshot_id, frame)
        return frame

    def _remember(self, snapshot_id: int, frame: pd.DataFrame) -> None:
        """Keep a frame for the run's later steps: on the local executor (the window is
        gathered anyway); not when data stays in parts, where the batches of one run
        could together outgrow the client (each is read again when needed)."""
        if not self._in_parts:
            self._frames[snapshot_id] = frame

    @property
    def _in_parts(self) -> bool:
        """Whether windows stay in parts on the executor (a cluster's, not local)."""
        return self.ws.executor.keeps_parts

    def _dataset(self, snapshot_id: int) -> pd.DataFrame | ParquetFiles:
        """A snapshot's rows: in parts when it was stored in parts and the executor is
        not local (never gathered here), else as a frame."""
        if self._in_parts and snapshot_id not in self._frames:
            if snapshot_id not in self._parts:
                self._parts[snapshot_id] = self.ws.ledger.parts(
                    self.ws.ledger.get_snapshot(snapshot_id)
                )
            files = self._parts[snapshot_id]
            if files is not None:
                return files
        return self._frame(snapshot_id)

    def _judged(self, snapshot_id: int) -> pd.DataFrame:
        """A holdout as a frame here: whole, or from parts a uniform sample of about
        ``evaluate.max_holdout_rows`` rows; in time order (stable), as the local path
        holds it, so that its bootstrap draws the same rows."""
        data = self._dataset(snapshot_id)
        if isinstance(data, pd.DataFrame):
            return data
        if snapshot_id not in self._frames:
            cap, seed = self.spec.evaluate.max_holdout_rows, self.spec.train.seed
            frame = sample_rows(self.ws.executor, data, cap, seed=seed)
            tcol = self.spec.data.time_column
            if tcol is not None and tcol in frame.columns:  # the local path's row order
                frame = frame.sort_values(tcol, kind="stable").reset_index(drop=True)
            self._frames[snapshot_id] = frame
        return self._frames[snapshot_id]

    def _null_shares(self, snapshot_id: int) -> dict[str, float]:
        data = self._dataset(snapshot_id)
        if isinstance(data, pd.DataFrame):
            return null_shares(data)
        return merge_null_counts(self.ws.executor.map_partitions(null_counts, data))

    def _sets_in_parts(
        self, batches: list[BatchRecord], uri: str
    ) -> tuple[SnapshotRecord, SnapshotRecord, int]:
        """The train and holdout snapshots chosen and stored in parts (never gathered)."""
        ledger, executor, tcol = self.ws.ledger, self.ws.executor, self.spec.data.time_column
        snaps = [ledger.get_snapshot(b.snapshot_id) for b in batches if b.snapshot_id]
        sets = partitioned_sets(executor, ledger.files(snaps), self.spec)
        stored = []
        for kind, files in (("train", sets.train), ("holdout", sets.holdout)):
            info = describe_parts(executor, files, time_column=tcol)
            snap = ledger.snapshot_parts(self.model, kind, uri, files, info)
            self._parts[snap.id] = files
            stored.append(snap)
        return stored[0], stored[1], sets.overlap
