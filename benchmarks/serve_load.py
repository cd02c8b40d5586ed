"""HTTP load generator for the serving benchmark, run as its own process.

Two modes, both over keep-alive HTTP/1.1 connections on raw asyncio streams (no client
library between the clock and the socket):

- ``open``: open loop at a fixed rate. Request ``i`` is due at ``start + i / rate`` and
  is sent then whether or not earlier ones have returned (a new connection is opened
  when none is idle). Latency is measured from the *scheduled* time, so a stall of the
  server (or of this process) counts against every request that was due during it
  (no coordinated omission). The lag between the scheduled and the actual send is
  reported separately, so a busy load generator can be told from a slow server.
- ``closed``: ``--connections`` clients send back to back for ``--duration`` seconds
  (maximum throughput; latency here is per request, not from a schedule).

Bodies come from a JSON file (a list of JSON documents), used round robin. The result
is one JSON object on stdout. Usage::

    python benchmarks/serve_load.py open --url http://127.0.0.1:8000/v1/models/rain/predict \\
        --bodies bodies.json --rate 200 --duration 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


class HttpError(Exception):
    """A response that could not be read (closed connection, bad framing)."""


class Conn:
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> Conn:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 22)
        return cls(reader, writer)

    async def request(self, payload: bytes) -> tuple[int, bytes]:
        """Send one prepared request, return (status, body). Raises on a broken stream."""
        self.writer.write(payload)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        try:
            status = int(lines[0].split(b" ", 2)[1])
        except (IndexError, ValueError) as exc:
            raise HttpError(f"bad status line {lines[0][:80]!r}") from exc
        length = None
        chunked = False
        close = False
        for line in lines[1:]:
            key, _, value = line.partition(b":")
            key = key.strip().lower()
            if key == b"content-length":
                length = int(value.strip())
            elif key == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif key == b"connection" and b"close" in value.lower():
                close = True
        if chunked:
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                parts.append(await self.reader.readexactly(size + 2))
            body = b"".join(p[:-2] for p in parts)
        elif length is not None:
            body = await self.reader.readexactly(length)
        else:
            raise HttpError("response without Content-Length or chunked encoding")
        if close:
            self.close()
            raise HttpError("server closed the connection")
        return status, body

    def close(self) -> None:
        self.writer.close()


def prepare(url: str, bodies: list[Any]) -> tuple[str, int, list[bytes]]:
    """Host, port and the raw request bytes for each body."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    path = parts.path or "/"
    payloads = []
    for body in bodies:
        raw = json.dumps(body, separators=(",", ":")).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(raw)}\r\n\r\n"
        ).encode()
        payloads.append(head + raw)
    return host, port, payloads


def quantile(values: list[float], q: float) -> float | None:
    """Nearest-rank quantile (``q`` in [0, 1]) of unsorted values; None when empty."""
    if not values:
        return None
    s = sorted(values)
    rank = max(1, math.ceil(q * len(s)))
    return s[rank - 1]


def summarize_ms(values_s: list[float]) -> dict[str, float | None]:
    """p50, p90, p99, p99.9, max and mean in milliseconds."""
    ms = [v * 1000.0 for v in values_s]
    return {
        "p50_ms": quantile(ms, 0.50),
        "p90_ms": quantile(ms, 0.90),
        "p99_ms": quantile(ms, 0.99),
        "p999_ms": quantile(ms, 0.999),
        "max_ms": max(ms) if ms else None,
        "mean_ms": sum(ms) / len(ms) if ms else None,
    }


@dataclass
class Tally:
    """What came back."""

    latencies: list[float] = field(default_factory=list)
    send_lag: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    first_error: str | None = None
    ok: int = 0

    def status(self, code: int) -> None:
        self.statuses[str(code)] = self.statuses.get(str(code), 0) + 1
        if 200 <= code < 300:
            self.ok += 1

    def error(self, exc: BaseException) -> None:
        kind = type(exc).__name__
        self.errors[kind] = self.errors.get(kind, 0) + 1
        if self.first_error is None:
            self.first_error = f"{kind}: {exc}"[:300]


async def run_open(
    host: str, port: int, payloads: list[bytes], rate: float, duration: float, timeout: float
) -> dict[str, Any]:
    """Open loop: ``rate`` requests per second for ``duration`` seconds."""
    loop = asyncio.get_running_loop()
    idle: list[Conn] = []
    opened = 0
    tally = Tally()
    n = round(rate * duration)
    bad = 0

    async def one(i: int, due: float) -> None:
        nonlocal opened, bad
        conn = None
        while idle and conn is None:
            conn = idle.pop()
            if conn.reader.at_eof():  # closed by the server while idle (keep-alive timeout)
                conn.close()
                conn = None
        sent = loop.time()
        tally.send_lag.append(sent - due)
        try:
            if conn is None:
                conn = await Conn.open(host, port)
                opened += 1
            status, _ = await asyncio.wait_for(conn.request(payloads[i % len(payloads)]), timeout)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, HttpError) as exc:
            tally.error(exc)
            if conn is not None:
                conn.close()
            return
        tally.latencies.append(loop.time() - due)
        tally.status(status)
        if not 200 <= status < 300:
            bad += 1
        idle.append(conn)

    # a few connections up front, as a real client pool would have
    for _ in range(4):
        idle.append(await Conn.open(host, port))
        opened += 1
    tasks = []
    start = loop.time() + 0.05
    wall0 = time.time()
    for i in range(n):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    send_end = loop.time()
    await asyncio.gather(*tasks)
    end = loop.time()
    for c in idle:
        c.close()
    return {
        "mode": "open",
        "target_rate": rate,
        "duration_s": duration,
        "scheduled": n,
        "completed": len(tally.latencies),
        "ok": tally.ok,
        "non_2xx": bad,
        "errors": tally.errors,
        "first_error": tally.first_error,
        "statuses": tally.statuses,
        "achieved_rate": tally.ok / (end - start) if end > start else None,
        "send_rate": n / (send_end - start) if send_end > start else None,
        "connections_opened": opened,
        "latency": summarize_ms(tally.latencies),
        "send_lag": summarize_ms(tally.send_lag),
        "started_at": wall0,
        "wall_s": end - start,
    }


async def run_closed(
    host: str, port: int, payloads: list[bytes], connections: int, duration: float, timeout: float
) -> dict[str, Any]:
    """Closed loop: ``connections`` clients back to back for ``duration`` seconds."""
    loop = asyncio.get_running_loop()
    tally = Tally()
    bad = 0
    stop = loop.time() + duration

    async def client(k: int) -> None:
        nonlocal bad
        conn = await Conn.open(host, port)
        i = k
        while loop.time() < stop:
            t0 = loop.time()
            try:
                status, _ = await asyncio.wait_for(
                    conn.request(payloads[i % len(payloads)]), timeout
                )
            except (TimeoutError, OSError, asyncio.IncompleteReadError, HttpError) as exc:
                tally.error(exc)
                conn.close()
                conn = await Conn.open(host, port)
                continue
            tally.latencies.append(loop.time() - t0)
            tally.status(status)
            if not 200 <= status < 300:
                bad += 1
            i += connections
        conn.close()

    start = loop.time()
    await asyncio.gather(*(client(k) for k in range(connections)))
    end = loop.time()
    return {
        "mode": "closed",
        "connections": connections,
        "duration_s": end - start,
        "completed": len(tally.latencies),
        "ok": tally.ok,
        "non_2xx": bad,
        "errors": tally.errors,
        "first_error": tally.first_error,
        "statuses": tally.statuses,
        "requests_per_s": tally.ok / (end - start),
        "latency": summarize_ms(tally.latencies),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=["open", "closed"])
    p.add_argument("--url", required=True)
    p.add_argument("--bodies", type=Path, required=True, help="JSON file: a list of bodies")
    p.add_argument("--rate", type=float, default=200.0, help="open loop: requests per second")
    p.add_argument("--duration", type=float, default=60.0, help="seconds")
    p.add_argument("--connections", type=int, default=8, help="closed loop: clients")
    p.add_argument("--timeout", type=float, default=10.0, help="per request, seconds")
    args = p.parse_args(argv)
    host, port, payloads = prepare(args.url, json.loads(args.bodies.read_text()))
    if args.mode == "open":
        coro = run_open(host, port, payloads, args.rate, args.duration, args.timeout)
    else:
        coro = run_closed(host, port, payloads, args.connections, args.duration, args.timeout)
    result = asyncio.run(coro)
    result["cpu_s"] = time.process_time()
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
