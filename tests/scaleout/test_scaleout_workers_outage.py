"""Redis down for OUTAGE seconds under ``serve --workers 2``, writers on both workers.

Every write is acknowledged all along (the broadcast is lost, the commit is not), /readyz
answers 503 from the workers while their broadcast connection is down, and once Redis is
back every subscriber, on either worker, has every version exactly once, in order.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from scaleout_process import (
    Supervised,
    Watcher,
    create_tenant,
    http_status,
    on_each_worker,
    private_redis,
    wait_for,
)

from client_sdk import Client
from client_sdk.table import Table
from protocol.ops import InsertRows, NewRow

OUTAGE = 10.0
"""Seconds Redis stays down: longer than the broker's longest reconnect backoff (2 s)."""
PACE = 0.05  # between one writer's writes: the two cores are shared


def _ready_is(port: int, status: int, times: int = 5) -> bool:
    """``times`` answers in a row are ``status`` (each request reaches either worker)."""
    return all(http_status(port, "/readyz") == status for _ in range(times))


async def test_writes_on_both_workers_survive_a_redis_outage_and_subscribers_catch_up(
    tmp_path: Path,
) -> None:
    redis = private_redis(tmp_path)
    data = tmp_path / "data"
    key = create_tenant(data, "acme")
    hub = Supervised(data, redis.url).start()
    clients: dict[int, list[Client]] = {}
    try:
        clients = await on_each_worker(
            hub, lambda: Client.connect(hub.url, api_key=key), lambda c: c._conn.local_address[1]
        )
        a, b = (group[0] for group in clients.values())
        tables = [await a.create_table("Log", [("n", "N", "number")]), await b.table("Log")]
        watchers = await on_each_worker(
            hub, lambda: Watcher.open(hub.url, key, "Log"), lambda w: w.conn.local_address[1]
        )
        acked: dict[str, int] = {}
        running = True

        async def write(table: Table, lane: str) -> None:
            n = 0
            while running:
                row = f"{lane}{n}"
                acked[row] = await table.apply([InsertRows(rows=[NewRow(id=row, values={"n": n})])])
                n += 1
                await asyncio.sleep(PACE)

        writers = [
            asyncio.create_task(write(t, lane)) for t, lane in zip(tables, "ab", strict=True)
        ]
        await wait_for(lambda: len(acked) >= 10)
        redis.stop()
        await wait_for(lambda: _ready_is(hub.port, 503))
        during = len(acked)
        await asyncio.sleep(OUTAGE)
        assert len(acked) > during  # still acknowledging while Redis is down
        redis.start()
        await wait_for(lambda: _ready_is(hub.port, 200))
        after = len(acked)
        await wait_for(lambda: len(acked) >= after + 10)  # and after it returned
        running = False
        async with asyncio.timeout(30):
            await asyncio.gather(*writers)
        versions = sorted(acked.values())
        assert len(set(versions)) == len(versions)  # each write acknowledged once
        for watcher in (w for group in watchers.values() for w in group):
            await watcher.until(versions[-1], timeout=30)
            await watcher.quiet()
            start = watcher.subscribed_at
            assert watcher.versions == list(range(start + 1, versions[-1] + 1))
            await watcher.close()
        page = await a.query("Log", limit=5000)
        assert {row.id for row in page.rows} == set(acked)
    finally:
        for group in clients.values():
            for client in group:
                await client.close()
        hub.kill()
        redis.stop()


pytestmark = pytest.mark.timeout(120)
