"""Server-side queries over 100,000 rows: time to the first page.

One process runs a ``HypertabServer`` and one SDK client. A table of ``--rows`` rows (text,
number, datetime and a formula column) is filled through the wire, then each query below is
timed as the SDK sees it (request sent to ``query_result`` decoded, ``--limit`` rows a page),
and again as the store alone (``TenantStore.query``: compile + SQLite + rows, no socket).
Median of ``--repeat`` runs each, in milliseconds:

* ``all``: no filter (reads the row-order index);
* ``broad``: ``n >= 500`` (half the rows match: the page fills after ~1,000 rows);
* ``selective``: ``n = 123`` (0.1 % match: a full scan; an index on ``n`` could answer it);
* ``selective_indexed``: the same query after ``CREATE INDEX`` on the number column, made
  here by hand on the file to show what an index would buy (the server builds none);
* ``by_id``: ``_id in [50 ids]`` (the primary-key index);
* ``contains``: ``name contains "zz9"`` (case-folded text match, a full scan);
* ``formula``: ``score > 1990`` on the formula column (a full scan);
* ``sorted``: no filter, ``order_by n desc`` (a full scan and a top-N sort);
* ``sorted_next``: the second page of ``sorted`` (its cursor).

Run: ``.venv/bin/python bench/query.py [--rows 100000] [--limit 500] [--repeat 9]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec

from client_sdk import Client
from protocol.messages import Query
from protocol.ops import ColumnDef, ColumnType, InsertRows, NewRow
from server.app import HypertabServer
from server.config import Config
from server.secrets import generate_key_file
from server.store.schema import tenant_path

COLUMNS = [
    ColumnDef(id="name", name="Name", type=ColumnType.TEXT),
    ColumnDef(id="n", name="N", type=ColumnType.NUMBER),
    ColumnDef(id="at", name="At", type=ColumnType.DATETIME),
    ColumnDef(id="score", name="Score", type=ColumnType.FORMULA, formula="{N} * 2"),
]


def queries(ids: list[str]) -> dict[str, dict[str, Any]]:
    """The timed queries, as SDK keyword arguments."""
    return {
        "all": {},
        "broad": {"where": {"op": "ge", "column": "N", "value": 500}},
        "selective": {"where": {"op": "eq", "column": "N", "value": 123}},
        "by_id": {"where": {"op": "in", "column": "_id", "values": ids[::2000][:50]}},
        "contains": {"where": {"op": "contains", "column": "Name", "value": "zz9"}},
        "formula": {"where": {"op": "gt", "column": "Score", "value": 1990}},
        "sorted": {"order_by": [("N", True)]},
    }


def _wire(kwargs: dict[str, Any], table: str, limit: int, after: str | None) -> Query:
    order = [{"column": c, "desc": d} for c, d in kwargs.get("order_by", [])]
    fields = {"where": kwargs.get("where"), "order_by": order, "after": after, "limit": limit}
    return msgspec.convert({"type": "query", "id": 1, "table": table, **fields}, Query)


async def _median_ms(run: Callable[[], Awaitable[object]], repeat: int) -> float:
    await run()  # warm: page cache, statement cache
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        await run()
        samples.append(time.perf_counter() - start)
    return round(statistics.median(samples) * 1e3, 2)


async def fill(client: Client, rows: int, rng: random.Random) -> tuple[str, list[str]]:
    """A table of ``rows`` random rows, written in batches of 1,000; its id and row ids."""
    table = await client.create_table("Big", COLUMNS)
    ids: list[str] = []
    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    for start in range(0, rows, 1000):
        batch = []
        for i in range(start, min(rows, start + 1000)):
            name = "".join(rng.choice(letters) for _ in range(12))
            at = f"2024-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T12:00:00"
            batch.append(
                NewRow(id=f"r{i}", values={"name": name, "n": rng.randrange(1000), "at": at})
            )
            ids.append(f"r{i}")
        await table.apply([InsertRows(rows=batch)])
    return table.id, ids


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--limit", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        generate_key_file(data / "master.keys")  # as `hypertab serve --demo` does
        server = HypertabServer(Config(data_dir=data, port=0))
        server.admission.enabled = False  # measuring queries, not the plan's rate limit
        await server.start()
        try:
            assert server.control is not None
            tenant, issued = await server.control.create_tenant("bench", now=time.time())
            url = f"ws://127.0.0.1:{server.port}/v1/ws"
            async with await Client.connect(url, api_key=issued.secret) as client:
                began = time.perf_counter()
                table, ids = await fill(client, args.rows, rng)
                fill_s = time.perf_counter() - began
                cases = queries(ids)
                sdk: dict[str, float] = {}
                store_ms: dict[str, float] = {}
                matched: dict[str, int] = {}

                async def measure(name: str, kwargs: dict[str, Any], after: str | None) -> None:
                    async def via_sdk() -> object:
                        return await client.query(table, limit=args.limit, after=after, **kwargs)

                    async def via_store() -> object:
                        async with server.services.stores.use(tenant.id) as store:
                            return await store.query(table, _wire(kwargs, table, args.limit, after))

                    page = await client.query(table, limit=args.limit, after=after, **kwargs)
                    matched[name] = len(page.rows)
                    sdk[name] = await _median_ms(via_sdk, args.repeat)
                    store_ms[name] = await _median_ms(via_store, args.repeat)

                for name, kwargs in cases.items():
                    await measure(name, kwargs, None)
                first = await client.query(table, limit=args.limit, **cases["sorted"])
                await measure("sorted_next", cases["sorted"], first.next)

                # What an index on the number column would buy (the server builds none).
                path = tenant_path(data, tenant.id)
                with sqlite3.connect(path) as conn:
                    (sql,) = conn.execute(
                        "SELECT sql FROM _ht_tables WHERE id=?", (table,)
                    ).fetchone()
                    column = next(
                        c
                        for c in json.loads(
                            conn.execute(
                                "SELECT columns FROM _ht_tables WHERE id=?", (table,)
                            ).fetchone()[0]
                        )
                        if c[0] == "n"
                    )
                    conn.execute(f"CREATE INDEX bench_n ON {sql} ({column[3]})")
                await measure("selective_indexed", cases["selective"], None)
        finally:
            await server.stop()
    print(
        json.dumps(
            {
                "bench": "query",
                "rows": args.rows,
                "limit": args.limit,
                "fill_rows_per_s": round(args.rows / fill_s),
                "first_page_ms_sdk": sdk,
                "first_page_ms_store": store_ms,
                "rows_returned": matched,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
