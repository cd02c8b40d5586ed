"""What machine a benchmark ran on, and how busy it was."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], capture_output=True, text=True, check=True, cwd=Path(__file__).parent
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def load_average() -> dict[str, Any]:
    """The 1, 5 and 15 minute load averages, with the time they were read."""
    one, five, fifteen = os.getloadavg()
    return {"at": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "1m": one, "5m": five, "15m": fifteen}


def machine_info() -> dict[str, Any]:
    """CPU, memory, OS, Python and the project's git revision."""
    status = _git("status", "--porcelain", "--", "src")
    return {
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": _cpu_model(),
        "mem_total_bytes": _mem_total_bytes(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "src_dirty": bool(status) if status is not None else None,
    }


def source_digest(folder: Path) -> str | None:
    """A short SHA-256 over the ``*.py`` files of ``folder`` (names and contents), so a
    result can be tied to the exact code measured even when it was not committed."""
    files = sorted(folder.glob("*.py"))
    if not files:
        return None
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:12]
