"""Snapshots kept in parts: a manifest of masked batch blobs, read back whole or in parts,
and refused when a blob changed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retrainer.data.ledger import Ledger
from retrainer.data.parts import pack_mask
from retrainer.data.snapshot import describe_parts, frame_sha256, partitioned_sha256
from retrainer.errors import ArtifactIntegrityError, DataSourceError
from retrainer.orchestrate.executors import LocalExecutor
from retrainer.registry.artifacts import ArtifactStore
from retrainer.registry.db import Database


@pytest.fixture
def ledger(db: Database, tmp_path: Path) -> Ledger:
    return Ledger(db, ArtifactStore.from_uri(str(tmp_path / "artifacts"), base_dir=tmp_path))


def batch(seed: int, rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = pd.Timestamp("2024-01-01") + pd.to_timedelta(seed * 10 + np.arange(rows), "h")
    return pd.DataFrame({"ts": ts, "x": rng.normal(size=rows), "y": rng.integers(0, 2, rows)})


def test_a_snapshot_in_parts_reads_back_its_kept_rows(ledger: Ledger) -> None:
    frames = [batch(1, 30), batch(2, 20)]
    snaps = [ledger.snapshot("m", "batch", "src", f, time_column="ts") for f in frames]
    keep = [np.arange(30) % 3 == 0, np.arange(20) >= 15]
    files = ledger.files(snaps).masked([pack_mask(k) for k in keep])
    info = describe_parts(LocalExecutor(), files, time_column="ts")
    snap = ledger.snapshot_parts("m", "train", "src", files, info)

    stored = [ledger.load_frame(s) for s in snaps]  # as the blobs hold them
    expected = [f[k].reset_index(drop=True) for f, k in zip(stored, keep, strict=True)]
    assert snap.row_count == 15
    assert snap.columns == {str(c): str(t) for c, t in stored[0].dtypes.items()}
    assert snap.content_hash == partitioned_sha256((frame_sha256(e), len(e)) for e in expected)
    assert snap.time_min == expected[0]["ts"].min().isoformat()
    assert snap.time_max == expected[1]["ts"].max().isoformat()
    pd.testing.assert_frame_equal(ledger.load_frame(snap), pd.concat(expected, ignore_index=True))
    parts = ledger.parts(snap)
    assert parts is not None and parts.keep == files.keep
    assert parts.row_counts() == [10, 5]  # from the masks, nothing read
    assert ledger.files(snaps).row_counts() == [30, 20]  # from the Parquet footers
    assert ledger.parts(snaps[0]) is None  # a whole-frame snapshot
    again = ledger.snapshot_parts("m", "train", "src", files, info)
    assert again.id == snap.id  # the same rows: the same record


def test_a_changed_blob_is_refused_when_read(ledger: Ledger) -> None:
    snaps = [ledger.snapshot("m", "batch", "src", batch(1, 10), time_column="ts")]
    files = ledger.files(snaps)
    info = describe_parts(LocalExecutor(), files, time_column="ts")
    snap = ledger.snapshot_parts("m", "train", "src", files, info)
    blob = Path(ledger.artifacts.path_of(snaps[0].artifact_sha256))
    blob.chmod(0o600)
    blob.write_bytes(blob.read_bytes()[:-10])
    with pytest.raises(ArtifactIntegrityError, match="no longer have sha256"):
        ledger.load_frame(snap)


def test_a_broken_manifest_names_the_snapshot(ledger: Ledger) -> None:
    snaps = [ledger.snapshot("m", "batch", "src", batch(1, 10), time_column="ts")]
    files = ledger.files(snaps)
    info = describe_parts(LocalExecutor(), files, time_column="ts")
    snap = ledger.snapshot_parts("m", "train", "src", files, info)
    sha = ledger.artifacts.put(b'{"format": "something else"}')
    broken = type(snap)(**{**snap.to_dict(), "artifact_sha256": sha})
    with pytest.raises(DataSourceError, match=f"snapshot {snap.id}: not a valid manifest"):
        ledger.load_frame(broken)
