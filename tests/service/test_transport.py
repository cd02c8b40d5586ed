"""Connections served by ``NoDelayH11Protocol`` have Nagle's algorithm off, even on a
listening socket bound the way uvicorn's ``--workers`` mode binds it (``proto`` 0),
where asyncio leaves it on."""

from __future__ import annotations

import asyncio
import socket

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from retrainer.service.transport import NoDelayH11Protocol


async def _nodelay_of_accepted(protocol_class: type[H11Protocol]) -> int:
    async def app(scope: object, receive: object, send: object) -> None:  # never called
        raise AssertionError

    config = uvicorn.Config(app, log_level="warning")
    config.load()
    state = ServerState()
    made: list[H11Protocol] = []

    def factory() -> H11Protocol:
        made.append(protocol_class(config=config, server_state=state, app_state={}))
        return made[-1]

    listener = socket.socket(family=socket.AF_INET)  # as uvicorn binds: proto 0
    listener.bind(("127.0.0.1", 0))
    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, sock=listener)
    _, writer = await asyncio.open_connection(*listener.getsockname()[:2])
    for _ in range(1000):
        if made and getattr(made[0], "transport", None) is not None:
            break
        await asyncio.sleep(0.005)
    accepted = made[0].transport.get_extra_info("socket")
    value = accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    writer.close()
    server.close()
    await server.wait_closed()
    return value


def test_the_workers_mode_socket_gets_tcp_nodelay() -> None:
    assert asyncio.run(_nodelay_of_accepted(H11Protocol)) == 0  # the problem, as found
    assert asyncio.run(_nodelay_of_accepted(NoDelayH11Protocol)) != 0
