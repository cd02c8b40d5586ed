"""Wall time and peak resident memory of a callable, for one process (Linux).

Peak memory is the kernel's high-water mark of the resident set (``VmHWM``), reset
before each call through ``/proc/self/clear_refs`` (Linux >= 4.0); the figure reported
is ``VmHWM`` after the call minus ``VmRSS`` before it, so it counts everything the call
touched (numpy, Arrow buffers, the allocator's slack), not just Python objects.
"""

from __future__ import annotations

import gc
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_STATUS = Path("/proc/self/status")


def _status_kib(key: str) -> int:
    match = re.search(rf"^{key}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"{key} not in /proc/self/status")
    return int(match.group(1))


def rss_bytes() -> int:
    """The current resident set size."""
    return _status_kib("VmRSS") * 1024


def reset_peak() -> bool:
    """Reset the resident high-water mark; False where the kernel refuses."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_bytes() -> int:
    """The resident high-water mark since the last reset."""
    return _status_kib("VmHWM") * 1024


def run_repeats(fn: Callable[[], Any], repeats: int, warmup: int) -> tuple[dict[str, Any], Any]:
    """Call ``fn`` ``warmup + repeats`` times; time the last ``repeats``.

    Returns (figures, the last call's value). Wall time is what is compared; the
    process's CPU time (user + system, all threads) is kept beside it, as it is less
    disturbed by other load on the machine. Memory is measured on every call (the
    warm-up too) and the largest increase is reported: the first call, which also pays
    for lazy imports and first-touch page faults, is usually the worst.
    """
    times: list[float] = []
    cpu: list[float] = []
    peaks: list[int] = []
    absolute: list[int] = []
    value: Any = None
    for i in range(warmup + repeats):
        value = None
        gc.collect()
        can_reset = reset_peak()
        before = rss_bytes()
        t0, c0 = time.perf_counter(), time.process_time()
        value = fn()
        elapsed, cpu_s = time.perf_counter() - t0, time.process_time() - c0
        high = peak_bytes()
        peaks.append(high - before if can_reset else -1)
        absolute.append(high)
        if i >= warmup:
            times.append(elapsed)
            cpu.append(cpu_s)
    figures = {
        "times_s": times,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "cpu_times_s": cpu,
        "cpu_median_s": statistics.median(cpu),
        "peak_increase_bytes": max(peaks),
        "peak_increase_per_call_bytes": peaks,
        "peak_rss_bytes": max(absolute),
    }
    return figures, value
