"""A raw protocol client for tests that need to speak the wire directly (no SDK)."""

from __future__ import annotations

import asyncio
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from protocol.codec import MSGPACK, codec_for
from protocol.messages import ServerMessage, Welcome


class Wire:
    """One raw connection: send Structs or raw bytes, receive decoded server messages."""

    def __init__(self, conn: ClientConnection, encoding: str) -> None:
        self.conn = conn
        self.codec = codec_for(encoding)
        self.welcome: Welcome | None = None

    @classmethod
    async def open(cls, url: str, key: str, encoding: str = MSGPACK, **kw: Any) -> Wire:
        conn = await connect(
            url,
            additional_headers={"Authorization": f"Bearer {key}"},
            subprotocols=[encoding],  # type: ignore[list-item]
            compression=None,
            **kw,
        )
        wire = cls(conn, encoding)
        first = await wire.recv()
        assert isinstance(first, Welcome)
        wire.welcome = first
        return wire

    async def send(self, message: Any) -> None:
        await self.conn.send(self.codec.encode(message), text=not self.codec.binary)

    async def send_raw(self, data: bytes, *, text: bool = False) -> None:
        await self.conn.send(data, text=text)

    async def recv(self, timeout: float = 10.0) -> ServerMessage:
        data = await asyncio.wait_for(self.conn.recv(decode=False), timeout)
        return self.codec.decode_server(data)

    async def recv_until(self, kind: type, timeout: float = 10.0) -> list[ServerMessage]:
        """Messages up to and including the first of type ``kind``."""
        seen: list[ServerMessage] = []
        while True:
            message = await self.recv(timeout)
            seen.append(message)
            if isinstance(message, kind):
                return seen

    async def close(self) -> None:
        await self.conn.close()
