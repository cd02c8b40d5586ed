"""Content-addressed artifact store on any fsspec filesystem.

Blobs are stored under their sha256: ``<root>/sha256/<2 hex>/<2 hex>/<64 hex>``. Writes
are atomic (a reader sees either no blob or the whole blob) and every read is verified
against the key, so a flipped byte is reported instead of served.

Example:
    >>> import uuid, fsspec
    >>> store = ArtifactStore(fsspec.filesystem("memory"), f"/doctest-{uuid.uuid4().hex}")
    >>> key = store.put(b"model bytes")
    >>> store.get(key) == b"model bytes"
    True
    >>> store.fs.rm(store.root, recursive=True)
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import hashlib
import logging
import os
import posixpath
import re
import stat
import tempfile
import time
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem

from retrainer.errors import (
    ArtifactIntegrityError,
    DiskFullError,
    NotFoundError,
    PathEscapeError,
    SpecError,
)

__all__ = ["ArtifactStore"]

logger = logging.getLogger(__name__)

_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_USERINFO_RE = re.compile(r"//[^/@]*@")
_FORBIDDEN_CHARS = {"\\": "backslash", "%": "percent-encoding", "#": "'#'", "?": "'?'", ";": "';'"}
_PRIVATE_DIR_MODE = 0o700
_TEMP_SUFFIX = ".partial"


class ArtifactStore:
    """Content-addressed (sha256) blob store on any fsspec filesystem.

    On the local filesystem the root and every directory the store creates get mode
    ``0o700`` and blobs ``0o600``; a write goes to a unique temp file in ``<root>/tmp/``,
    is fsynced, then published with ``os.replace`` and the directory fsynced. On any other
    filesystem the final key is written in one call (object stores publish atomically).

    The store is safe to share between threads and processes: writers of the same bytes
    race to publish identical content, and readers never see a partial blob.

    Attributes:
        fs: The fsspec filesystem holding the blobs.
        root: The root path on ``fs`` (absolute and symlink-free on the local filesystem).
    """

    def __init__(self, fs: fsspec.AbstractFileSystem, root: str) -> None:
        """Open (and on the local filesystem, create) a store rooted at ``root``.

        Args:
            fs: Any fsspec filesystem.
            root: The root path on ``fs``, without protocol.

        Raises:
            PathEscapeError: ``root`` is empty.
        """
        self.fs = fs
        self._local = isinstance(fs, LocalFileSystem)
        if self._local:
            _make_private_dirs(Path(root))
            self.root = os.path.realpath(root)
            _make_private_dirs(Path(self.root, "tmp"))
        else:
            self.root = root.rstrip("/")
            if not self.root:
                raise PathEscapeError(f"artifact root must not be empty or '/' (got {root!r})")

    @classmethod
    def from_uri(cls, uri: str, *, base_dir: Path) -> ArtifactStore:
        """Build a store from the spec's ``artifacts`` URI.

        Args:
            uri: ``file://rel/path`` (relative to ``base_dir``), ``file:///abs/path``, a
                plain path (relative to ``base_dir`` unless absolute), ``memory://name``,
                or any other fsspec URL (``s3://bucket/prefix``...).
            base_dir: The workspace folder relative local roots are resolved against.

        Returns:
            The store. A local root is created with mode ``0o700``.

        Raises:
            SpecError: The URI is empty, its protocol is unknown, or the package that
                implements it (``s3fs``...) is not installed.
        """
        if not uri.strip():
            raise SpecError("artifacts: expected a path or fsspec URI, got an empty string")
        local = _local_path(uri, base_dir)
        if local is not None:
            return cls(LocalFileSystem(), str(local))
        try:
            fs, path = fsspec.url_to_fs(uri)
        except (ValueError, ImportError) as exc:
            raise SpecError(f"artifacts: cannot open {_redact(uri)!r}: {exc}") from exc
        return cls(fs, str(path))

    @property
    def uri(self) -> str:
        """The store's root as a URL (no credentials), e.g. ``file:///ws/.retrainer/artifacts``."""
        if self._local:
            return "file://" + self.root
        return str(self.fs.unstrip_protocol(self.root))

    def __repr__(self) -> str:
        return f"ArtifactStore({self.uri!r})"

    def put(self, data: bytes) -> str:
        """Store bytes under their sha256 and return the hex digest.

        Idempotent: when an intact blob with the same digest exists, nothing is written.
        A blob whose stored bytes no longer match its key is rewritten (healed).
        Atomic: a crash or ``ENOSPC`` at any point leaves no file at the final name, or the
        complete file; a stale temp file may remain for :meth:`sweep_temp`.

        Args:
            data: The bytes to store.

        Returns:
            The lowercase sha256 hex digest, the blob's key.

        Raises:
            DiskFullError: No space left; nothing was published.
            OSError: The filesystem failed otherwise; nothing was published.
        """
        sha = hashlib.sha256(data).hexdigest()
        if self._intact(sha):
            logger.debug("artifact %s already stored", sha)
            return sha
        try:
            if self._local:
                self._put_local(sha, data)
            else:
                path = self.path_of(sha)
                self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
                self.fs.pipe_file(path, data)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise DiskFullError(
                    f"no space left writing a {len(data)}-byte artifact to {self.uri}; "
                    "nothing was published"
                ) from exc
            raise
        logger.info("stored artifact sha256 %s (%d bytes) in %s", sha, len(data), self.uri)
        return sha

    def get(self, sha256: str, *, what: str = "artifact") -> bytes:
        """Read a blob and verify its bytes against its key.

        Args:
            sha256: The blob's key (64 lowercase hex characters).
            what: What the blob is, for messages (e.g. ``"model rain v3"``).

        Returns:
            The verified bytes.

        Raises:
            PathEscapeError: ``sha256`` is not 64 lowercase hex characters.
            NotFoundError: No blob has that key.
            ArtifactIntegrityError: The stored bytes hash to something else ("sha256
                mismatch"; the message names ``what`` and both digests).
        """
        path = self.path_of(sha256)
        try:
            data = self._read(path)
        except FileNotFoundError as exc:
            raise NotFoundError(f"{what} not found: no blob sha256 {sha256} in {self.uri}") from exc
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise ArtifactIntegrityError(
                f"sha256 mismatch for {what}: expected {sha256}, got {actual} ({path}); "
                "the stored bytes were altered or corrupted and were not used"
            )
        return data

    def exists(self, sha256: str) -> bool:
        """Whether a blob is stored under ``sha256`` (its bytes are not verified).

        Raises:
            PathEscapeError: ``sha256`` is not 64 lowercase hex characters.
        """
        return bool(self.fs.isfile(self.path_of(sha256)))

    def path_of(self, sha256: str) -> str:
        """The full filesystem path of a key: ``<root>/sha256/ab/cd/<sha256>``.

        Raises:
            PathEscapeError: ``sha256`` is not 64 lowercase hex characters.
        """
        _check_sha256(sha256)
        return posixpath.join(self.root, "sha256", sha256[:2], sha256[2:4], sha256)

    def uri_of(self, sha256: str) -> str:
        """The URI of a key's blob (``file:///...``, ``s3://...``), for readers in other
        processes (Dask workers) that open it themselves and check its sha256.

        Raises:
            PathEscapeError: ``sha256`` is not 64 lowercase hex characters.
        """
        return str(self.fs.unstrip_protocol(self.path_of(sha256)))

    def resolve(self, key: str) -> str:
        """Join a caller-supplied relative key under the root, refusing any escape.

        A key is one or more ``/``-separated plain names. Refused: ``.``/``..`` and empty
        segments (so ``//``), absolute paths, ``\\``, NUL and other control characters,
        any ``%`` (percent-encoded or double-encoded traversal), URL schemes
        (``file:``...), ``#``, ``?``, ``;``, and on the local filesystem a path whose
        real location (after following symlinks) is outside the root.

        Args:
            key: The relative key, e.g. ``"cards/rain/v3.html"``.

        Returns:
            The full path of the key on :attr:`fs`.

        Raises:
            PathEscapeError: "path escapes root", with the reason.
        """
        _check_key_syntax(key)
        joined = posixpath.join(self.root, key)
        if self._local:
            real = os.path.realpath(joined)
            if os.path.commonpath([real, self.root]) != self.root:
                raise PathEscapeError(f"path escapes root: {key!r} (resolves outside the root)")
        elif not posixpath.normpath(joined).startswith(self.root + "/"):
            raise PathEscapeError(f"path escapes root: {key!r}")
        return joined

    def sweep_temp(
        self, older_than: datetime.timedelta, *, now: datetime.datetime | None = None
    ) -> int:
        """Remove temp files left behind by crashed writers.

        Only files in ``<root>/tmp/`` not modified for ``older_than`` are removed, so a
        live writer's temp file survives if ``older_than`` exceeds the longest write.
        Other filesystems never hold temp files; there this returns 0.

        Args:
            older_than: Minimum age of a temp file to remove; must not be negative.
            now: The current time (defaults to the system clock; tests pass their own).

        Returns:
            How many temp files were removed.

        Raises:
            ValueError: ``older_than`` is negative.
        """
        removed = 0
        for name in self.stale_temps(older_than, now=now):
            with contextlib.suppress(FileNotFoundError):
                Path(self.root, "tmp", name).unlink()
                removed += 1
        if removed:
            logger.info("removed %d stale temp file(s) from %s", removed, self.uri)
        return removed

    def stale_temps(
        self, older_than: datetime.timedelta, *, now: datetime.datetime | None = None
    ) -> list[str]:
        """Names of the temp files in ``<root>/tmp/`` not modified for ``older_than``
        (sorted; none on other filesystems). Raises ValueError if it is negative."""
        if older_than < datetime.timedelta(0):
            raise ValueError(f"older_than must not be negative, got {older_than}")
        tmp = Path(self.root, "tmp")
        if not self._local or not tmp.is_dir():
            return []
        current = now.timestamp() if now is not None else time.time()
        cutoff = current - older_than.total_seconds()
        with os.scandir(tmp) as entries:
            return sorted(e.name for e in entries if _is_stale_temp(e, cutoff))

    def _intact(self, sha256: str) -> bool:
        try:
            return hashlib.sha256(self._read(self.path_of(sha256))).hexdigest() == sha256
        except FileNotFoundError:
            return False

    def _read(self, path: str) -> bytes:
        if self._local:
            return Path(path).read_bytes()
        return bytes(self.fs.cat_file(path))

    def _put_local(self, sha256: str, data: bytes) -> None:
        # The temp file's fsync comes first: a crash before os.replace leaves only the temp.
        fd, tmp = tempfile.mkstemp(
            prefix=f"{sha256}.", suffix=_TEMP_SUFFIX, dir=Path(self.root, "tmp")
        )
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            final = Path(self.path_of(sha256))
            _make_private_dirs(final.parent)
            Path(tmp).replace(final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(final.parent)


def _check_sha256(sha256: str) -> None:
    if not isinstance(sha256, str) or not _SHA256_RE.fullmatch(sha256):
        raise PathEscapeError(
            f"invalid artifact key {sha256!r}: expected a sha256 digest "
            "(64 lowercase hex characters)"
        )


def _check_key_syntax(key: str) -> None:
    """Raise PathEscapeError unless ``key`` is a canonical relative key."""
    if not isinstance(key, str) or not key:
        raise PathEscapeError(f"path escapes root: {key!r} (expected a non-empty relative key)")
    reason = _key_problem(key)
    if reason is not None:
        raise PathEscapeError(f"path escapes root: {key!r} ({reason})")


def _key_problem(key: str) -> str | None:
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in key):
        return "control character or NUL"
    for char, name in _FORBIDDEN_CHARS.items():
        if char in key:
            return f"{name} is not allowed"
    if key.startswith("/"):
        return "absolute path"
    if _SCHEME_RE.match(key) or "://" in key:
        return "URL scheme"
    segments = key.split("/")
    if "" in segments:
        return "empty segment ('//' or trailing '/')"
    if any(segment in {".", ".."} for segment in segments):
        return "'.' or '..' segment"
    return None


def _is_stale_temp(entry: os.DirEntry[str], cutoff: float) -> bool:
    if not entry.name.endswith(_TEMP_SUFFIX):
        return False
    try:
        info = entry.stat(follow_symlinks=False)
    except FileNotFoundError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_mtime < cutoff


def _local_path(uri: str, base_dir: Path) -> Path | None:
    """The local root a URI names (relative ones under ``base_dir``), or None if not local."""
    if uri.startswith("file://"):
        rest = uri.removeprefix("file://")
        rest = rest.removeprefix("localhost") if rest.startswith("localhost/") else rest
        path = Path(rest)
    elif "://" in uri:
        return None
    else:
        path = Path(uri.removeprefix("file:"))
    return path if path.is_absolute() else base_dir / path


def _make_private_dirs(path: Path) -> None:
    """Create ``path`` and missing parents with mode 0o700, fsyncing each new entry."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=_PRIVATE_DIR_MODE)
            directory.chmod(_PRIVATE_DIR_MODE)
            _fsync_dir(directory.parent)
    if not missing and path.stat().st_mode & 0o077:
        logger.warning("artifact directory %s is accessible to group/others", path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _redact(uri: str) -> str:
    """``uri`` with any ``user:password@`` replaced, for messages."""
    return _USERINFO_RE.sub("//***@", uri)
