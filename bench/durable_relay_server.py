"""The durable baseline for bench/fanout.py: a websockets relay that commits before it relays.

What a hand-written "durable broadcast" would do with the same stack as the hub and nothing
else: every frame a ``pub`` connection sends is appended to an aiosqlite op log (WAL,
``synchronous=NORMAL`` like the hub's default ``process`` durability) by one writer task
that takes every frame queued since its last commit into one transaction (group commit).
After COMMIT it sends the publisher one ``ack`` frame per edit and every ``sub`` connection
one frame per edit (``websockets.broadcast``). No auth, no decoding, no per-table state.
Run as ``python bench/durable_relay_server.py PORT_FILE DB_PATH``; it writes its port there.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiosqlite
import uvloop
from websockets.asyncio.server import ServerConnection, broadcast, serve

subscribers: set[ServerConnection] = set()
pending: asyncio.Queue[tuple[ServerConnection, bytes]] = asyncio.Queue()
ACK = b"ack"


async def committer(db: aiosqlite.Connection) -> None:
    """Group commit: everything queued since the last COMMIT goes in the next one."""
    while True:
        batch = [await pending.get()]
        while not pending.empty():
            batch.append(pending.get_nowait())
        await db.execute("BEGIN")
        await db.executemany("INSERT INTO ops (frame) VALUES (?)", [(f,) for _, f in batch])
        await db.execute("COMMIT")
        for ws, frame in batch:
            broadcast(subscribers, frame)
            broadcast((ws,), ACK)


async def handler(ws: ServerConnection) -> None:
    role = await ws.recv(decode=False)
    if role == b"sub":
        subscribers.add(ws)
        try:
            await ws.wait_closed()
        finally:
            subscribers.discard(ws)
        return
    async for frame in ws:
        assert isinstance(frame, bytes)
        pending.put_nowait((ws, frame))


async def main(port_file: Path, db_path: Path) -> None:
    db = await aiosqlite.connect(db_path, isolation_level=None)
    await db.execute("PRAGMA journal_mode=WAL")
    await db.execute("PRAGMA synchronous=NORMAL")
    await db.execute("CREATE TABLE IF NOT EXISTS ops (seq INTEGER PRIMARY KEY, frame BLOB)")
    task = asyncio.create_task(committer(db))
    async with serve(handler, "127.0.0.1", 0, compression=None, max_size=2**20) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        port_file.write_text(str(port))  # noqa: ASYNC240 - once, before serving
        await asyncio.Future()
    task.cancel()


if __name__ == "__main__":
    uvloop.run(main(Path(sys.argv[1]), Path(sys.argv[2])))
