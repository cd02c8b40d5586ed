"""Data: sources (folders, SQL), snapshots and content hashes, contract checks, the ledger."""

from retrainer.data.contract import ContractFailure, ContractReport, check_batch
from retrainer.data.ledger import BatchRecord, Ledger, SnapshotRecord
from retrainer.data.snapshot import (
    SnapshotInfo,
    describe_frame,
    frame_from_parquet,
    frame_sha256,
    frame_to_parquet,
)
from retrainer.data.sources import BatchRef, FolderSource, Source, SourceRegistry, SqlSource

__all__ = [
    "BatchRecord",
    "BatchRef",
    "ContractFailure",
    "ContractReport",
    "FolderSource",
    "Ledger",
    "SnapshotInfo",
    "SnapshotRecord",
    "Source",
    "SourceRegistry",
    "SqlSource",
    "check_batch",
    "describe_frame",
    "frame_from_parquet",
    "frame_sha256",
    "frame_to_parquet",
]
