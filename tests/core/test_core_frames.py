"""Large replies are split so that every frame stays under the 1 MiB frame limit."""

from __future__ import annotations

import asyncio
from typing import Any

from core_wire import Wire

from client_sdk import Client
from protocol.limits import MAX_FRAME_BYTES
from protocol.messages import Changes, Snapshot, Subscribe, Subscribed

BIG = "x" * 60_000


async def frames_until(wire: Wire, kind: type) -> list[tuple[int, Any]]:
    seen = []
    while True:
        data = await asyncio.wait_for(wire.conn.recv(decode=False), 20)
        message = wire.codec.decode_server(data)
        seen.append((len(data), message))
        if isinstance(message, kind):
            return seen


async def test_snapshot_query_and_changes_are_split(hub_url: str, tenant: Any) -> None:
    _, key = tenant
    async with await Client.connect(hub_url, api_key=key) as client:
        table = await client.create_table("Docs", [("Body", "text")])
        watcher = await Wire.open(hub_url, key)
        await watcher.send(Subscribe(id=1, table=table.id))
        await watcher.recv_until(Subscribed)
        # 40 edits of 60 kB committed close together: one group, more than 1 MiB of changes.
        await asyncio.gather(*(table.insert({"Body": BIG}, row_id=f"r{i:02}") for i in range(40)))
        received: list[tuple[int, Any]] = []
        while sum(len(m.changes) for _, m in received if isinstance(m, Changes)) < 40:
            received += await frames_until(watcher, Changes)
        assert all(size <= MAX_FRAME_BYTES for size, _ in received)
        versions = [c.version for _, m in received if isinstance(m, Changes) for c in m.changes]
        assert versions == list(range(2, 42))

        fresh = await Wire.open(hub_url, key)
        await fresh.send(Subscribe(id=2, table=table.id))
        snapshot = await frames_until(fresh, Subscribed)
        chunks = [(size, m) for size, m in snapshot if isinstance(m, Snapshot)]
        assert len(chunks) >= 3
        assert all(size <= MAX_FRAME_BYTES for size, _ in chunks)
        assert [m.last for _, m in chunks] == [False] * (len(chunks) - 1) + [True]
        assert [r.id for _, m in chunks for r in m.rows] == [f"r{i:02}" for i in range(40)]

        ids: list[str] = []
        after = None
        pages = 0
        while True:
            page = await client.query(table.id, after=after, limit=40)
            ids += [r.id for r in page.rows]
            pages += 1
            if page.next is None:
                break
            after = page.next
        assert ids == [f"r{i:02}" for i in range(40)]
        assert pages > 1
        await watcher.close()
        await fresh.close()
