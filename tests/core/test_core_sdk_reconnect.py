"""The SDK rides out a server restart: it reconnects, resumes its replicas with only the
missed changes, and resends unacknowledged batches without applying any twice."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from netutil import free_port

from client_sdk import Client, HandshakeFailed
from server.app import HypertabServer
from server.config import Config
from server.secrets import generate_key_file


async def start(data_dir: Path, port: int) -> HypertabServer:
    server = HypertabServer(Config(data_dir=data_dir, port=port))
    server.admission.enabled = False
    await server.start()
    return server


async def first_start(tmp_path: Path, tenant: str) -> tuple[HypertabServer, int, str]:
    """A hub on a fresh data dir with one tenant: ``(server, port, the tenant's key)``; a
    restart is :func:`start` on ``tmp_path / "data"`` and the same port."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    generate_key_file(data_dir / "master.keys")
    port = free_port()
    server = await start(data_dir, port)
    assert server.control is not None
    _, issued = await server.control.create_tenant(tenant, now=time.time())
    return server, port, issued.secret


async def test_sdk_survives_a_restart(tmp_path: Path) -> None:
    server, port, key = await first_start(tmp_path, "restart")
    data_dir = tmp_path / "data"
    url = f"ws://127.0.0.1:{port}/v1/ws"
    writer = await Client.connect(url, api_key=key, max_backoff=0.2)
    watcher = await Client.connect(url, api_key=key, max_backoff=0.2)
    try:
        table = await writer.create_table("Log", [("N", "number")])
        watched = await watcher.table(table.id)
        await table.insert({"N": 0}, row_id="r0")
        await server.stop()  # 1001 going away: both clients start reconnecting
        # Edits made while the server is down wait in the SDK and are sent on reconnect.
        pending = [asyncio.create_task(table.insert({"N": i}, row_id=f"r{i}")) for i in (1, 2)]
        await asyncio.sleep(0.3)
        server = await start(data_dir, port)
        assert sorted(await asyncio.wait_for(asyncio.gather(*pending), 20)) == ["r1", "r2"]
        await table.insert({"N": 3}, row_id="r3")
        assert table.version == 5  # create, r0, r1, r2, r3: each applied exactly once
        await writer.ping()
        while watched.version < table.version:
            await asyncio.sleep(0.01)
        assert watched.rows == table.rows == {f"r{i}": {"N": i} for i in range(4)}
        assert writer.connections == 2 and watcher.connections == 2
        page = await watcher.query(table.id)
        assert [r.id for r in page.rows] == ["r0", "r1", "r2", "r3"]
    finally:
        await writer.close()
        await watcher.close()
        await server.stop()


class HangUp:
    """A listener that closes every connection it accepts before answering: what a client
    meets when a restarting server resets the handshakes waiting in its listen queue."""

    def __init__(self) -> None:
        self.accepted = 0
        self._server: asyncio.Server | None = None

    async def start(self, port: int) -> HangUp:
        async def hang_up(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepted += 1
            writer.close()

        self._server = await asyncio.start_server(hang_up, "127.0.0.1", port)
        return self

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


async def test_connect_to_a_peer_that_hangs_up_is_a_handshake_failure() -> None:
    port = free_port()
    peer = await HangUp().start(port)
    try:
        with pytest.raises(HandshakeFailed, match="handshake did not finish"):
            await Client.connect(f"ws://127.0.0.1:{port}/v1/ws", api_key="ht_live_x_y")
    finally:
        await peer.stop()


async def test_reconnecting_rides_out_handshakes_cut_off_mid_way(tmp_path: Path) -> None:
    server, port, key = await first_start(tmp_path, "hangup")
    data_dir = tmp_path / "data"
    url = f"ws://127.0.0.1:{port}/v1/ws"
    client = await Client.connect(url, api_key=key, max_backoff=0.2)
    try:
        table = await client.create_table("Log", [("N", "number")])
        await server.stop()
        peer = await HangUp().start(port)
        pending = asyncio.create_task(table.insert({"N": 1}, row_id="r1"))
        async with asyncio.timeout(20):
            while peer.accepted < 2:  # the SDK retried after a handshake that was cut off
                await asyncio.sleep(0.01)
        await peer.stop()
        server = await start(data_dir, port)
        assert await asyncio.wait_for(pending, 20) == "r1"
        assert table.rows == {"r1": {"N": 1}}
        assert client.connections == 2
    finally:
        await client.close()
        await server.stop()
