"""Frames the hub builds once for every subscriber are the bytes websockets would send.

The hub writes one pre-framed ``changes`` frame to every subscriber's transport
(``server/hub/wire.py``) instead of letting websockets frame it per connection; a client
must not be able to tell the difference, at any payload length class (7-bit, 16-bit and
64-bit lengths) and for both encodings (binary frames for msgpack, text for JSON).
"""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode

from server.hub.wire import framed, header

LENGTHS = [0, 1, 125, 126, 127, 65535, 65536, 70_000]


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("binary", [True, False])
def test_framed_matches_websockets_server_frames(length: int, binary: bool) -> None:
    payload = bytes(i % 251 for i in range(length))
    opcode = Opcode.BINARY if binary else Opcode.TEXT
    expected = Frame(opcode, payload).serialize(mask=False)
    assert framed(payload, binary=binary) == expected
    assert header(length, binary=binary) == expected[: len(expected) - length]
