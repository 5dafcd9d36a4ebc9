"""Retries and resumption: a resent batch is applied once; a returning subscriber gets
exactly what it missed, or a snapshot when the op log no longer reaches back."""

from __future__ import annotations

import sqlite3
from typing import Any

from core_wire import Wire

from client_sdk import Client
from protocol.messages import Ack, Apply, Changes, Snapshot, Subscribe, Subscribed
from protocol.ops import ColumnDef, ColumnType, CreateTable, InsertRows, NewRow, UpdateCells
from server.store.schema import tenant_path

NUMBER = [ColumnDef(id="n", name="N", type=ColumnType.NUMBER)]


async def test_resent_batch_is_acked_with_its_version_and_applied_once(
    hub_url: str, tenant: Any
) -> None:
    _, key = tenant
    wire = await Wire.open(hub_url, key)
    await wire.send(
        Apply(
            id=1, table="t", client="c1", op="create", ops=[CreateTable(name="T", columns=NUMBER)]
        )
    )
    insert = Apply(
        id=2,
        table="t",
        client="c1",
        op="op-7",
        ops=[InsertRows(rows=[NewRow(id="r1", values={"n": 1})])],
    )
    await wire.send(insert)
    acks = [m for m in await wire.recv_until(Ack) if isinstance(m, Ack)]
    while acks[-1].id != 2:
        acks += [m for m in await wire.recv_until(Ack) if isinstance(m, Ack)]
    first = acks[-1]
    await wire.close()  # the connection drops; the client does not know the ack arrived
    again = await Wire.open(hub_url, key)
    insert.id = 9
    await again.send(insert)
    ack = (await again.recv_until(Ack))[-1]
    assert isinstance(ack, Ack)
    assert (ack.version, ack.duplicate) == (first.version, True)
    await again.send(Subscribe(id=10, table="t"))
    snapshot = [m for m in await again.recv_until(Subscribed) if isinstance(m, Snapshot)]
    assert [r.id for r in snapshot[0].rows] == ["r1"]
    assert snapshot[0].table.version == 2
    await again.close()


async def test_sdk_resumes_with_exactly_the_missed_changes(hub_url: str, tenant: Any) -> None:
    _, key = tenant
    async with await Client.connect(hub_url, api_key=key) as writer:
        table = await writer.create_table("T", [("N", "number")])
        rows = [await table.insert({"N": 0}, row_id=f"r{i}") for i in range(3)]
        wire = await Wire.open(hub_url, key)
        await wire.send(Subscribe(id=1, table=table.id))
        await wire.recv_until(Subscribed)
        seen_version = table.version
        await wire.close()
        for n in range(25):  # missed while offline
            await table.update(rows[n % 3], {"N": n})
        back = await Wire.open(hub_url, key)
        await back.send(Subscribe(id=2, table=table.id, since=seen_version))
        messages = await back.recv_until(Subscribed)
        replayed = [c.version for m in messages if isinstance(m, Changes) for c in m.changes]
        assert replayed == list(range(seen_version + 1, seen_version + 26))
        assert not any(isinstance(m, Snapshot) for m in messages)
        await table.update(rows[0], {"N": 99})  # and live changes follow
        live = await back.recv_until(Changes)
        assert isinstance(live[-1], Changes)
        assert live[-1].changes[0].version == seen_version + 26
        await back.close()


async def test_snapshot_when_the_op_log_no_longer_reaches_back(
    hub: Any, hub_url: str, tenant: Any
) -> None:
    record, key = tenant
    async with await Client.connect(hub_url, api_key=key) as writer:
        table = await writer.create_table("T", [("N", "number")])
        row = await table.insert({"N": 0})
        for n in range(10):
            await table.update(row, {"N": n})
        # Prune the op log as retention would (a separate connection, as an operator might).
        with sqlite3.connect(tenant_path(hub.config.data_dir, record.id)) as db:
            db.execute("DELETE FROM _ht_oplog WHERE version <= 8")
        wire = await Wire.open(hub_url, key)
        await wire.send(Subscribe(id=1, table=table.id, since=3))
        messages = await wire.recv_until(Subscribed)
        snapshots = [m for m in messages if isinstance(m, Snapshot)]
        assert snapshots and snapshots[-1].last
        assert snapshots[0].rows[0].values == {"N": 9}
        await wire.close()


async def test_large_snapshot_arrives_in_chunks(hub_url: str, tenant: Any) -> None:
    _, key = tenant
    async with await Client.connect(hub_url, api_key=key) as writer:
        table = await writer.create_table("Big", [("N", "number"), ("Label", "text")])
        for start in range(0, 50_000, 1000):
            await table.apply(
                [
                    InsertRows(
                        rows=[
                            NewRow(id=f"r{i}", values={"N": i, "Label": f"row {i}"})
                            for i in range(start, start + 1000)
                        ]
                    )
                ]
            )
        await table.apply([UpdateCells(row="r0", values={"N": -1})])
        wire = await Wire.open(hub_url, key)
        await wire.send(Subscribe(id=1, table=table.id))
        messages = await wire.recv_until(Subscribed, timeout=30)
        chunks = [m for m in messages if isinstance(m, Snapshot)]
        assert len(chunks) == 25
        assert [c.last for c in chunks] == [False] * 24 + [True]
        ids = [r.id for c in chunks for r in c.rows]
        assert ids == [f"r{i}" for i in range(50_000)]
        assert chunks[0].rows[0].values["N"] == -1
        await wire.close()
