"""The server's keepalive: every connection is pinged from one shared timing wheel
(server/hub/keepalive.py), a client that stops answering is closed with 1011, and a closed
connection leaves the wheel (nothing holds it alive).

Real hub, real sockets, short intervals set through the config.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from frames_helpers import OP_PING, OP_PONG, Closed, RawSocket, frame

from server.app import HypertabServer
from server.config import Config
from server.hub.keepalive import keepalive_for
from server.secrets import generate_key_file

INTERVAL = 0.2
TIMEOUT = 0.4


@pytest.fixture
async def pinging_hub(tmp_path: Path) -> AsyncIterator[tuple[HypertabServer, str]]:
    data = tmp_path / "data"
    data.mkdir()
    generate_key_file(data / "master.keys")
    config = Config(
        data_dir=data, port=0, keepalive_interval_s=INTERVAL, keepalive_timeout_s=TIMEOUT
    )
    server = HypertabServer(config)
    server.admission.enabled = False
    await server.start()
    try:
        _, issued = await server.services.lifecycle.create_tenant("acme", now=time.time())
        yield server, issued.secret
    finally:
        await server.stop()


async def _next_control(sock: RawSocket, timeout: float = 10.0) -> tuple[int, bytes]:
    while True:
        opcode, payload = await sock.recv_frame(timeout)
        if opcode in (OP_PING, OP_PONG):
            return opcode, payload


async def test_an_answering_client_is_pinged_every_interval_and_stays_open(
    pinging_hub: tuple[HypertabServer, str],
) -> None:
    server, key = pinging_hub
    sock = await RawSocket.open(server.port, key)
    await sock.recv()  # welcome
    started = time.monotonic()
    pings = 0
    while pings < 6:  # more pings than one timeout lasts: answering keeps it open
        opcode, payload = await _next_control(sock)
        assert opcode == OP_PING
        pings += 1
        await sock.send(frame(OP_PONG, payload))
    elapsed = time.monotonic() - started
    # Six pings, an interval apart (give or take a tick), not a burst of them.
    assert elapsed >= 4 * INTERVAL
    wheel = keepalive_for(INTERVAL, TIMEOUT)
    assert len(wheel) == 1
    sock.writer.close()


async def test_a_client_that_stops_answering_is_closed_with_1011(
    pinging_hub: tuple[HypertabServer, str],
) -> None:
    server, key = pinging_hub
    answering = await RawSocket.open(server.port, key)
    await answering.recv()
    silent = await RawSocket.open(server.port, key)
    await silent.recv()
    code: int | None = None
    pinged = 0

    async def answer_forever() -> None:
        while True:
            opcode, payload = await _next_control(answering)
            if opcode == OP_PING:
                await answering.send(frame(OP_PONG, payload))

    answerer = asyncio.create_task(answer_forever())
    try:
        while True:  # read, never answer
            try:
                opcode, _ = await silent.recv_frame(timeout=10.0)
            except Closed as closed:
                code = closed.code
                break
            pinged += opcode == OP_PING
        assert code == 1011
        assert pinged >= 1
        # The one that answers is still open, and still in the wheel; the silent one left.
        assert not answerer.done()
        wheel = keepalive_for(INTERVAL, TIMEOUT)
        for _ in range(100):
            if len(wheel) == 1:
                break
            await asyncio.sleep(0.05)
        assert len(wheel) == 1
    finally:
        answerer.cancel()
        answering.writer.close()
        silent.writer.close()


async def test_closed_connections_leave_the_wheel(
    pinging_hub: tuple[HypertabServer, str],
) -> None:
    server, key = pinging_hub
    socks: list[Any] = []
    for _ in range(20):
        sock = await RawSocket.open(server.port, key)
        await sock.recv()
        socks.append(sock)
    wheel = keepalive_for(INTERVAL, TIMEOUT)
    assert len(wheel) == 20
    for sock in socks:
        sock.writer.close()
    for _ in range(100):
        if len(wheel) == 0:
            break
        await asyncio.sleep(0.05)
    assert len(wheel) == 0


async def test_a_large_slot_is_pinged_in_chunks_with_the_loop_free_between() -> None:
    """300 connections due at one tick: pinged PING_CHUNK at a time, other callbacks (a
    revocation, say) run between the chunks, and each connection is pinged once."""
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import ServerConnection, serve

    from server.hub.keepalive import PING_CHUNK, Keepalive

    count = 300
    opened: list[ServerConnection] = []

    async def hold(conn: ServerConnection) -> None:
        opened.append(conn)
        await conn.wait_closed()

    class Counting(Keepalive):
        __slots__ = ("pinged",)

        def _ping(self, conn: Any, tick: int) -> None:
            self.pinged += 1
            super()._ping(conn, tick)

    async with serve(hold, "127.0.0.1", 0, ping_interval=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        clients = [
            await connect(f"ws://127.0.0.1:{port}", ping_interval=None) for _ in range(count)
        ]
        try:
            while len(opened) < count:
                await asyncio.sleep(0.01)
            wheel = Counting(asyncio.get_running_loop(), INTERVAL, None)
            wheel.pinged = 0
            for conn in opened:  # all at once: all in one slot
                wheel.add(conn)
            seen: set[int] = set()
            async with asyncio.timeout(5):
                while wheel.pinged < count:
                    seen.add(wheel.pinged)
                    await asyncio.sleep(0)  # one loop turn: runs between two chunks at most
            wheel.close()
            assert wheel.pinged == count
            between = {n for n in seen if 0 < n < count}
            assert between and all(n % PING_CHUNK == 0 for n in between), sorted(seen)
        finally:
            for client in clients:
                await client.close()
