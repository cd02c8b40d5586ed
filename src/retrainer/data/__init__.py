"""Data: sources (folders, SQL), snapshots and content hashes, contract checks, the ledger."""

from retrainer.data.contract import (
    AUTO_PROMOTION_BLOCKERS,
    BatchContext,
    ContractFailure,
    ContractReport,
    check_batch,
)
from retrainer.data.ledger import BatchRecord, Ledger, SnapshotRecord
from retrainer.data.rules import deduplicate, null_shares
from retrainer.data.screen import Reference, batch_flags, screen_pending
from retrainer.data.snapshot import (
    SnapshotInfo,
    describe_frame,
    frame_from_parquet,
    frame_sha256,
    frame_to_parquet,
)
from retrainer.data.sources import BatchRef, FolderSource, Source, SourceRegistry, SqlSource

__all__ = [
    "AUTO_PROMOTION_BLOCKERS",
    "BatchContext",
    "BatchRecord",
    "BatchRef",
    "ContractFailure",
    "ContractReport",
    "FolderSource",
    "Ledger",
    "Reference",
    "SnapshotInfo",
    "SnapshotRecord",
    "Source",
    "SourceRegistry",
    "SqlSource",
    "batch_flags",
    "check_batch",
    "deduplicate",
    "describe_frame",
    "frame_from_parquet",
    "frame_sha256",
    "frame_to_parquet",
    "null_shares",
    "screen_pending",
]
