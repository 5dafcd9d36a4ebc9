"""A connection that ends is freed by reference counting, not left to the cyclic collector.

Four references used to tie a connection into reference cycles (our wrapper of the protocol's
``send_response``, websockets' of our ``select_subprotocol``: both now methods of the hub's
protocol class; the session's slow-consumer callback on its outbox, and the control-frame
hook holding the session). Each closed
connection then stayed in memory, ~50 objects with its transport and buffers, until a
collector pass. Connections live long enough to reach the oldest generation, whose passes
walk every live object: 1.3 s at 19,500 connections on this machine.

Real hub, real sockets; the collector's ``DEBUG_SAVEALL`` shows what only it would free.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from protocol.codec import JSON, MSGPACK

HUB_TYPES = {"HubConnection", "Session", "SessionCore", "Outbox", "ServerProtocol"}


@pytest.fixture
def saved_garbage() -> Iterator[list[Any]]:
    """``gc.garbage`` as the collector saves every unreachable object into it."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield gc.garbage
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.collect()


async def test_closed_and_refused_connections_leave_no_cycles(
    hub: Any, hub_url: str, tenant: tuple[Any, str], saved_garbage: list[Any]
) -> None:
    _, key = tenant
    auth = {"Authorization": f"Bearer {key}"}
    for subprotocol in (MSGPACK, JSON):
        for _ in range(10):  # closed by the client
            conn = await connect(hub_url, additional_headers=auth, subprotocols=[subprotocol])  # type: ignore[list-item]
            await conn.recv()  # the welcome
            await conn.close()
    for _ in range(5):  # closed by the server: revoked
        conn = await connect(hub_url, additional_headers=auth, subprotocols=[MSGPACK])  # type: ignore[list-item]
        await conn.recv()
        closed = hub.registry.close(hub.registry.all(), 4003, "credential revoked")
        assert closed == 1
        await conn.wait_closed()
    for _ in range(5):  # refused at the handshake
        with pytest.raises(InvalidStatus):
            await connect(hub_url, additional_headers={"Authorization": "Bearer ht_wrong"})
    del conn
    await hub.stop()  # every connection's end has run
    gc.collect()
    left = sorted({type(o).__name__ for o in saved_garbage} & HUB_TYPES)
    assert left == [], f"only the cyclic collector would free these: {left}"
