"""Per-op authorization end to end: scopes, table allowlists, and tenant isolation."""

from __future__ import annotations

import time
from typing import Any

import pytest
from identity_helpers import new_tenant

from client_sdk import Client, ServerError
from protocol.ops import AddColumn, ColumnDef, ColumnType, CreateTable, InsertRows, NewRow
from server.app import HypertabServer


async def _key(hub: HypertabServer, tenant: str, scopes: list[str], **kw: Any) -> str:
    assert hub.control is not None
    issued = await hub.control.create_key(
        tenant, "limited", scopes, created_by="test", now=time.time(), **kw
    )
    return issued.secret


async def _code(awaitable: Any) -> str:
    with pytest.raises(ServerError) as info:
        await awaitable
    return info.value.code


INSERT = [InsertRows(rows=[NewRow(values={"Name": "Mallory"})])]
NEW_COLUMN = [AddColumn(column=ColumnDef(id="evil", name="Evil", type=ColumnType.TEXT))]


async def test_read_only_key_reads_but_cannot_write(
    hub: HypertabServer, hub_url: str, tenant: Any
) -> None:
    record, admin_key = tenant
    async with await Client.connect(hub_url, api_key=admin_key) as admin:
        people = await admin.create_table("People", [("Name", "text")])
        await people.insert({"Name": "Ada"})
        reader_key = await _key(hub, record.id, ["tables:read"])
        async with await Client.connect(hub_url, api_key=reader_key) as reader:
            replica = await reader.table(people.id)
            assert [r["Name"] for r in replica.rows.values()] == ["Ada"]
            assert len((await reader.query(people.id)).rows) == 1
            assert await _code(reader.apply(people.id, INSERT)) == "forbidden"
            assert await _code(reader.apply(people.id, NEW_COLUMN)) == "forbidden"
            assert await _code(reader.apply("t2", [CreateTable(name="Mine")])) == "forbidden"
        # a writer without schema:write edits rows but not the schema
        writer_key = await _key(hub, record.id, ["tables:read", "tables:write"])
        async with await Client.connect(hub_url, api_key=writer_key) as writer:
            await writer.apply(people.id, INSERT)
            assert await _code(writer.apply(people.id, NEW_COLUMN)) == "forbidden"
            assert await _code(writer.apply("t3", [CreateTable(name="Mine")])) == "forbidden"
        assert len((await admin.query(people.id)).rows) == 2
        info = next(t for t in await admin.list_tables() if t.id == people.id)
        assert [c.name for c in info.columns] == ["Name"]


async def test_key_limited_to_table_x_cannot_touch_table_y(
    hub: HypertabServer, hub_url: str, tenant: Any
) -> None:
    record, admin_key = tenant
    async with await Client.connect(hub_url, api_key=admin_key) as admin:
        x = await admin.create_table("X", [("Name", "text")])
        y = await admin.create_table("Y", [("Name", "text")])
        await y.insert({"Name": "secret"})
        key = await _key(
            hub, record.id, ["tables:read", "tables:write", "schema:write"], tables=[x.id]
        )
        async with await Client.connect(hub_url, api_key=key) as limited:
            assert [t.id for t in await limited.list_tables()] == [x.id]
            await limited.apply(x.id, INSERT)
            assert len((await limited.query(x.id)).rows) == 1
            assert await _code(limited.table(y.id)) == "unknown_table"  # not even listed
            assert await _code(limited.query(y.id)) == "forbidden"
            assert await _code(limited.apply(y.id, INSERT)) == "forbidden"
            assert await _code(limited.apply(y.id, NEW_COLUMN)) == "forbidden"
        rows = (await admin.query(y.id)).rows
        assert [r.values["Name"] for r in rows] == ["secret"]


async def test_subscribe_by_id_to_a_table_outside_the_allowlist_is_forbidden(
    hub: HypertabServer, hub_url: str, tenant: Any
) -> None:
    from protocol.messages import Subscribe

    record, admin_key = tenant
    async with await Client.connect(hub_url, api_key=admin_key) as admin:
        x = await admin.create_table("X", [("Name", "text")])
        y = await admin.create_table("Y", [("Name", "text")])
        key = await _key(hub, record.id, ["tables:read"], tables=[x.id])
        async with await Client.connect(hub_url, api_key=key) as limited:
            code = await _code(limited.request(lambda rid: Subscribe(id=rid, table=y.id)))
            assert code == "forbidden"
            code = await _code(limited.request(lambda rid: Subscribe(id=rid, name="Y")))
            assert code == "forbidden"


async def test_tenant_a_credential_cannot_reach_tenant_b_table(
    hub: HypertabServer, hub_url: str, tenant: Any
) -> None:
    from protocol.messages import Subscribe

    _, key_a = tenant
    _, key_b = await new_tenant(hub, "bravo")
    async with await Client.connect(hub_url, api_key=key_b) as b:
        table_b = await b.create_table("Payroll", [("Name", "text")])
        await table_b.insert({"Name": "salary"})
        async with await Client.connect(hub_url, api_key=key_a) as a:
            assert table_b.id not in [t.id for t in await a.list_tables()]
            assert await _code(a.query(table_b.id)) == "unknown_table"
            sub = a.request(lambda rid: Subscribe(id=rid, table=table_b.id))
            assert await _code(sub) == "unknown_table"
            sub = a.request(lambda rid: Subscribe(id=rid, name="Payroll"))
            assert await _code(sub) == "unknown_table"
            assert await _code(a.apply(table_b.id, INSERT)) == "unknown_table"
        rows = (await b.query(table_b.id)).rows
        assert [r.values["Name"] for r in rows] == ["salary"]
