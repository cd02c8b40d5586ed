"""Peak resident memory of this process and its children, sampled in a thread."""

from __future__ import annotations

import _thread
import contextlib
import os
import threading
from dataclasses import dataclass, field

import psutil


@dataclass
class RssSampler:
    """Peak resident set per process, sampled in a background thread.

    ``roles`` maps a pid to a label ("client", "worker-0", ...); any other descendant of
    this process found while sampling is labelled ``child-<pid>`` (multiprocessing's
    resource tracker, a worker the nanny restarted; a LocalCluster's nannies run in
    this process and start the workers as its children). :meth:`step` starts a new
    per-step tally. When a labelled worker process disappears (the nanny killed it at
    95 % of its memory limit), its label goes to ``lost`` and the main thread gets a
    KeyboardInterrupt: LightGBM's Dask training never returns once a worker is gone.
    """

    every: float = 0.2
    roles: dict[int, str] = field(default_factory=dict)
    peaks: dict[str, int] = field(default_factory=dict)
    step_peaks: dict[str, dict[str, int]] = field(default_factory=dict)
    samples: int = 0
    lost: list[str] = field(default_factory=list)
    watching: bool = True
    """Interrupt the main thread when a worker disappears (off before closing the cluster)."""
    _step: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.roles.setdefault(os.getpid(), "client")

    def start(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()

    def set_roles(self, roles: dict[int, str]) -> None:
        """Label ``roles``' pids (peaks sampled before, as ``child-<pid>``, move over)."""
        with self._lock:
            self.roles.update(roles)
            for tally in [self.peaks, *self.step_peaks.values()]:
                for pid, label in roles.items():
                    early = tally.pop(f"child-{pid}", 0)
                    if early:
                        tally[label] = max(tally.get(label, 0), early)

    def step(self, name: str | None) -> None:
        self.sample()
        with self._lock:
            self._step = name
            if name is not None:
                self.step_peaks.setdefault(name, {})

    def sample(self) -> None:
        me = psutil.Process()
        procs = [me]
        with contextlib.suppress(psutil.Error):
            procs += me.children(recursive=True)
        with self._lock:
            for proc in procs:
                try:
                    rss = proc.memory_info().rss
                except psutil.Error:
                    continue
                label = self.roles.get(proc.pid, f"child-{proc.pid}")
                self.peaks[label] = max(self.peaks.get(label, 0), rss)
                if self._step is not None:
                    tally = self.step_peaks[self._step]
                    tally[label] = max(tally.get(label, 0), rss)
            self.samples += 1
            alive = {proc.pid for proc in procs}
            gone = [
                label
                for pid, label in self.roles.items()
                if label.startswith("worker-") and pid not in alive and label not in self.lost
            ]
        if gone and self.watching:
            self.lost += gone
            _thread.interrupt_main()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()


def mib(n: int | None) -> float | None:
    return None if n is None else round(n / 2**20, 1)
