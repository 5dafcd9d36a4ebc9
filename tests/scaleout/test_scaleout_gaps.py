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
from protocol.ops import InsertRows, NewRow
from server.app import HypertabServer
from server.config import Config
from server.secrets import generate_key_file
from server.store.schema import Durability, tenant_path
from server.store.tenant import TenantStore

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


async def test_a_last_commit_whose_broadcast_never_came_still_reaches_subscribers(
    pair: tuple[HypertabServer, ...],
) -> None:
    """A process that dies between its COMMIT and the publish leaves a version that no later
    broadcast reveals when it was the last: the watermark round finds it in the database."""
    a, b = pair
    assert a.control is not None
    record, issued = await a.control.create_tenant("acme", now=0.0)
    async with await Client.connect(url(a), api_key=issued.secret, reconnect=False) as client:
        table = await client.create_table("Items", [("N", "number")])
        await table.insert({"N": 0})
        watcher = await Watcher.open(url(b), issued.secret, "Items")
        start = watcher.subscribed_at
        # The third writer: a real store on the tenant's file, committing with no broadcast
        # at all (the process that dies before its publish), and nothing written after it.
        silent = await TenantStore.open(
            record.id,
            tenant_path(a.config.data_dir, record.id),
            durability=Durability.PROCESS,
            on_commit=lambda *_: None,
        )
        try:
            insert = InsertRows(rows=[NewRow(id="late", values={table.column_id("N"): 1})])
            outcome = await silent.apply(table.id, "crashed", "op-1", [insert], by="k")
            assert outcome.version == start + 1
        finally:
            await silent.close()
        assert await watcher.until(start + 1, timeout=10) == [start + 1]
        await watcher.quiet()
        assert watcher.versions == [start + 1]
        assert b.relay.stalls >= 1 and b.relay.filled >= 1
        async with asyncio.timeout(10):  # on a too: its SDK client follows the table it made
            while "late" not in table.rows:
                await asyncio.sleep(0.05)
        assert table.rows["late"] == {table.column_id("N"): 1}
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
