"""Attacks across tenants and through ops (docs/security.md, OP-* and FX-*): a tenant's
broadcasts, batch ids, secrets and functions never reach or affect another tenant, and
hostile request fields stay data."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from attack_helpers import Wire, two_tenant_clients, two_tenants, ws_url

from client_sdk import ServerError
from protocol.messages import (
    Ack,
    Apply,
    Error,
    Ping,
    Pong,
    Presence,
    Query,
    QueryResult,
    Subscribe,
    Subscribed,
)
from protocol.ops import (
    AddColumn,
    ColumnDef,
    ColumnType,
    CreateTable,
    InsertRows,
    NewRow,
    UpdateCells,
)


def _create(table: str, client: str = "c", op: str = "o1") -> Apply:
    columns = [ColumnDef(id="n", name="N", type=ColumnType.TEXT)]
    return Apply(
        id=1, table=table, client=client, op=op, ops=[CreateTable(name="Sheet", columns=columns)]
    )


def _insert(table: str, value: str, *, rid: int, client: str = "c", op: str = "o2") -> Apply:
    rows = [NewRow(id="r1", values={"n": value})]
    return Apply(id=rid, table=table, client=client, op=op, ops=[InsertRows(rows=rows)])


async def _subscribe(wire: Wire, table: str, rid: int = 50) -> int:
    await wire.send(Subscribe(id=rid, table=table))
    while True:
        message = await wire.answer()
        if isinstance(message, Subscribed):
            return message.version


async def test_op03_broadcasts_never_cross_tenants_sharing_a_table_id(hub: Any) -> None:
    url, key_a, key_b = await two_tenants(hub)
    a, a_watch, b = (
        await Wire.open(url, key_a),
        await Wire.open(url, key_a),
        await Wire.open(url, key_b),
    )
    for wire in (a, b):  # the same table id in both tenants
        await wire.send(_create("shared"))
        assert isinstance(await wire.answer(), Ack)
    for wire in (a, a_watch, b):
        await _subscribe(wire, "shared")
    await a.send(Presence(table="shared", state={"cursor": "secret-of-a"}))
    await a.send(_insert("shared", "tenant A row", rid=2))
    assert isinstance(await a.answer(), Ack)
    seen = [await a_watch.recv() for _ in range(2)]  # A's other socket gets both
    assert {type(m).__name__ for m in seen} == {"PresenceEvent", "Changes"}
    await b.send(Ping(id=99))
    assert await b.recv() == Pong(id=99)  # nothing of A's arrived before it
    await asyncio.gather(a.close(), a_watch.close(), b.close())


async def test_op04_replayed_batch_ids_across_tenants_are_independent(hub: Any) -> None:
    url, key_a, key_b = await two_tenants(hub)
    a, b = await Wire.open(url, key_a), await Wire.open(url, key_b)
    await a.send(_create("t"))
    await a.send(_insert("t", "from A", rid=2))
    acks_a = [await a.answer() for _ in range(2)]
    assert [m.version for m in acks_a if isinstance(m, Ack)] == [1, 2]
    # B replays A's exact (client, op) ids on its own table of the same id: applied, not
    # "duplicate", and A's version or data never shows through.
    await b.send(_create("t"))
    await b.send(_insert("t", "from B", rid=2))
    acks_b = [await b.answer() for _ in range(2)]
    assert all(isinstance(m, Ack) and not m.duplicate for m in acks_b)
    await b.send(Query(id=3, table="t"))
    page = await b.answer()
    assert isinstance(page, QueryResult)
    assert [r.values for r in page.rows] == [{"n": "from B"}]
    # A's own resend is still recognised as A's
    await a.send(_insert("t", "from A", rid=4))
    again = await a.answer()
    assert isinstance(again, Ack) and again.duplicate and again.version == 2
    await asyncio.gather(a.close(), b.close())


@pytest.mark.parametrize(
    "cursor",
    ["' OR '1'='1", "0) UNION SELECT secret FROM _ht_secrets --", "\x00", "~" * 60_000, ""],
)
async def test_op11_hostile_query_cursor_is_inert(hub: Any, tenant: Any, cursor: str) -> None:
    _, key = tenant
    wire = await Wire.open(ws_url(hub), key)
    await wire.send(_create("t"))
    await wire.send(_insert("t", "kept", rid=2))
    for _ in range(2):
        assert isinstance(await wire.answer(), Ack)
    await wire.send(Query(id=3, table="t", after=cursor, limit=10))
    page = await wire.answer()
    assert isinstance(page, QueryResult | Error)
    if isinstance(page, QueryResult):  # rows after the cursor in byte order, nothing else
        assert all(r.order > cursor for r in page.rows)
        assert all(r.values == {"n": "kept"} for r in page.rows)
    else:  # over the cursor's length bound, or not a cursor of this query
        assert page.code in ("bad_message", "invalid_cursor")
    await wire.send(Query(id=4, table="t"))
    full = await wire.answer()
    assert isinstance(full, QueryResult) and [r.values for r in full.rows] == [{"n": "kept"}]
    await wire.close()


async def test_op17_secrets_never_cross_tenants(hub: Any) -> None:
    async with two_tenant_clients(hub) as (a, b):
        await a.secrets.set("OPENAI_KEY", "sk-alpha-0000000000000000000001", kind="ai_provider_key")
        with pytest.raises(ServerError) as info:
            await b.secrets.reveal("OPENAI_KEY")
        assert info.value.code == "secret_not_found"
        assert await b.secrets.list() == []
        with pytest.raises(ServerError) as info:
            await b.secrets.delete("OPENAI_KEY")
        assert info.value.code == "secret_not_found"
        await b.secrets.set("OPENAI_KEY", "sk-beta-00000000000000000000002", kind="ai_provider_key")
        assert await a.secrets.reveal("OPENAI_KEY") == "sk-alpha-0000000000000000000001"
        assert await b.secrets.reveal("OPENAI_KEY") == "sk-beta-00000000000000000000002"


async def test_fx10_a_recompute_pass_is_bounded_and_other_tenants_keep_working(hub: Any) -> None:
    hub.formulas.pass_steps = 20_000  # the default (5,000,000) costs seconds of CPU
    async with two_tenant_clients(hub) as (attacker, bystander):
        # about 200 steps per cell: a pass over 500 rows would need ~100,000
        await attacker.functions.define("SLOW(n) = IF(n <= 0, 0, 1 + SLOW(n - 1))")
        table = await attacker.create_table("Heavy", [("N", "number")])
        await table.apply([InsertRows(rows=[NewRow(values={"N": i}) for i in range(500)])])
        heavy = ColumnDef(id="Slow", name="Slow", type=ColumnType.FORMULA, formula="SLOW(20)")
        await table.apply([AddColumn(column=heavy)])
        values = [row.get("Slow") for row in table.rows.values()]
        assert values.count(20) > 0 and values.count("#LIMIT!") > 0
        assert values.count(20) + values.count("#LIMIT!") == 500
        mine = await bystander.create_table("Light", [("X", "number")])
        row = await mine.insert({"X": 1})
        await mine.update(row, {"X": 2})
        assert mine.rows[row] == {"X": 2}
        # and the attacker's own tenant keeps accepting edits after the pass
        first = next(iter(table.rows))
        await table.apply([UpdateCells(row=first, values={"N": -1})])


async def test_fx12_custom_functions_never_cross_tenants(hub: Any) -> None:
    async with two_tenant_clients(hub) as (a, b):
        await a.functions.define("LEAK(x) = x * 1000")
        assert [f.name for f in await b.functions.list()] == []
        with pytest.raises(ServerError) as info:
            await b.functions.drop("LEAK")
        assert info.value.code == "unknown_function"
        formula = ColumnDef(id="F", name="F", type=ColumnType.FORMULA, formula="LEAK({X})")
        table = await b.create_table(
            "B", [ColumnDef(id="X", name="X", type=ColumnType.NUMBER), formula]
        )
        row = await table.insert({"X": 2})
        assert table.rows[row]["F"] == "#NAME?"
        # B defining its own LEAK changes nothing in A
        await b.functions.define("LEAK(x) = 0 - x")
        ta = await a.create_table(
            "A", [ColumnDef(id="X", name="X", type=ColumnType.NUMBER), formula]
        )
        ra = await ta.insert({"X": 2})
        assert ta.rows[ra]["F"] == 2000
