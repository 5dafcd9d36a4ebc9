"""The SDK rides out a server restart: it reconnects, resumes its replicas with only the
missed changes, and resends unacknowledged batches without applying any twice."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from netutil import free_port

from client_sdk import Client
from server.app import HypertabServer
from server.config import Config
from server.secrets import generate_key_file


async def start(data_dir: Path, port: int) -> HypertabServer:
    server = HypertabServer(Config(data_dir=data_dir, port=port))
    server.admission.enabled = False
    await server.start()
    return server


async def test_sdk_survives_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    generate_key_file(data_dir / "master.keys")
    port = free_port()
    server = await start(data_dir, port)
    assert server.control is not None
    _, issued = await server.control.create_tenant("restart", now=time.time())
    url = f"ws://127.0.0.1:{port}/v1/ws"
    writer = await Client.connect(url, api_key=issued.secret, max_backoff=0.2)
    watcher = await Client.connect(url, api_key=issued.secret, max_backoff=0.2)
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
