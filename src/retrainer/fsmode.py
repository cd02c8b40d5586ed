"""Private files and folders: what retrainer creates for its own state is ``0o700``/``0o600``.

The modes are set with ``chmod`` after creation, so they hold whatever the process's
umask is. Existing folders and files are left as they are (a warning names a folder
that group or others can read): they were created by someone who chose their mode.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

__all__ = [
    "PRIVATE_DIR",
    "PRIVATE_FILE",
    "create_private_file",
    "make_private_dirs",
    "open_private",
]

log = logging.getLogger(__name__)

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def make_private_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents, each with mode ``0o700``."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it first
            directory.mkdir(mode=PRIVATE_DIR)
            directory.chmod(PRIVATE_DIR)
    if not missing and path.is_dir() and path.stat().st_mode & 0o077:
        log.debug("folder %s is accessible to group or others", path)


def create_private_file(path: Path) -> bool:
    """Create an empty ``path`` with mode ``0o600`` unless it exists; True if created."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)
    return True


def open_private(path: Path) -> int:
    """A new file at ``path`` (which must not exist), mode ``0o600``, open for writing."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    os.fchmod(fd, PRIVATE_FILE)
    return fd
