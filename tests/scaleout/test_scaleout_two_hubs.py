"""Two real ``hypertab serve`` processes on one data dir and one real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from scaleout_process import Hub, Watcher, create_tenant

from client_sdk import Client
from protocol.messages import Presence, PresenceEvent
from protocol.ops import ColumnDef, ColumnType, InsertRows, NewRow

EDITS = 50
LANES = 4
WRITES_PER_LANE = 25


@pytest.fixture(scope="module")
def hubs(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> Iterator[tuple[Hub, Hub, str]]:
    """Two hubs sharing a data dir (holding one tenant) and Redis; and the tenant's key.
    Shared by this module's tests (each uses a table of its own): starting is the cost."""
    data = tmp_path_factory.mktemp("two-hubs") / "data"
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


async def _write(table: Any, prefix: str, count: int, acked: dict[str, int]) -> None:
    for n in range(count):
        row = f"{prefix}-{n}"
        acked[row] = await table.apply([InsertRows(rows=[NewRow(id=row, values={"n": n})])])


async def test_both_processes_write_one_table_and_versions_stay_gap_free(
    hubs: tuple[Hub, Hub, str],
) -> None:
    one, two, key = hubs
    acked: dict[str, int] = {}
    async with (
        await Client.connect(one.url, api_key=key, reconnect=False) as c1,
        await Client.connect(two.url, api_key=key, reconnect=False) as c2,
    ):
        t1 = await c1.create_table("Shared", [("n", "N", "number")])
        t2 = await c2.table("Shared")  # created by the other process
        watchers = [await Watcher.open(hub.url, key, "Shared") for hub in (one, two)]
        start = max(w.subscribed_at for w in watchers)
        lanes = [
            _write(table, f"{name}{lane}", WRITES_PER_LANE, acked)
            for name, table in (("a", t1), ("b", t2))
            for lane in range(LANES)
        ]
        await asyncio.gather(*lanes)
        total = 2 * LANES * WRITES_PER_LANE
        assert len(acked) == total
        versions = sorted(acked.values())
        assert versions == list(range(start + 1, start + total + 1))  # distinct, gap-free
        for watcher in watchers:  # every subscriber, on either process, saw them in order
            await watcher.until(start + total)
            await watcher.quiet()
            assert watcher.versions == versions
            await watcher.close()
        page = await c2.query("Shared", limit=5000)
        assert {row.id for row in page.rows} == set(acked)
        assert {row.id: row.values for row in page.rows} == {
            row: {"n": int(row.split("-")[1])} for row in acked
        }


async def test_presence_reaches_subscribers_on_the_other_process(
    hubs: tuple[Hub, Hub, str],
) -> None:
    one, two, key = hubs
    async with await Client.connect(one.url, api_key=key, reconnect=False) as client:
        await client.create_table("Cursors", [("N", "number")])
    here = await Watcher.open(one.url, key, "Cursors")
    there = await Watcher.open(two.url, key, "Cursors")
    await here.conn.send(here.codec.encode(Presence(table=here.table, state={"row": "r1"})))
    async with asyncio.timeout(10):
        while True:
            message = await there.recv()
            if isinstance(message, PresenceEvent):
                break
    assert message.state == {"row": "r1"} and message.table == there.table
    await here.close()  # leaving is presence too: state null
    async with asyncio.timeout(10):
        while True:
            message = await there.recv()
            if isinstance(message, PresenceEvent):
                break
    assert message.state is None
    await there.close()


async def test_a_function_defined_through_one_process_computes_on_the_other(
    hubs: tuple[Hub, Hub, str],
) -> None:
    one, two, key = hubs
    async with (
        await Client.connect(one.url, api_key=key, reconnect=False) as c1,
        await Client.connect(two.url, api_key=key, reconnect=False) as c2,
    ):
        table = await c1.create_table(
            "Priced",
            [
                ("price", "Price", "number"),
                ColumnDef(id="twice", name="Twice", type=ColumnType.FORMULA,
                          formula="DOUBLE({Price})"),
            ],
        )  # fmt: skip
        await table.insert({"Price": 5}, row_id="before")  # process one: no DOUBLE yet
        await c2.functions.define("DOUBLE(x) = x * 2")
        await table.insert({"Price": 7}, row_id="after")  # computed by process one's writer
        page = await c1.query("Priced", limit=10)
        values = {row.id: row.values for row in page.rows}
        assert values["after"]["twice"] == 14
