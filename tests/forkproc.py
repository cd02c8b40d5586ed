"""The parent side of a fork server: a child Python (``sys.executable -c SCRIPT``) that
imports what its workers need once, says ``ready``, then answers one line per request.
Tests that SIGKILL real processes use it so that no worker pays the imports again."""

from __future__ import annotations

import subprocess
import sys


class ForkServerProcess:
    """Start ``SCRIPT`` (with ``args``) and wait for its ``ready`` line; talk in lines."""

    def __init__(self, script: str, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", script, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        assert self.stdout.readline() == "ready\n", "the fork server did not start"

    def ask(self, line: str) -> str:
        """Send one request line; return the one answer line."""
        self.stdin.write(line + "\n")
        self.stdin.flush()
        return self.stdout.readline()

    def close(self) -> None:
        """End the server (its stdin closes); kill it if it has not ended in 30 s."""
        self.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
