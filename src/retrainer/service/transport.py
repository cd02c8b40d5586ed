"""The HTTP protocol uvicorn runs for ``retrainer serve``: h11 with ``TCP_NODELAY`` set.

asyncio sets ``TCP_NODELAY`` on accepted sockets only when the listening socket says it
is TCP (``proto == IPPROTO_TCP``). uvicorn's ``--workers N`` mode binds the socket itself
with ``proto`` 0, so the accepted sockets keep Nagle's algorithm: a response written as
headers, then body, waits for the client's delayed ACK (40 ms on Linux) before the body
goes out. Setting the option on every connection removes that wait in both modes.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["NoDelayH11Protocol"]


class NoDelayH11Protocol(H11Protocol):
    """uvicorn's h11 protocol that turns Nagle's algorithm off on each connection."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):  # not TCP after all: nothing to turn off
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
