"""Partitioned snapshot hashes: order-independent across partitions, sensitive to content."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from retrainer.data.parts import ParquetFiles
from retrainer.data.snapshot import dataset_sha256, frame_sha256, partitioned_sha256
from retrainer.orchestrate.executors import LocalExecutor


def parts() -> list[pd.DataFrame]:
    return [
        pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]}),
        pd.DataFrame({"a": [4], "b": ["w"]}),
        pd.DataFrame({"a": [5, 6], "b": ["v", "u"]}),
    ]


def combined(frames: list[pd.DataFrame]) -> str:
    return partitioned_sha256((frame_sha256(f), len(f)) for f in frames)


def test_the_partition_order_does_not_matter_but_the_content_does() -> None:
    frames = parts()
    reference = combined(frames)
    assert combined(frames[::-1]) == reference
    assert combined([frames[1], frames[2], frames[0]]) == reference
    edited = [f.copy() for f in frames]
    edited[2].loc[1, "a"] = 7
    assert combined(edited) != reference
    moved = [frames[0], pd.concat([frames[1], frames[2]], ignore_index=True)]
    assert combined(moved) != reference  # a row in another partition: another dataset
    inner = [frames[0].iloc[::-1], frames[1], frames[2]]
    assert combined(inner) != reference  # row order within a partition counts
    assert combined([*frames, frames[0].iloc[:0]]) != reference  # an empty partition too


def test_parquet_partitions_hash_the_same_where_they_are_read(tmp_path: Path) -> None:
    paths = []
    for i, frame in enumerate(parts()):
        path = tmp_path / f"p{i}.parquet"
        frame.to_parquet(path)
        paths.append(str(path))
    here = dataset_sha256(LocalExecutor(), ParquetFiles(tuple(paths)))
    assert here == combined(parts())
    assert dataset_sha256(LocalExecutor(), ParquetFiles(tuple(reversed(paths)))) == here
