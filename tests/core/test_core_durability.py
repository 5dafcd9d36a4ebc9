"""Nothing acknowledged is lost when the server process is killed with SIGKILL."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from serve_process import ServeProcess

from client_sdk import Client, HypertabError
from server.config import load_pepper
from server.control.plane import ControlPlane


async def make_tenant(data_dir: Path) -> str:
    plane = await ControlPlane.open(data_dir, pepper=load_pepper(data_dir), watch=False)
    try:
        _, issued = await plane.create_tenant("durable", now=time.time())
        return issued.secret
    finally:
        await plane.close()


async def all_rows(url: str, key: str, table: str) -> dict[str, dict[str, Any]]:
    async with await Client.connect(url, api_key=key, reconnect=False) as client:
        rows: dict[str, dict[str, Any]] = {}
        after = None
        while True:
            page = await client.query(table, after=after, limit=5000)
            rows.update({r.id: r.values for r in page.rows})
            if page.next is None:
                return rows
            after = page.next


async def writer(table: Any, prefix: str, stop: asyncio.Event, acked: dict[str, int]) -> None:
    """Insert rows one at a time until stopped; record each row once it is acked."""
    n = 0
    while not stop.is_set():
        row = f"{prefix}-{n}"
        n += 1
        try:
            await table.insert({"N": n}, row_id=row)
        except HypertabError:
            return
        acked[row] = n


async def test_acked_ops_survive_kill_9(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    key = await make_tenant(data_dir)
    server = ServeProcess(data_dir)
    server.start()
    acked: dict[str, int] = {}
    try:
        async with await Client.connect(server.url, api_key=key, reconnect=False) as client:
            await client.create_table("Ledger", [("N", "number")], table_id="ledger")
        for round_ in range(3):
            client = await Client.connect(server.url, api_key=key, reconnect=False)
            table = await client.table("ledger")
            stop = asyncio.Event()
            tasks = [
                asyncio.create_task(writer(table, f"r{round_}-{lane}", stop, acked))
                for lane in range(16)
            ]
            while len(acked) < 400 * (round_ + 1):
                await asyncio.sleep(0.005)
            server.kill()  # mid-stream: batches are in flight
            stop.set()
            await asyncio.gather(*tasks)
            await client.close()
            server.start()
            rows = await all_rows(server.url, key, "ledger")
            missing = [row for row in acked if row not in rows]
            assert not missing, f"round {round_}: {len(missing)} acked rows lost"
            assert all(rows[row] == {"N": n} for row, n in acked.items())
    finally:
        server.stop()
