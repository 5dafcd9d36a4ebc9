"""Server-to-client WebSocket frames built once, as bytes ready for any connection.

How it works: a frame the server sends is never masked (RFC 6455 section 5.1) and the hub
negotiates no extension (``compression=None``), so the bytes of one message's frame are
the same on every connection: a header (FIN, opcode, payload length) and the payload.
:func:`framed` builds them once; the hub writes that one ``bytes`` object to every
subscriber's connection (:meth:`server.hub.outbox.Outbox.write_wire`), where websockets
would build a ``Frame``, check it and copy the payload into a new buffer per connection.

A connection on which websockets would produce other bytes (an extension was negotiated)
or log each frame (its protocol was made with DEBUG logging on) takes websockets' own path
instead; the outbox decides that per connection, so the wire is the same either way.
"""

from __future__ import annotations

import struct

OP_TEXT = 0x1
OP_BINARY = 0x2
_FIN = 0x80

_HEAD_16 = struct.Struct("!BBH")
_HEAD_64 = struct.Struct("!BBQ")


def header(length: int, *, binary: bool) -> bytes:
    """The header of an unmasked, unfragmented data frame of ``length`` payload bytes."""
    head1 = _FIN | (OP_BINARY if binary else OP_TEXT)
    if length < 126:
        return bytes((head1, length))
    if length < 65536:
        return _HEAD_16.pack(head1, 126, length)
    return _HEAD_64.pack(head1, 127, length)


def framed(payload: bytes, *, binary: bool) -> bytes:
    """``payload`` as one complete server frame (binary for msgpack, text for JSON)."""
    return header(len(payload), binary=binary) + payload
