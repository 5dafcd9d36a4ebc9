"""Two real ``hypertab serve`` processes on one data dir and one real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from scaleout_process import Hub, Watcher, create_tenant

from client_sdk import Client

EDITS = 50


@pytest.fixture
def hubs(tmp_path: Path, redis_url: str) -> Iterator[tuple[Hub, Hub, str]]:
    """Two hubs sharing a data dir (holding one tenant) and Redis; and the tenant's key."""
    data = tmp_path / "data"
    key = create_tenant(data, "acme")
    one, two = Hub(data, redis_url), Hub(data, redis_url)
    one.spawn(), two.spawn()
    try:
        one.wait_listening()
        two.wait_listening()
        yield one, two, key
    finally:
        one.stop()
        two.stop()


def consecutive(versions: list[int], start: int, end: int) -> bool:
    return versions == list(range(start + 1, end + 1))


async def test_edits_on_one_process_reach_subscribers_of_the_other_in_order(
    hubs: tuple[Hub, Hub, str],
) -> None:
    one, two, key = hubs
    async with await Client.connect(one.url, api_key=key, reconnect=False) as client:
        table = await client.create_table("Items", [("N", "number")])
        remote = await Watcher.open(two.url, key, "Items")
        local = await Watcher.open(one.url, key, "Items")
        start = remote.subscribed_at
        # Concurrent senders: commits group, broadcasts carry several versions each.
        await asyncio.gather(*(table.insert({"N": n}) for n in range(EDITS)))
        end = start + EDITS
        for watcher in (remote, local):
            await watcher.until(end)
            await watcher.quiet()
            assert consecutive(watcher.versions, max(start, watcher.subscribed_at), end)
            await watcher.close()
