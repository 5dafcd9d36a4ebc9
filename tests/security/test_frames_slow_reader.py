"""A client that asks for large answers and then stops reading is closed as a slow consumer.

Before: query pages, snapshots and replays waited for the socket without a deadline, so
such a client held its session, and the frames queued behind it, for as long as it kept
the TCP connection open (docs/security.md, open finding of the threat model review).
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest
from frames_helpers import RawSocket, eventually

from client_sdk import Client
from protocol.codec import JSON
from protocol.messages import Query
from protocol.ops import InsertRows, NewRow
from server.app import HypertabServer
from server.config import Config
from server.hub.outbox import SLOW_CONSUMER_GRACE_S


async def test_a_client_that_stops_reading_a_paced_answer_is_closed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = HypertabServer(Config(data_dir=tmp_path / "data", port=0, paced_send_timeout_s=1.0))
    server.admission.enabled = False
    await server.start()
    try:
        assert server.control is not None
        _, issued = await server.control.create_tenant("reader", now=time.time())
        url, key = f"ws://127.0.0.1:{server.port}/v1/ws", issued.secret
        async with await Client.connect(url, api_key=key) as writer:
            table = await writer.create_table("T", [("A", "text")], table_id="t")
            column = next(iter(table.replica.columns))
            rows = [NewRow(values={column: "x" * 900}) for _ in range(1000)]
            await writer.apply("t", [InsertRows(rows=rows)])
            slow = await RawSocket.open(server.port, key, (JSON,), rcvbuf=16 << 10)
            await slow.recv()  # welcome; from now on it reads nothing
            with caplog.at_level(logging.WARNING):
                for n in range(20):  # ~20 MB of answers, far beyond the socket buffers
                    await slow.send_message(Query(id=n, table="t", limit=1000))
                await eventually(lambda: len(server.registry) == 1, timeout=15.0)
            assert server.metrics.slow_consumer_closes == 1
            assert [r for r in caplog.records if r.getMessage() == "slow consumer closed"]
            await asyncio.sleep(SLOW_CONSUMER_GRACE_S + 0.5)
            assert await slow.close_code() is None  # aborted: the close frame never left
            await writer.ping()  # the writer was not affected
    finally:
        await server.stop()
