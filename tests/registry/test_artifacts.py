"""Contract suite for the content-addressed artifact store (local and in-memory fsspec)."""

from __future__ import annotations

import datetime
import errno
import hashlib
import os
import signal
import stat
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from retrainer.errors import (
    ArtifactIntegrityError,
    DiskFullError,
    NotFoundError,
    PathEscapeError,
    SpecError,
)
from retrainer.registry.artifacts import ArtifactStore

PAYLOAD = b"model bytes \x00\xff" * 1000
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture(params=["file", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArtifactStore]:
    """The same contract runs on a local root and on a unique in-memory root."""
    if request.param == "file":
        yield ArtifactStore.from_uri("file://.retrainer/artifacts", base_dir=tmp_path)
        return
    memory = ArtifactStore.from_uri(
        f"memory://retrainer-test-{uuid.uuid4().hex}", base_dir=tmp_path
    )
    yield memory
    if memory.fs.exists(memory.root):
        memory.fs.rm(memory.root, recursive=True)
    assert not memory.fs.exists(memory.root)


@pytest.fixture
def local_store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore.from_uri("file://.retrainer/artifacts", base_dir=tmp_path)


# --- contract: both backends -------------------------------------------------------------


def test_put_get_round_trip(store: ArtifactStore) -> None:
    sha = store.put(PAYLOAD)

    assert sha == PAYLOAD_SHA
    assert store.get(sha) == PAYLOAD
    assert store.path_of(sha) == f"{store.root}/sha256/{sha[:2]}/{sha[2:4]}/{sha}"


def test_put_empty_bytes(store: ArtifactStore) -> None:
    sha = store.put(b"")

    assert sha == hashlib.sha256(b"").hexdigest()
    assert store.get(sha) == b""


def test_put_is_idempotent_and_does_not_rewrite(store: ArtifactStore) -> None:
    sha = store.put(PAYLOAD)
    before = store.fs.info(store.path_of(sha))

    assert store.put(PAYLOAD) == sha
    assert store.fs.info(store.path_of(sha)) == before
    assert store.fs.find(f"{store.root}/sha256") == [store.path_of(sha)]


def test_concurrent_puts_of_the_same_bytes(store: ArtifactStore) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = set(pool.map(lambda _: store.put(PAYLOAD), range(16)))

    assert keys == {PAYLOAD_SHA}
    assert store.get(PAYLOAD_SHA) == PAYLOAD


def test_exists(store: ArtifactStore) -> None:
    assert not store.exists(PAYLOAD_SHA)
    store.put(PAYLOAD)
    assert store.exists(PAYLOAD_SHA)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "abc",
        PAYLOAD_SHA.upper(),
        PAYLOAD_SHA[:-1],
        PAYLOAD_SHA + "0",
        PAYLOAD_SHA[:-1] + "g",
        PAYLOAD_SHA + "\n",
        "../" + PAYLOAD_SHA[3:],
        "/etc/passwd",
    ],
)
def test_sha_format_is_validated(store: ArtifactStore, bad: str) -> None:
    for call in (store.get, store.exists, store.path_of):
        with pytest.raises(PathEscapeError, match="64 lowercase hex"):
            call(bad)


def test_flipped_byte_is_refused_naming_both_hashes(store: ArtifactStore) -> None:
    sha = store.put(PAYLOAD)
    corrupted = bytearray(PAYLOAD)
    corrupted[len(corrupted) // 2] ^= 0x01
    store.fs.pipe_file(store.path_of(sha), bytes(corrupted))

    with pytest.raises(ArtifactIntegrityError) as caught:
        store.get(sha, what="model rain v3")

    message = str(caught.value)
    assert "sha256 mismatch" in message
    assert "model rain v3" in message
    assert f"expected {sha}" in message
    assert f"got {hashlib.sha256(corrupted).hexdigest()}" in message


def test_put_heals_a_corrupted_blob(store: ArtifactStore) -> None:
    sha = store.put(PAYLOAD)
    store.fs.pipe_file(store.path_of(sha), b"garbage")

    assert store.put(PAYLOAD) == sha
    assert store.get(sha) == PAYLOAD


def test_missing_blob_is_not_found(store: ArtifactStore) -> None:
    with pytest.raises(NotFoundError, match=f"model rain v3 not found.*{PAYLOAD_SHA}"):
        store.get(PAYLOAD_SHA, what="model rain v3")


def test_uri_reopens_the_same_store(store: ArtifactStore, tmp_path: Path) -> None:
    sha = store.put(PAYLOAD)
    reopened = ArtifactStore.from_uri(store.uri, base_dir=tmp_path / "elsewhere")

    assert reopened.root == store.root
    assert reopened.get(sha) == PAYLOAD


# --- resolve: the path payload matrix ----------------------------------------------------

ESCAPES = [
    "../",
    "../etc/passwd",
    "a/../../b",
    "%2e%2e%2f",
    "%2e%2e/etc",
    "%252e%252e%252f",
    "..\\",
    "..\\..\\etc\\passwd",
    "/etc/passwd",
    "//proc/self/root",
    "file:///etc",
    "s3://bucket/key",
    "C:\\Windows",
    "#/../",
    "?../",
    ";/../",
    "a\x00b",
    "a/\x00/../b",
    "a\nb",
    "",
    ".",
    "..",
    "a/./b",
    "a//b",
    "a/",
]


@pytest.mark.parametrize("key", ESCAPES)
def test_resolve_refuses_escapes(store: ArtifactStore, key: str) -> None:
    with pytest.raises(PathEscapeError, match="path escapes root"):
        store.resolve(key)


def test_resolve_joins_a_nested_key_under_root(store: ArtifactStore) -> None:
    assert store.resolve("cards/rain/v3.html") == f"{store.root}/cards/rain/v3.html"


def test_resolve_refuses_a_symlink_out_of_root(local_store: ArtifactStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("s")
    root = Path(local_store.root)
    (root / "link").symlink_to(outside, target_is_directory=True)
    (root / "file-link").symlink_to(outside / "secret")

    for key in ("link", "link/secret", "link/new/file", "file-link"):
        with pytest.raises(PathEscapeError, match="path escapes root"):
            local_store.resolve(key)


def test_resolve_allows_a_symlink_inside_root(local_store: ArtifactStore) -> None:
    root = Path(local_store.root)
    (root / "reports").mkdir()
    (root / "latest").symlink_to(root / "reports", target_is_directory=True)

    assert local_store.resolve("latest/card.html") == f"{root}/latest/card.html"


# --- local filesystem specifics ----------------------------------------------------------


def test_local_dirs_are_private(tmp_path: Path) -> None:
    store = ArtifactStore.from_uri("file://.retrainer/artifacts", base_dir=tmp_path)
    sha = store.put(PAYLOAD)
    blob = Path(store.path_of(sha))

    private_dirs = [tmp_path / ".retrainer", Path(store.root), Path(store.root, "tmp")]
    private_dirs += [blob.parent, blob.parent.parent, blob.parent.parent.parent]
    for directory in private_dirs:
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    assert stat.S_IMODE(blob.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("file://.retrainer/artifacts", ".retrainer/artifacts"),
        ("arts", "arts"),
        ("./deep/arts", "deep/arts"),
    ],
)
def test_from_uri_resolves_relative_roots_against_base_dir(
    tmp_path: Path, uri: str, expected: str
) -> None:
    store = ArtifactStore.from_uri(uri, base_dir=tmp_path)

    assert store.root == str((tmp_path / expected).resolve())
    assert store.uri == "file://" + store.root


def test_from_uri_accepts_absolute_roots(tmp_path: Path) -> None:
    absolute = tmp_path / "abs"
    for uri in (f"file://{absolute}", str(absolute), f"file://localhost{absolute}"):
        assert ArtifactStore.from_uri(uri, base_dir=tmp_path / "unused").root == str(
            absolute.resolve()
        )


@pytest.mark.parametrize("uri", ["", "   ", "nope://bucket/x", "nope://user:hunter2@host/x"])
def test_from_uri_rejects_bad_uris_without_leaking_secrets(tmp_path: Path, uri: str) -> None:
    with pytest.raises(SpecError, match="artifacts") as caught:
        ArtifactStore.from_uri(uri, base_dir=tmp_path)
    assert "hunter2" not in str(caught.value)


def test_failed_write_publishes_nothing(
    local_store: ArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(DiskFullError, match="no space left") as info:
        local_store.put(PAYLOAD)
    assert info.value.exit_code == 7
    assert isinstance(info.value.__cause__, OSError)
    assert info.value.__cause__.errno == errno.ENOSPC
    monkeypatch.undo()

    assert not local_store.exists(PAYLOAD_SHA)
    assert list(Path(local_store.root, "tmp").iterdir()) == []


# SIGKILL at the n-th os.fsync of a put: 1 is the temp file (before os.replace), 3 is
# while creating the key's directories, 5 is the directory fsync after os.replace.
_CRASH_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from retrainer.registry.artifacts import ArtifactStore

    store = ArtifactStore.from_uri(sys.argv[1], base_dir=Path(sys.argv[2]))
    data = sys.stdin.buffer.read()
    kill_at, calls = int(sys.argv[3]), [0]
    real_fsync = os.fsync

    def dying_fsync(fd):
        calls[0] += 1
        if calls[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        real_fsync(fd)

    os.fsync = dying_fsync
    store.put(data)
    sys.exit(f"put finished after {calls[0]} fsync calls without being killed")
    """
)


@pytest.mark.parametrize("kill_at", [1, 3, 5])
def test_sigkill_during_put_never_leaves_a_partial_blob(tmp_path: Path, kill_at: int) -> None:
    uri = "file://.retrainer/artifacts"
    store = ArtifactStore.from_uri(uri, base_dir=tmp_path)
    data = os.urandom(1 << 20)
    sha = hashlib.sha256(data).hexdigest()

    crashed = subprocess.run(
        [sys.executable, "-c", _CRASH_SCRIPT, uri, str(tmp_path), str(kill_at)],
        input=data,
        capture_output=True,
        timeout=120,
        check=False,
    )

    assert crashed.returncode == -signal.SIGKILL, crashed.stderr.decode()
    final = Path(store.path_of(sha))
    if kill_at == 1:
        assert not final.exists()
    if final.exists():  # published before the kill: then it is whole
        assert store.get(sha) == data
    leftovers = list(Path(store.root, "tmp").iterdir())
    assert len(leftovers) == (0 if final.exists() else 1)

    assert store.sweep_temp(datetime.timedelta(hours=1)) == 0  # too young to be stale
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=5)
    assert store.sweep_temp(datetime.timedelta(0), now=later) == len(leftovers)
    assert store.put(data) == sha
    assert store.get(sha) == data
    assert list(Path(store.root, "tmp").iterdir()) == []


def test_sweep_temp_rejects_negative_age(store: ArtifactStore) -> None:
    with pytest.raises(ValueError, match="negative"):
        store.sweep_temp(datetime.timedelta(seconds=-1))
