"""The bare baseline for bench/fanout.py: a plain websockets + uvloop broadcast relay.

No auth, no storage, no decoding: a connection that says ``sub`` receives every frame any
``pub`` connection sends, one frame per edit per subscriber (``websockets.broadcast``).
Run as ``python bench/relay_server.py PORT_FILE``; it writes its port there.

``--welcome N`` makes it the bare handshake baseline of bench/handshake.py instead: every
connection is sent one N-byte binary frame (the size of the hub's ``welcome``) and then
waits for the client to close.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
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


def welcomer(size: int) -> Callable[[ServerConnection], Awaitable[None]]:
    frame = bytes(size)

    async def welcome(ws: ServerConnection) -> None:
        await ws.send(frame)
        await ws.wait_closed()

    return welcome


async def main(port_file: Path, welcome: int | None) -> None:
    serving = handler if welcome is None else welcomer(welcome)
    async with serve(serving, "127.0.0.1", 0, compression=None, max_size=2**20) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        port_file.write_text(str(port))  # noqa: ASYNC240 - once, before serving
        await asyncio.Future()


if __name__ == "__main__":
    if len(sys.argv) not in (2, 4):
        sys.exit(
            f"usage: {sys.argv[0]} PORT_FILE [--welcome BYTES]"
            "  (a helper of bench/fanout.py and bench/handshake.py, not a bench)"
        )
    size = int(sys.argv[3]) if sys.argv[2:3] == ["--welcome"] else None
    uvloop.run(main(Path(sys.argv[1]), size))
