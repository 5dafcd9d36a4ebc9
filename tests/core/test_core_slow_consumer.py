"""A subscriber that stops reading is disconnected; writers and other subscribers go on."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from core_wire import Wire
from websockets.exceptions import ConnectionClosed

from client_sdk import Client
from protocol.errors import CloseCode
from protocol.messages import Subscribe, Subscribed
from server.app import HypertabServer
from server.config import Config


async def test_slow_consumer_is_closed_and_others_are_not_affected(tmp_path: Path) -> None:
    server = HypertabServer(Config(data_dir=tmp_path / "data", port=0, send_buffer_bytes=256 << 10))
    server.admission.enabled = False  # a flood on purpose: fan-out is under test, not limits
    await server.start()
    try:
        assert server.control is not None
        _, issued = await server.control.create_tenant("slow", now=time.time())
        url, key = f"ws://127.0.0.1:{server.port}/v1/ws", issued.secret
        writer = await Client.connect(url, api_key=key)
        fast = await Client.connect(url, api_key=key)
        table = await writer.create_table("T", [("Text", "text")])
        row = await table.insert({"Text": ""})
        follower = await fast.table(table.id)
        slow = await Wire.open(url, key, max_queue=1)
        await slow.send(Subscribe(id=1, table=table.id))
        await slow.recv_until(Subscribed)
        # The slow client now stops reading while ~8 MB of changes are committed.
        payload = "x" * 8000
        for n in range(1000):
            await table.update(row, {"Text": f"{n}{payload}"})
        await writer.ping()
        while follower.version != table.version:
            await asyncio.sleep(0.01)
        assert follower.rows[row]["Text"].startswith("999")
        with pytest.raises(ConnectionClosed):
            while True:
                await slow.recv(timeout=30)
        # Disconnected as a slow consumer: it reads the 4008 close frame if it catches up
        # within the grace period after the bound was crossed, else the server has aborted
        # the connection and it sees 1006 (docs/protocol.md, section 7).
        assert server.metrics.slow_consumer_closes == 1
        assert slow.conn.close_code in (CloseCode.SLOW_CONSUMER, 1006)
        await writer.close()
        await fast.close()
    finally:
        await server.stop()
