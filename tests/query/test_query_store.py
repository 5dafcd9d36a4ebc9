"""The documented comparison rules, one case each, on a real tenant store (SQLite file)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from protocol.messages import Change, Query
from protocol.ops import ColumnDef, ColumnType, CreateTable, InsertRows, NewRow
from server.store import reader
from server.store.formulas import FormulaRuntime
from server.store.query import QueryError
from server.store.schema import Durability
from server.store.tenant import TenantStore

COLUMNS = [
    ColumnDef(id="name", name="Name", type=ColumnType.TEXT),
    ColumnDef(id="n", name="N", type=ColumnType.NUMBER),
    ColumnDef(id="at", name="At", type=ColumnType.DATETIME),
    ColumnDef(id="f", name="F", type=ColumnType.FORMULA, formula='IF({N} > 2, {N} * 2, "low")'),
    ColumnDef(id="big", name="Big", type=ColumnType.FORMULA, formula="{N} > 5"),
]
ROWS = {
    "r1": {"name": "STRASSE", "n": 10, "at": "2024-01-01T01:00:00+01:00"},
    "r2": {"name": "Éclair", "n": 1, "at": "2024-01-01T00:00:00"},
    "r3": {"name": "100%", "n": 3, "at": "2023-12-31T20:00:00-05:00"},
    "r4": {"name": "1000"},
}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[TenantStore]:
    runtime = FormulaRuntime()

    def on_commit(tenant: str, table: str, changes: list[Change]) -> None:
        pass

    opened = await TenantStore.open(
        "querystore01",
        tmp_path / "t.db",
        durability=Durability.PROCESS,
        on_commit=on_commit,
        check_formula=runtime.check,
        recompute=runtime.recompute,
    )
    rows = [NewRow(id=rid, values=values) for rid, values in ROWS.items()]
    ops: list[Any] = [CreateTable(name="T", columns=COLUMNS), InsertRows(rows=rows)]
    outcome = await opened.apply("t", "c", "o", ops, "tester")
    assert outcome.error is None
    yield opened
    await opened.close()


async def ids(store: TenantStore, **fields: Any) -> list[str]:
    request = msgspec.convert({"type": "query", "id": 1, "table": "t", **fields}, Query)
    page = await store.query("t", request)
    assert page is not None and not page.more
    return [row.id for row in page.rows]


def where(op: str, column: str, value: Any) -> dict[str, Any]:
    return {"where": {"op": op, "column": column, "value": value}}


async def test_datetimes_compare_and_sort_as_instants(store: TenantStore) -> None:
    assert await ids(store, **where("eq", "At", "2024-01-01")) == ["r1", "r2"]
    assert await ids(store, **where("gt", "At", "2024-01-01T00:00:00Z")) == ["r3"]
    # r3 is 01:00 UTC on Jan 1st; r1 and r2 tie (00:00 UTC) and keep their row order
    assert await ids(store, order_by=[{"column": "At", "desc": True}]) == ["r3", "r1", "r2", "r4"]


async def test_text_matching_ignores_case_and_has_no_wildcards(store: TenantStore) -> None:
    assert await ids(store, **where("contains", "Name", "ß")) == ["r1"]
    assert await ids(store, **where("starts_with", "Name", "éc")) == ["r2"]
    assert await ids(store, **where("contains", "Name", "%")) == ["r3"]
    assert await ids(store, **where("starts_with", "Name", "1_0")) == []
    assert await ids(store, **where("eq", "Name", "strasse")) == []  # eq is exact
    assert await ids(store, order_by=[{"column": "Name"}]) == [
        "r3",
        "r4",
        "r1",
        "r2",
    ]  # code points


async def test_formula_cells_compare_within_their_own_kind(store: TenantStore) -> None:
    # F: r1 20, r2 "low", r3 6, r4 "low"; Big: "TRUE" / "FALSE" text
    assert await ids(store, **where("gt", "F", 5)) == ["r1", "r3"]
    assert await ids(store, **where("lt", "F", "m")) == ["r2", "r4"]
    assert await ids(store, **where("ne", "F", 6)) == ["r1", "r2", "r4"]
    assert await ids(store, **where("eq", "Big", True)) == ["r1"]
    assert await ids(store, **where("contains", "F", "LO")) == ["r2", "r4"]
    assert await ids(store, order_by=[{"column": "F", "desc": True}]) == ["r2", "r4", "r1", "r3"]
    assert await ids(store, order_by=[{"column": "F"}]) == ["r3", "r1", "r2", "r4"]  # numbers first


async def test_nulls_fail_comparisons_but_not_negations_and_sort_last(store: TenantStore) -> None:
    assert await ids(store, **where("ne", "N", 1)) == ["r1", "r3"]
    negated = {"where": {"op": "not", "arg": {"op": "eq", "column": "N", "value": 1}}}
    assert await ids(store, **negated) == ["r1", "r3", "r4"]
    assert await ids(store, where={"op": "is_null", "column": "At"}) == ["r4"]
    assert await ids(store, where={"op": "in", "column": "N", "values": []}) == []
    assert await ids(store, order_by=[{"column": "N", "desc": True}]) == ["r1", "r3", "r2", "r4"]
    assert await ids(store, order_by=[{"column": "N"}]) == ["r2", "r3", "r1", "r4"]


async def test_columns_select_cells_and_a_dropped_table_reads_as_none(store: TenantStore) -> None:
    request = msgspec.convert(
        {"type": "query", "id": 1, "table": "t", "columns": ["N", "n", "_id"], "limit": 2}, Query
    )
    page = await store.query("t", request)
    assert page is not None and page.more
    assert [row.values for row in page.rows] == [{"n": 10}, {"n": 1}]
    assert await store.query("nope", request) is None


async def test_a_page_past_the_time_limit_is_stopped_and_the_store_goes_on(
    store: TenantStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [NewRow(id=f"x{i}", values={"name": f"é{i}"}) for i in range(1000)]
    assert (await store.apply("t", "c", "more", [InsertRows(rows=rows)], "tester")).error is None
    scan = where("contains", "Name", "zzz")  # non-ASCII cells: the case-folding function
    monkeypatch.setattr(reader, "QUERY_SECONDS", 0.0)
    with pytest.raises(QueryError) as info:
        await ids(store, **scan)
    assert info.value.code == "query_timeout"
    monkeypatch.undo()
    assert await ids(store, **scan) == []
    assert await ids(store, **where("eq", "N", 10)) == ["r1"]
