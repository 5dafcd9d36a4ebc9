"""A minimal WebSocket reader for benchmark subscribers.

Fifty subscribers in one load process spend most of their time in the client library's
frame handling, which then dominates the latency the bench reports. This reader parses
server frames straight off an ``asyncio.Protocol`` (unmasked frames, no fragmentation
expected, pings answered), so the figures measure the servers, not the harness. Used for
subscribers only; writers use the real ``websockets`` client.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from collections.abc import Callable
from typing import Any


class Reader(asyncio.Protocol):
    """Calls ``on_message(payload)`` for every complete data frame."""

    def __init__(self, on_message: Callable[[bytes], None]) -> None:
        self.on_message = on_message
        self.buf = bytearray()
        self.handshake_done = asyncio.get_running_loop().create_future()
        self.transport: Any = None
        self.open = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # uvloop's TCPTransport is not an asyncio.Transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.open:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end])
            del self.buf[: end + 4]
            if not head.startswith(b"HTTP/1.1 101"):
                self.handshake_done.set_exception(RuntimeError(head.split(b"\r\n")[0].decode()))
                return
            self.open = True
            self.handshake_done.set_result(None)
        self._frames()

    def _frames(self) -> None:
        buf = self.buf
        pos = 0
        while len(buf) - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if len(buf) - pos < 4:
                    break
                length = struct.unpack_from("!H", buf, pos + 2)[0]
                head = 4
            elif length == 127:
                if len(buf) - pos < 10:
                    break
                length = struct.unpack_from("!Q", buf, pos + 2)[0]
                head = 10
            if len(buf) - pos < head + length:
                break
            payload = bytes(buf[pos + head : pos + head + length])
            pos += head + length
            opcode = b0 & 0x0F
            if opcode in (1, 2):
                self.on_message(payload)
            elif opcode == 9:  # ping: answer with a masked pong
                self._send(0xA, payload)
        del buf[:pos]

    def _send(self, opcode: int, payload: bytes) -> None:
        assert self.transport is not None
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        n = len(payload)
        if n < 126:
            header = bytes([0x80 | opcode, 0x80 | n])
        elif n < 65536:
            header = bytes([0x80 | opcode, 0xFE]) + struct.pack("!H", n)
        else:
            header = bytes([0x80 | opcode, 0xFF]) + struct.pack("!Q", n)
        self.transport.write(header + mask + masked)

    def send_binary(self, payload: bytes) -> None:
        self._send(0x2, payload)

    def send_text(self, payload: bytes) -> None:
        self._send(0x1, payload)


async def open_reader(
    host: str, port: int, path: str, headers: dict[str, str], on_message: Callable[[bytes], None]
) -> Reader:
    """Connect, perform the opening handshake, and return the reader."""
    loop = asyncio.get_running_loop()
    _, reader = await loop.create_connection(lambda: Reader(on_message), host, port)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    assert reader.transport is not None
    reader.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await reader.handshake_done
    return reader
