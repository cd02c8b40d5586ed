"""The environment a model was trained in: Python, platform, packages, code commit."""

from __future__ import annotations

import hashlib
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["capture_environment"]

_KEY_PACKAGES = ("retrainer", "scikit-learn", "numpy", "pandas", "scipy", "skops")


def _git_commit(cwd: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def capture_environment(workspace: Path) -> dict[str, Any]:
    """Python and platform, key package versions, a hash of every installed package
    (the environment lock hash) and the git commit of the workspace, if it is a repo."""
    dists = sorted(
        f"{d.metadata['Name']}=={d.version}".lower()
        for d in metadata.distributions()
        if d.metadata["Name"]
    )
    versions = {}
    for name in _KEY_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "env_lock_sha256": hashlib.sha256("\n".join(dists).encode()).hexdigest(),
        "code_commit": _git_commit(workspace),
    }
