"""The bare baseline for bench/fanout.py: a plain websockets + uvloop broadcast relay.

No auth, no storage, no decoding: a connection that says ``sub`` receives every frame any
``pub`` connection sends, one frame per edit per subscriber (``websockets.broadcast``).
Run as ``python bench/relay_server.py PORT_FILE``; it writes its port there. It is a helper
that ``bench/fanout.py`` starts, not a benchmark: ``make bench`` skips ``bench/*_server.py``.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import uvloop
from websockets.asyncio.server import ServerConnection, broadcast, serve

subscribers: set[ServerConnection] = set()


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
        broadcast(subscribers, frame)


async def main(port_file: Path) -> None:
    async with serve(handler, "127.0.0.1", 0, compression=None, max_size=2**20) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        port_file.write_text(str(port))  # noqa: ASYNC240 - once, before serving
        await asyncio.Future()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python bench/relay_server.py PORT_FILE (started by bench/fanout.py)")
    uvloop.run(main(Path(sys.argv[1])))
