"""Broadcasts Redis lost are filled from the op log; nothing is delivered twice.

Two hubs in this process (so the test can read their counters) on one data dir and one
real Redis; the outage is real: Redis drops every pub/sub connection (``CLIENT KILL``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from scaleout_process import Watcher, http_status, metric, private_redis

from client_sdk import Client
from server.app import HypertabServer
from server.config import Config
from server.secrets import generate_key_file

EDITS = 30


@pytest.fixture
async def pair(tmp_path: Path, redis_url: str) -> AsyncIterator[tuple[HypertabServer, ...]]:
    data = tmp_path / "data"
    data.mkdir()
    generate_key_file(data / "master.keys")
    nodes = tuple(HypertabServer(Config(data_dir=data, port=0, redis_url=redis_url)) for _ in "ab")
    for node in nodes:
        node.admission.enabled = False
        await node.start()
    try:
        yield nodes
    finally:
        for node in nodes:
            await node.stop()


def url(node: HypertabServer) -> str:
    return f"ws://127.0.0.1:{node.port}/v1/ws"


async def test_edits_made_while_redis_dropped_the_subscriber_arrive_in_order(
    pair: tuple[HypertabServer, ...], redis_url: str
) -> None:
    a, b = pair
    assert a.control is not None
    _, issued = await a.control.create_tenant("acme", now=0.0)
    async with await Client.connect(url(a), api_key=issued.secret, reconnect=False) as client:
        table = await client.create_table("Items", [("N", "number")])
        watcher = await Watcher.open(url(b), issued.secret, "Items")
        start = watcher.subscribed_at
        admin = aioredis.Redis.from_url(redis_url)
        try:
            await admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        finally:
            await admin.aclose()
        for n in range(EDITS):  # B hears none of these until it is subscribed again
            await table.insert({"N": n})
        await watcher.until(start + EDITS)
        await watcher.quiet()
        assert watcher.versions == list(range(start + 1, start + EDITS + 1))
        assert b.relay.filled > 0  # some came from the op log, not from Redis
        await watcher.close()


async def _status(node: HypertabServer, want: int) -> None:
    async with asyncio.timeout(20):
        while await asyncio.to_thread(http_status, node.port, "/readyz") != want:
            await asyncio.sleep(0.1)


async def test_while_redis_is_down_not_ready_and_subscribers_catch_up_when_it_returns(
    tmp_path: Path,
) -> None:
    redis = private_redis(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    generate_key_file(data / "master.keys")
    a, b = (HypertabServer(Config(data_dir=data, port=0, redis_url=redis.url)) for _ in "ab")
    try:
        for node in (a, b):
            node.admission.enabled = False
            await node.start()
        assert a.control is not None
        _, issued = await a.control.create_tenant("acme", now=0.0)
        async with await Client.connect(url(a), api_key=issued.secret, reconnect=False) as c:
            table = await c.create_table("Items", [("N", "number")])
            watcher = await Watcher.open(url(b), issued.secret, "Items")
            start = watcher.subscribed_at
            await _status(b, 200)
            redis.stop()
            await _status(b, 503)
            for n in range(EDITS):  # committed and acked; their broadcasts are lost
                await table.insert({"N": n})
            redis.start()
            await watcher.until(start + EDITS)  # B caught up from the op log
            await watcher.quiet()
            assert watcher.versions == list(range(start + 1, start + EDITS + 1))
            assert b.relay.filled > 0  # from the op log: Redis lost them
            fills = await asyncio.to_thread(metric, b.port, "hypertab_broadcast_gap_fills_total")
            assert fills == b.relay.filled
            await _status(b, 200)
            await watcher.close()
    finally:
        for node in (b, a):
            await node.stop()
        redis.stop()
