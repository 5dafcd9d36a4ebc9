"""A client that stops reading is dropped promptly, logged and counted.

Before: the 4008 close frame queued behind megabytes of unsent data, so the client never saw
it, and the server held the buffer until websockets' close timeout (10 s) ran out.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from frames_helpers import RawSocket, eventually

from client_sdk import Client
from protocol.codec import JSON
from protocol.messages import Subscribe, Subscribed
from server.app import HypertabServer
from server.config import Config
from server.hub.outbox import SLOW_CONSUMER_GRACE_S


async def test_a_client_that_stopped_reading_is_aborted_logged_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = HypertabServer(Config(data_dir=tmp_path / "data", port=0, send_buffer_bytes=256 << 10))
    server.admission.enabled = False  # a flood on purpose
    await server.start()
    try:
        assert server.control is not None
        _, issued = await server.control.create_tenant("slow", now=time.time())
        url, key = f"ws://127.0.0.1:{server.port}/v1/ws", issued.secret
        writer = await Client.connect(url, api_key=key)
        table = await writer.create_table("T", [("Text", "text")])
        row = await table.insert({"Text": ""})
        slow = await RawSocket.open(server.port, key, (JSON,), rcvbuf=16 << 10)
        await slow.recv()  # welcome
        await slow.send_message(Subscribe(id=1, table=table.id))
        while not isinstance(await slow.recv(), Subscribed):
            pass
        assert len(server.registry) == 2
        secret = "PAYLOAD-MARKER-" + "x" * 8000
        with caplog.at_level(logging.INFO):
            n = 0
            while server.metrics.slow_consumer_closes == 0:
                assert n < 3000, "the slow consumer was never detected"
                await table.update(row, {"Text": f"{n}{secret}"})
                n += 1
            detected = time.monotonic()
            await eventually(lambda: len(server.registry) == 1, timeout=8.0)
            gone_after = time.monotonic() - detected
        # Dropped after the grace, not after the 10 s close timeout.
        assert gone_after < SLOW_CONSUMER_GRACE_S + 5.0
        records = [r for r in caplog.records if r.getMessage() == "slow consumer closed"]
        assert len(records) == 1
        assert getattr(records[0], "unsent_bytes", 0) > 256 << 10
        assert all("PAYLOAD-MARKER" not in r.getMessage() for r in caplog.records)
        assert b"hypertab_slow_consumer_closes_total 1.0" in server.metrics.render()
        # What the client sees when it reads again: the data that had reached it, then the
        # connection ends without a close frame (1006 in WebSocket APIs).
        assert await slow.close_code() is None
        await writer.ping()  # the writer was not affected
        await writer.close()
    finally:
        await server.stop()
