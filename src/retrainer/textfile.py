"""Writing a text file atomically, with errors that say what went wrong."""

from __future__ import annotations

import errno
from pathlib import Path

from retrainer.errors import DataSourceError, DiskFullError

__all__ = ["write_text_atomic"]


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file in the same folder, so
    a reader sees the old file or the new one, never half of it. Returns ``path``.

    Raises:
        DataSourceError: ``path`` cannot be written (its folder is missing...).
        DiskFullError: no space left.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            raise DiskFullError(f"no space left writing {path}") from exc
        raise DataSourceError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path
