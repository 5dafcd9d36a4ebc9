"""Real websockets servers that speak the wire protocol as a test scripts them: for what a
Hypertab hub never sends, to see what a client (the Python SDK, the JS client) makes of it."""

from __future__ import annotations

from typing import Any

from websockets.asyncio.server import ServerConnection

from protocol.codec import Codec
from protocol.messages import (
    Change,
    Changes,
    ListTables,
    ServerLimits,
    Snapshot,
    Subscribe,
    Subscribed,
    TableInfo,
    TableList,
    Welcome,
)
from protocol.ops import InsertRows, NewRow

LOG = TableInfo(id="t1", name="Log", version=1)
"""The one table the peers know."""


async def send(conn: ServerConnection, codec: Codec, message: Any) -> None:
    """One message, as a binary or a text frame as the encoding wants."""
    data = codec.encode(message)
    await conn.send(data if codec.binary else data.decode())


def welcome(codec: Codec) -> Welcome:
    """The first message of a connection, with no rate limits."""
    limits = ServerLimits(
        max_frame_bytes=1 << 20, max_ops_per_batch=100, ops_per_minute=0, burst_per_second=0
    )
    return Welcome(session="s", tenant="t", subject="k", scopes=["read", "write"],
                   plan="free", limits=limits, encoding=codec.encoding)  # fmt: skip


def insert(version: int) -> Change:
    """The change at ``version``: row ``r<version>`` with ``n`` = the version."""
    row = NewRow(id=f"r{version}", values={"n": version}, order=f"a{version}")
    return Change(version=version, ops=[InsertRows(rows=[row])])


class SkipsAVersion:
    """After the client is live at version 1, sends version 3 alone (twice); answers a
    resubscription with ``since`` by replaying versions 2 and 3, as a hub would."""

    def __init__(self, codec: Codec) -> None:
        self.codec = codec
        self.resubscribed_since: list[int] = []

    async def __call__(self, conn: ServerConnection) -> None:
        codec = self.codec
        await send(conn, codec, welcome(codec))
        async for frame in conn:
            match codec.decode_client(frame):
                case ListTables(id=rid):
                    await send(conn, codec, TableList(id=rid, tables=[LOG]))
                case Subscribe(id=rid, since=None):
                    await send(conn, codec, Snapshot(id=rid, table=LOG, rows=[], last=True))
                    await send(conn, codec, Subscribed(id=rid, table=LOG.id, version=1))
                    for _ in range(2):  # version 2 is never sent live
                        await send(conn, codec, Changes(table=LOG.id, changes=[insert(3)]))
                case Subscribe(id=rid, since=since):
                    self.resubscribed_since.append(since)
                    replay = Changes(table=LOG.id, changes=[insert(2), insert(3)])
                    await send(conn, codec, replay)
                    await send(conn, codec, Subscribed(id=rid, table=LOG.id, version=3))
