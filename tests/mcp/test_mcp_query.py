"""The agent's reads and bulk edits on the hub's filters: where, order_by, columns, paging,
and the max_rows cap."""

from __future__ import annotations

from typing import Any

from mcp_helpers import call, calls, mcp_session

from client_sdk import Client


async def test_filters_sorting_paging_and_capped_bulk_edits(
    hub: Any, hub_url: str, tenant: Any
) -> None:
    record, key = tenant
    async with await Client.connect(hub_url, api_key=key) as admin:
        people = await admin.create_table("People", [("Name", "text"), ("Age", "number")])
        await people.insert_many({"Name": f"p{i:02}", "Age": i} for i in range(40))
        async with mcp_session(hub_url, key=key) as session:
            assert (await call(session, "describe_table", table="People"))["row_count"] == 40
            page = await call(
                session,
                "query_rows",
                table="People",
                where={
                    "op": "and",
                    "args": [
                        {"op": "ge", "column": "Age", "value": 10},
                        {"op": "starts_with", "column": "Name", "value": "p1"},
                    ],
                },
                order_by=[{"column": "Age", "desc": True}],
                columns=["Name"],
                limit=4,
            )
            assert [r["Name"] for r in page["rows"]] == ["p19", "p18", "p17", "p16"]
            assert set(page["rows"][0]) == {"_id", "Name"}
            query = {
                "table": "People",
                "where": {"op": "ge", "column": "Age", "value": 10},
                "order_by": [{"column": "Age", "desc": True}],
                "limit": 20,
            }
            first = await call(session, "query_rows", **query)
            rest = await call(session, "query_rows", **query, after=first["next"])
            assert [r["Age"] for r in first["rows"] + rest["rows"]] == list(range(39, 9, -1))
            assert "next" not in rest
            bad = await call(
                session,
                "query_rows",
                table="People",
                where={"op": "eq", "column": "Nope", "value": 1},
            )
            assert bad["error"]["code"] == "unknown_column"

            old = {"op": "ge", "column": "Age", "value": 30}
            capped = await call(
                session,
                "update_rows",
                table="People",
                where=old,
                values={"Name": "old"},
                max_rows=5,
            )
            assert capped["error"]["code"] == "too_many_rows"
            assert "old" not in {r["Name"] for r in people.records()}
            done = await call(
                session, "update_rows", table="People", where=old, values={"Name": "old"}
            )
            assert done["updated"] == 10
            gone = await call(
                session,
                "delete_rows",
                table="People",
                where={"op": "eq", "column": "Name", "value": "old"},
            )
            assert gone["deleted"] == 10
            both = await call(session, "delete_rows", table="People", ids=["a"], where=old)
            assert both["error"]["code"] == "bad_arguments"
        assert len(people.rows) == 30
    assert [c[1:] for c in calls(hub, record.id)] == [
        ("ok", None),
        ("ok", None),
        ("ok", None),
        ("ok", None),
        ("error", "unknown_column"),
        ("error", "too_many_rows"),
        ("ok", None),
        ("ok", None),
        ("error", "bad_arguments"),
    ]
