"""Queries end to end: real hub, real sockets, the SDK (and raw frames where the SDK would
refuse to send something)."""

from __future__ import annotations

import asyncio
import json
import random
import time
from typing import Any

import pytest
from websockets.asyncio.client import connect

from client_sdk import Client, ServerError
from client_sdk.table import new_id
from protocol.codec import JSON
from protocol.limits import MAX_FILTER_DEPTH, MAX_FILTER_NODES, MAX_FILTER_VALUES
from protocol.ops import InsertRows, NewRow
from server.app import HypertabServer


async def _code(awaitable: Any) -> str:
    with pytest.raises(ServerError) as info:
        await awaitable
    return info.value.code


async def _insert(
    table: Any, rows: list[dict[str, Any]], after: list[str] | None = None
) -> list[str]:
    """Insert rows in one batch (each after the matching anchor, if given); their ids."""
    anchors = after or [None] * len(rows)
    new = [
        NewRow(id=new_id(), values=values, after=anchor)
        for values, anchor in zip(rows, anchors, strict=True)
    ]
    await table.apply([InsertRows(rows=new)])
    return [row.id for row in new if row.id is not None]


async def _people(client: Client) -> Any:
    table = await client.create_table(
        "People", [("Name", "text"), ("Age", "number"), ("Member", "boolean")]
    )
    await _insert(
        table,
        [
            {"Name": "Ada", "Age": 36, "Member": True},
            {"Name": "Grace", "Age": 45},
            {"Name": "alan", "Age": 41, "Member": False},
            {"Name": "Edsger"},
        ],
    )
    return table


async def test_query_by_name_filters_sorts_and_selects(hub_url: str, tenant: Any) -> None:
    _, key = tenant
    async with await Client.connect(hub_url, api_key=key) as client:
        people = await _people(client)
        async with await Client.connect(hub_url, api_key=key) as other:  # never subscribes
            page = await other.query(
                "People",
                where={
                    "op": "or",
                    "args": [
                        {"op": "gt", "column": "Age", "value": 40},
                        {"op": "starts_with", "column": "Name", "value": "AD"},
                    ],
                },
                order_by=[("Age", True)],
                columns=["Name"],
            )
        assert page.table == people.id and page.next is None
        assert [r.values for r in page.rows] == [
            {"Name": "Grace"},
            {"Name": "alan"},
            {"Name": "Ada"},
        ]
        # nulls last; not() also matches the null cell
        page = await client.query(
            people.id, where={"op": "not", "arg": {"op": "eq", "column": "Member", "value": True}}
        )
        assert [r.values.get("Name") for r in page.rows] == ["Grace", "alan", "Edsger"]
        names = [
            r.values["Name"] async for r in client.query_all("People", order_by="Name", page_size=1)
        ]
        assert names == ["Ada", "Edsger", "Grace", "alan"]  # code point order: upper case first
        wire_sort = [{"column": "Member", "desc": True}, ("Age", False)]  # JSON passed through
        names = [r.values["Name"] async for r in client.query_all("People", order_by=wire_sort)]
        assert names == ["Ada", "alan", "Grace", "Edsger"]
        bad_sort = client.query("People", order_by=[{"column": "Age", "descending": True}])
        assert await _code(bad_sort) == "invalid_filter"


async def test_paging_under_concurrent_inserts_neither_skips_nor_repeats(
    hub_url: str, tenant: Any
) -> None:
    _, key = tenant
    rng = random.Random(7)
    async with await Client.connect(hub_url, api_key=key) as writer:
        table = await writer.create_table("Log", [("n", "number"), ("tag", "text")])
        committed = await _insert(
            table, [{"n": rng.randrange(1000), "tag": rng.choice("ab")} for _ in range(400)]
        )
        paging = True
        background_batches = 0

        async def insert_meanwhile(other: Any) -> None:
            """Another client inserting small batches all over the table, all along."""
            nonlocal background_batches
            while paging:
                values = [{"n": rng.randrange(1000), "tag": "a"} for _ in range(3)]
                committed.extend(await _insert(other, values, after=rng.sample(committed, 3)))
                background_batches += 1

        async with (
            await Client.connect(hub_url, api_key=key) as reader,
            await Client.connect(hub_url, api_key=key) as background,
        ):
            task = asyncio.create_task(insert_meanwhile(await background.table(table.id)))
            try:
                for order_by in ([], [("n", False)], [("n", True), ("tag", False)]):
                    existing = set(committed)  # every row acknowledged before the first page
                    seen: list[str] = []
                    after = None
                    while True:
                        page = await reader.query(
                            table.id,
                            where={"op": "ne", "column": "tag", "value": "zzz"},
                            order_by=order_by,
                            limit=37,
                            after=after,
                        )
                        seen.extend(r.id for r in page.rows)
                        if page.next is None:
                            break
                        after = page.next
                        # Between two pages, rows land everywhere: before the cursor, after
                        # it, and with sort keys equal to rows already read.
                        values = [{"n": rng.randrange(1000), "tag": "b"} for _ in range(6)]
                        committed.extend(
                            await _insert(table, values, after=rng.sample(committed, 6))
                        )
                    assert len(seen) == len(set(seen)), "a row came twice"
                    assert existing <= set(seen), "a row that existed at the first page was skipped"
            finally:
                paging = False
                await task
        assert background_batches > 10  # the background inserts did run meanwhile


async def test_cursor_of_another_query_is_refused(hub_url: str, tenant: Any) -> None:
    _, key = tenant
    async with await Client.connect(hub_url, api_key=key) as client:
        people = await _people(client)
        first = await client.query(people.id, order_by=["Age"], limit=1)
        assert first.next is not None
        again = await client.query(people.id, order_by=["Age"], limit=1, after=first.next)
        assert [r.values["Name"] for r in again.rows] == ["alan"]
        assert await _code(client.query(people.id, limit=1, after=first.next)) == "invalid_cursor"
        where = {"op": "is_null", "column": "Member"}
        wrong = client.query(people.id, where=where, order_by=["Age"], after=first.next)
        assert await _code(wrong) == "invalid_cursor"
        bad = client.query(people.id, order_by=["Age"], after=first.next[:-3] + "!!!")
        assert await _code(bad) == "invalid_cursor"


HOSTILE_TABLE = "x'; DROP TABLE _ht_tables; --"
HOSTILE_COLUMN = 'Robert"); DROP TABLE t_1;--'
HOSTILE_VALUES = ["' OR 1=1 --", "100%", "a_b", '"); DELETE FROM _ht_oplog; --']


async def test_sql_looking_names_and_values_are_only_data(hub_url: str, tenant: Any) -> None:
    _, key = tenant
    async with await Client.connect(hub_url, api_key=key) as client:
        table = await client.create_table(HOSTILE_TABLE, [("c1", HOSTILE_COLUMN, "text")])
        await _insert(table, [{"c1": v} for v in [*HOSTILE_VALUES, "plain", "100", "axb"]])
        for value in HOSTILE_VALUES:
            page = await client.query(
                HOSTILE_TABLE, where={"op": "eq", "column": HOSTILE_COLUMN, "value": value}
            )
            assert [r.values["c1"] for r in page.rows] == [value]
        page = await client.query(
            HOSTILE_TABLE,
            where={
                "op": "or",
                "args": [
                    {"op": "contains", "column": HOSTILE_COLUMN, "value": "%"},
                    {"op": "starts_with", "column": "c1", "value": "a_"},
                ],
            },
        )
        assert sorted(r.values["c1"] for r in page.rows) == ["100%", "a_b"]  # no wildcards
        unknown = client.query(
            HOSTILE_TABLE, where={"op": "eq", "column": "c1' OR '1'='1", "value": "x"}
        )
        assert await _code(unknown) == "unknown_column"
        assert len((await client.query(HOSTILE_TABLE)).rows) == 7  # nothing was harmed
        assert [t.name for t in await client.list_tables()] == [HOSTILE_TABLE]


def _nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"op": "is_null", "column": "Name"}
    for _ in range(depth - 1):
        node = {"op": "not", "arg": node}
    return node


async def test_oversized_filters_get_clear_errors(hub_url: str, tenant: Any) -> None:
    _, key = tenant
    async with await Client.connect(hub_url, api_key=key) as client:
        people = await _people(client)

        async def code(where: dict[str, Any]) -> str:
            return await _code(client.query(people.id, where=where))

        assert len((await client.query(people.id, where=_nested(MAX_FILTER_DEPTH))).rows) == 4
        assert await code(_nested(MAX_FILTER_DEPTH + 1)) == "invalid_filter"
        leaf = {"op": "gt", "column": "Age", "value": 1}
        assert (
            await code({"op": "and", "args": [leaf] * (MAX_FILTER_NODES + 1)}) == "invalid_filter"
        )
        wide = {"op": "or", "args": [leaf] * 40}
        assert await code({"op": "and", "args": [wide, wide]}) == "invalid_filter"
        many = list(range(MAX_FILTER_VALUES))
        huge_in = {"op": "in", "column": "Age", "values": [*many, 1]}
        assert await code(huge_in) == "invalid_filter"
        full_in = {"op": "in", "column": "Age", "values": many}
        assert len((await client.query(people.id, where=full_in)).rows) == 3
        assert await code({"op": "and", "args": [full_in, leaf]}) == "invalid_filter"
        assert (
            await code({"op": "contains", "column": "Name", "value": "x" * 257}) == "invalid_filter"
        )
        # values of the wrong kind, null, json columns, unknown fields
        assert await code({"op": "eq", "column": "Age", "value": "36"}) == "invalid_filter"
        assert await code({"op": "eq", "column": "Name", "value": None}) == "invalid_filter"
        assert await code({"op": "contains", "column": "Age", "value": "3"}) == "invalid_filter"
        assert await code({"op": "eq", "column": "Age", "values": [1]}) == "invalid_filter"
        assert await code({"op": "drop", "column": "Age"}) == "invalid_filter"
        assert await code({"op": "lt", "column": "Nope", "value": 1}) == "unknown_column"


async def test_frames_the_sdk_cannot_build_are_refused_and_the_connection_lives(
    hub_url: str, tenant: Any
) -> None:
    _, key = tenant
    async with await Client.connect(hub_url, api_key=key) as client:
        people = await _people(client)
    headers = {"Authorization": f"Bearer {key}"}
    async with connect(hub_url, additional_headers=headers, subprotocols=[JSON]) as ws:  # type: ignore[list-item]
        assert json.loads(await ws.recv())["type"] == "welcome"
        # far past msgspec's own recursion guard (and json.dumps's: built as text)
        deep = '{"op": "not", "arg": ' * 5000 + '{"op": "is_null", "column": "Age"}' + "}" * 5000
        cases = [
            (deep, "bad_message"),
            ('{"op": "eq", "column": "Age", "value": 1, "sql": "x"}', "invalid_filter"),
            ('{"op": "in", "column": "Age", "values": [' + "1," * 1000 + "1]}", "invalid_filter"),
        ]
        for rid, (where, code) in enumerate(cases):
            frame = f'{{"type": "query", "id": {rid}, "table": "{people.id}", "where": {where}}}'
            await ws.send(frame)
            answer = json.loads(await ws.recv())
            # (the id of a frame too deep to read may be unreadable too)
            assert (answer["type"], answer["code"], answer.get("id", rid)) == ("error", code, rid)
        await ws.send('{"type": "ping", "id": 99}')
        assert json.loads(await ws.recv()) == {"type": "pong", "id": 99}


async def test_key_limited_to_one_table_cannot_query_another_by_name(
    hub: HypertabServer, hub_url: str, tenant: Any
) -> None:
    record, admin_key = tenant
    async with await Client.connect(hub_url, api_key=admin_key) as admin:
        mine = await admin.create_table("Mine", [("Name", "text")])
        await mine.insert({"Name": "visible"})
        theirs = await admin.create_table("Theirs", [("Name", "text")])
        await theirs.insert({"Name": "secret"})
    assert hub.control is not None
    issued = await hub.control.create_key(
        record.id, "limited", ["tables:read"], created_by="test", now=time.time(), tables=[mine.id]
    )
    async with await Client.connect(hub_url, api_key=issued.secret) as limited:
        page = await limited.query("Mine")
        assert page.table == mine.id and [r.values["Name"] for r in page.rows] == ["visible"]
        for ref in ("Theirs", theirs.id, "NoSuchTable"):  # one answer: no existence leak
            assert await _code(limited.query(ref)) == "forbidden"
        assert (
            await _code(
                limited.query("Theirs", where={"op": "contains", "column": "Name", "value": "s"})
            )
            == "forbidden"
        )


async def test_sdk_refuses_a_where_that_is_not_a_filter(hub_url: str, tenant: Any) -> None:
    _, key = tenant
    async with await Client.connect(hub_url, api_key=key) as client:
        people = await _people(client)
        with pytest.raises(ServerError) as info:
            await client.query(people.id, where={"column": "Age", "value": 1})
        assert info.value.code == "invalid_filter" and "op" in info.value.message
