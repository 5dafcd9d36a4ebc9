"""Writing frames to a connection without awaiting it, with a bound on what may queue.

The hub never awaits a subscriber: a frame is handed to the connection's transport at once
(as ``websockets.broadcast`` does), and a subscriber whose unsent bytes grow past the bound
is closed with ``SLOW_CONSUMER`` (4008) so that it cannot hold memory or slow anyone else.
It reconnects and resumes with ``since``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from protocol.errors import CloseCode

log = logging.getLogger(__name__)

SEND_BUFFER_LIMIT = 8 << 20
"""Unsent bytes a connection may hold before it is closed as a slow consumer (8 MiB)."""


class Outbox:
    """The write side of one WebSocket connection."""

    __slots__ = ("binary", "closing", "conn", "limit")

    def __init__(self, conn: ServerConnection, *, binary: bool, limit: int = SEND_BUFFER_LIMIT):
        self.conn = conn
        self.binary = binary
        self.limit = limit
        self.closing = False

    def write(self, frame: bytes) -> bool:
        """Queue ``frame`` for sending now; False if the connection is gone or was closed."""
        if self.closing:
            return False
        conn = self.conn
        if conn.protocol.state is not State.OPEN:
            return False
        if self.binary:
            conn.protocol.send_binary(frame)
        else:
            conn.protocol.send_text(frame)
        try:
            conn.send_data()
        except Exception:  # the transport failed; the reader side will see the close
            return False
        if conn.transport.get_write_buffer_size() > self.limit:
            self.close(CloseCode.SLOW_CONSUMER, "slow consumer: resume with since")
            return False
        return True

    def close(self, code: int, reason: str) -> None:
        """Close the connection in the background with ``code``."""
        if self.closing:
            return
        self.closing = True
        asyncio.get_running_loop().create_task(_close(self.conn, code, reason))


async def _close(conn: ServerConnection, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        await conn.close(code, reason)
