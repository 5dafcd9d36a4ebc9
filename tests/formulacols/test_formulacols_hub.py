"""Formula columns and custom functions end to end: real hub, real sockets, the SDK."""

from __future__ import annotations

import time
from typing import Any

import pytest

from client_sdk import Client, ServerError, Table
from protocol.messages import Change
from protocol.ops import (
    AddColumn,
    ColumnDef,
    ColumnType,
    DropColumn,
    RenameColumn,
    SetFormula,
    UpdateCells,
)
from server.app import HypertabServer
from server.config import Config


def formula(cid: str, text: str, name: str | None = None) -> ColumnDef:
    """A formula column definition."""
    return ColumnDef(id=cid, name=name or cid, type=ColumnType.FORMULA, formula=text)


ITEMS = [
    ("Price", "number"),
    ("Qty", "number"),
    ("Name", "text"),
    formula("Total", "{Price} * {Qty}"),
    formula("Share", "{Qty} / SUM({Qty})"),
    formula("Label", "UPPER({Name})"),
]


async def changes_since(hub: Any, tenant: str, table: str, version: int) -> list[Change]:
    """The committed changes after ``version``, as broadcast (from the op log)."""
    async with hub.stores.use(tenant) as store:
        replay = await store.since(table, version)
    assert replay is not None
    return list(replay[1])


def computed_ops(change: Change) -> dict[str, dict[str, Any]]:
    """Row id -> cells of the ``update_cells`` ops in a change."""
    out: dict[str, dict[str, Any]] = {}
    for op in change.ops:
        if isinstance(op, UpdateCells):
            out.setdefault(op.row, {}).update(op.values)
    return out


async def synced(client: Client, table: Table, version: int) -> None:
    """Wait until ``table``'s replica reached ``version`` (a ping round trip per check)."""
    for _ in range(200):
        if table.version >= version:
            return
        await client.ping()
    raise AssertionError(f"replica stuck at {table.version} < {version}")


async def test_insert_edit_and_aggregate_recompute(hub: Any, hub_url: str, tenant: Any) -> None:
    record, key = tenant
    async with (
        await Client.connect(hub_url, api_key=key) as a,
        await Client.connect(hub_url, api_key=key, encoding="hypertab.v1.json") as b,
    ):
        items = await a.create_table("Items", ITEMS)
        r1 = await items.insert({"Price": 2, "Qty": 3, "Name": "ada"})
        assert items.rows[r1] == {
            "Price": 2,
            "Qty": 3,
            "Name": "ada",
            "Total": 6,
            "Share": 1,
            "Label": "ADA",
        }
        r2 = await items.insert({"Price": 1.5, "Qty": 1, "Name": "bob"})
        assert items.rows[r1]["Share"] == 0.75
        assert items.rows[r2]["Share"] == 0.25
        assert items.rows[r2]["Total"] == 1.5

        # An edit of Price recomputes Total in that row only: nothing else is broadcast.
        before = items.version
        v = await items.update(r1, {"Price": 5})
        (change,) = await changes_since(hub, record.id, items.id, before)
        assert change.version == v
        assert computed_ops(change) == {r1: {"Price": 5, "Total": 15}}
        assert items.rows[r1]["Total"] == 15

        # An edit of Qty: Total in that row, Share (an aggregate) in every row.
        before = items.version
        await items.update(r2, {"Qty": 3})
        (change,) = await changes_since(hub, record.id, items.id, before)
        assert computed_ops(change) == {
            r2: {"Qty": 3, "Total": 4.5, "Share": 0.5},
            r1: {"Share": 0.5},
        }
        # Deleting a row changes the aggregate in the others.
        await items.delete(r2)
        assert items.rows[r1]["Share"] == 1

        # The other client's replica (JSON encoding) converges, computed values included.
        tb = await b.table("Items")
        await synced(b, tb, items.version)
        assert tb.rows == items.rows
        r3 = await tb.insert({"Price": 1, "Qty": 1, "Name": "cy"})
        await synced(a, items, tb.version)
        assert items.rows == tb.rows
        assert items.rows[r3]["Share"] == 0.25


async def test_cycles_refused_and_formula_columns_read_only(hub_url: str, tenant: Any) -> None:
    _, key = tenant
    async with await Client.connect(hub_url, api_key=key) as client:
        t = await client.create_table(
            "T", [("A", "number"), formula("B", "{A} + 1"), formula("C", "{B} * 2")]
        )
        row = await t.insert({"A": 1})
        assert t.rows[row] == {"A": 1, "B": 2, "C": 4}
        version = t.version

        with pytest.raises(ServerError) as err:
            await t.apply([SetFormula(column="B", formula="{C} - 1")])
        assert err.value.code == "formula_error"
        assert err.value.op_index == 0
        assert "cycle" in str(err.value)
        with pytest.raises(ServerError) as err:
            await t.apply(
                [UpdateCells(row=row, values={"A": 7}), SetFormula(column="B", formula="{B}")]
            )
        assert err.value.code == "formula_error"
        assert err.value.op_index == 1
        with pytest.raises(ServerError) as err:
            await t.apply([AddColumn(column=formula("D", "{Nope} + 1"))])
        assert err.value.code == "formula_error"
        with pytest.raises(ServerError) as err:
            await t.apply([SetFormula(column="B", formula="1 +* 2")])
        assert err.value.code == "formula_error"
        with pytest.raises(ServerError) as err:
            await t.update(row, {"B": 5})
        assert err.value.code == "read_only"
        with pytest.raises(ServerError) as err:  # a formula still reads A
            await t.apply([DropColumn(column="A")])
        assert err.value.code == "formula_error"
        await client.ping()
        assert t.version == version  # nothing applied
        assert t.rows[row] == {"A": 1, "B": 2, "C": 4}


async def test_rename_keeps_formulas_working(hub_url: str, tenant: Any) -> None:
    _, key = tenant
    async with await Client.connect(hub_url, api_key=key) as client:
        t = await client.create_table(
            "T", [("A", "number"), formula("B", "{A} * 10 + SUM({ a })"), formula("C", "{B}+1")]
        )
        row = await t.insert({"A": 1})
        await t.apply([RenameColumn(column="A", name="Amount}")])
        assert t.replica.columns["B"].formula == "{Amount}}} * 10 + SUM({Amount}}})"
        await t.apply([RenameColumn(column="B", name="Base")])
        assert t.replica.columns["C"].formula == "{Base}+1"
        await t.update(row, {"A": 2})
        assert t.rows[row] == {"A": 2, "B": 22, "C": 23}
        # A name with surrounding spaces is referable, and the formulas keep recomputing.
        await t.apply([RenameColumn(column="A", name="  Amount ")])
        assert t.replica.columns["B"].formula == "{  Amount } * 10 + SUM({  Amount })"
        await t.update(row, {"A": 7})
        assert t.rows[row] == {"A": 7, "B": 77, "C": 78}


async def test_hostile_formulas_end_as_error_values(hub_url: str, tenant: Any) -> None:
    _, key = tenant
    async with (
        await Client.connect(hub_url, api_key=key) as attacker,
        await Client.connect(hub_url, api_key=key) as bystander,
    ):
        await attacker.functions.define("LOOP(n) = IF(n <= 0, 0, 1 + LOOP(n - 1))")
        await attacker.functions.define("BOOM(n) = BOOM(n) + BOOM(n)")
        t = await attacker.create_table(
            "Evil",
            [
                ("N", "number"),
                formula("pow", "9^(9^9)"),
                formula("rept", 'REPT("x", 10^9)'),
                formula("imp", '__import__("os")'),
                formula("ev", 'eval("1")'),
                formula("cls", "__class__"),
                formula("loop", "LOOP(100000)"),
                formula("boom", "BOOM({N})"),
                formula("div", "1 / {N}"),
                formula("ok", "IFERROR(1 / {N}, -1)"),
            ],
        )
        # Deep nesting is refused when set (2,000 levels fit the wire's 4,096-char bound;
        # the engine stops parsing at level 65).
        with pytest.raises(ServerError) as err:
            await t.apply([AddColumn(column=formula("deep", "(" * 2000 + "1" + ")" * 2000))])
        assert err.value.code == "formula_error"
        row = await t.insert({"N": 0})
        assert t.rows[row] == {
            "N": 0,
            "pow": "#NUM!",
            "rept": "#LIMIT!",
            "imp": "#NAME?",
            "ev": "#NAME?",
            "cls": "#NAME?",
            "loop": "#LIMIT!",
            "boom": "#LIMIT!",
            "div": "#DIV/0!",
            "ok": -1,
        }
        # The hub keeps serving others.
        other = await bystander.create_table("Fine", [("X", "number"), formula("Y", "{X}*2")])
        r = await other.insert({"X": 21})
        assert other.rows[r]["Y"] == 42


async def test_custom_functions_define_use_list_drop(hub_url: str, tenant: Any) -> None:
    _, key = tenant
    async with await Client.connect(hub_url, api_key=key) as client:
        defined = await client.functions.define("MARGIN(p, c) = (p - c) / p")
        assert defined.name == "MARGIN"
        t = await client.create_table(
            "Sales",
            [("Price", "number"), ("Cost", "number"), formula("M", "MARGIN({Price}, {Cost})")],
        )
        row = await t.insert({"Price": 10, "Cost": 4})
        assert t.rows[row]["M"] == 0.6
        # Redefining recomputes the formulas that reach it, broadcast as a change.
        await client.functions.define("HALF(x) = x / 2")
        await client.functions.define("MARGIN(p, c) = HALF(p - c)")
        await client.ping()
        assert t.rows[row]["M"] == 3
        await client.functions.define("HALF(x) = x / 3")  # reached through MARGIN
        await client.ping()
        assert t.rows[row]["M"] == 2
        assert [f.name for f in await client.functions.list()] == ["HALF", "MARGIN"]
        with pytest.raises(ServerError) as err:
            await client.functions.define("SUM(x) = x")
        assert err.value.code == "formula_error"
        with pytest.raises(ServerError) as err:
            await client.functions.drop("NOPE")
        assert err.value.code == "unknown_function"
        await client.functions.drop("margin")
        await client.ping()
        assert t.rows[row]["M"] == "#NAME?"
        assert [f.name for f in await client.functions.list()] == ["HALF"]


async def test_resume_and_restart_keep_formulas_and_functions(tmp_path: Any) -> None:
    server = HypertabServer(Config(data_dir=tmp_path / "data", port=0))
    await server.start()
    try:
        assert server.control is not None
        _, issued = await server.control.create_tenant("acme", now=time.time())
        key = issued.secret
        url = f"ws://127.0.0.1:{server.port}/v1/ws"
        async with await Client.connect(url, api_key=key) as client:
            await client.functions.define("DOUBLE(x) = x * 2")
            t = await client.create_table("T", [("A", "number"), formula("B", "DOUBLE({A})")])
            row = await t.insert({"A": 1})
            mark = t.version
            await t.update(row, {"A": 5})
            table_id = t.id
        # Resume from an older version: the replay carries the computed values.
        async with await Client.connect(url, api_key=key) as late:
            replay = await changes_since(server, _tenant_of(server), table_id, mark)
            assert computed_ops(replay[-1]) == {row: {"A": 5, "B": 10}}
            t2 = await late.table("T")
            assert t2.rows[row] == {"A": 5, "B": 10}
    finally:
        await server.stop()

    server = HypertabServer(Config(data_dir=tmp_path / "data", port=0))
    await server.start()
    try:
        url = f"ws://127.0.0.1:{server.port}/v1/ws"
        async with await Client.connect(url, api_key=key) as client:
            assert [f.name for f in await client.functions.list()] == ["DOUBLE"]
            t = await client.table("T")
            assert t.rows[row] == {"A": 5, "B": 10}
            await t.update(row, {"A": 7})
            assert t.rows[row]["B"] == 14
    finally:
        await server.stop()


def _tenant_of(server: HypertabServer) -> str:
    (tenant,) = list(server.stores._stores)
    return tenant
