"""Helpers for the frame-level security tests: a hand-rolled WebSocket client.

A library client cannot send what these tests need (invalid UTF-8 in a text frame, thousands
of ping frames in one write) or stop reading while the server writes, so
:class:`RawSocket` speaks RFC 6455 itself over a plain TCP stream: the upgrade request, masked
client frames, unmasked server frames.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from protocol.codec import JSON, codec_for
from protocol.messages import ServerMessage

OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x2, 0x8, 0x9, 0xA


def frame(opcode: int, payload: bytes = b"") -> bytes:
    """One final, masked client frame."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


class Closed(Exception):
    """The server sent a close frame (``code``) or dropped the connection (``code`` None)."""

    def __init__(self, code: int | None) -> None:
        super().__init__(f"closed with {code}")
        self.code = code


class RawSocket:
    """One WebSocket connection driven byte by byte."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, subprotocol: str | None
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.subprotocol = subprotocol
        self.codec = codec_for(subprotocol or JSON)

    @classmethod
    async def open(
        cls,
        port: int,
        key: str,
        subprotocols: tuple[str, ...] = (JSON,),
        *,
        rcvbuf: int | None = None,
    ) -> RawSocket:
        """Upgrade ``/v1/ws`` with a bearer header; ``rcvbuf`` shrinks the socket's receive
        buffer (a client that stops reading then fills up fast)."""
        sock = socket.socket()
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        # A small stream limit: asyncio stops reading the socket once 2 x limit bytes wait
        # unread, so a test that stops calling recv really stops reading.
        reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 15)
        nonce = base64.b64encode(os.urandom(16)).decode()
        lines = [
            "GET /v1/ws HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {nonce}",
            "Sec-WebSocket-Version: 13",
            f"Authorization: Bearer {key}",
        ]
        if subprotocols:
            lines.append(f"Sec-WebSocket-Protocol: {', '.join(subprotocols)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        status = head.split(b" ", 2)[1]
        assert status == b"101", head
        chosen = None
        for line in head.decode().split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "sec-websocket-protocol":
                chosen = value.strip()
        return cls(reader, writer, chosen)

    async def send(self, data: bytes) -> None:
        """Write raw bytes (frames made with :func:`frame`)."""
        self.writer.write(data)
        await self.writer.drain()

    async def send_message(self, message: Any) -> None:
        """Encode ``message`` with the negotiated codec, in the frame type it calls for."""
        op = OP_BINARY if self.codec.binary else OP_TEXT
        await self.send(frame(op, self.codec.encode(message)))

    async def recv_frame(self, timeout: float = 10.0) -> tuple[int, bytes]:
        """The next server frame as ``(opcode, payload)``; raises :class:`Closed` at the end."""
        try:
            head = await asyncio.wait_for(self.reader.readexactly(2), timeout)
            n = head[1] & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
            payload = await self.reader.readexactly(n)
        except (asyncio.IncompleteReadError, ConnectionError):
            raise Closed(None) from None
        opcode = head[0] & 0x0F
        if opcode == OP_CLOSE:
            raise Closed(struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005)
        return opcode, payload

    async def recv(self, timeout: float = 10.0) -> ServerMessage:
        """The next data message, decoded (control frames skipped)."""
        while True:
            opcode, payload = await self.recv_frame(timeout)
            if opcode in (OP_TEXT, OP_BINARY):
                return self.codec.decode_server(payload)

    async def close_code(self, timeout: float = 10.0) -> int | None:
        """Read until the connection ends; the close code the server sent (None: dropped)."""
        while True:
            try:
                await self.recv_frame(timeout)
            except Closed as closed:
                return closed.code

    def abort(self) -> None:
        """Drop the TCP connection."""
        self.writer.transport.abort()


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``check()`` holds (polling the event loop), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)
