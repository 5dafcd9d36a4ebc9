"""Text frames must be valid UTF-8 (RFC 6455 section 8.1), and frames must be of the
encoding's type: JSON in text frames, MessagePack in binary frames."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from frames_helpers import OP_BINARY, OP_TEXT, RawSocket, frame

from protocol.codec import JSON, MSGPACK
from protocol.messages import Error, Ping, Pong


@pytest.mark.parametrize(
    "payload",
    [
        b'{"type":"ping","id":1,"x":"\xff\xfe"}',  # in an ignored field
        b'{"type":"ping","id":1,"x":"\xed\xa0\x80"}',  # an encoded surrogate
        b'{"type":"ping","id":1}\xc0',  # after the message
    ],
    ids=["ignored-field", "surrogate", "trailing"],
)
async def test_invalid_utf8_in_a_text_frame_fails_the_connection_with_1007(
    hub: Any, tenant: Any, payload: bytes
) -> None:
    _, key = tenant
    raw = await RawSocket.open(hub.port, key, (JSON,))
    await raw.recv()
    await raw.send(frame(OP_TEXT, payload))
    assert await raw.close_code() == 1007


async def test_valid_multibyte_text_is_served(hub: Any, tenant: Any) -> None:
    _, key = tenant
    raw = await RawSocket.open(hub.port, key, (JSON,))
    await raw.recv()
    await raw.send(frame(OP_TEXT, '{"type":"ping","id":4,"x":"żółw 🐢"}'.encode()))
    assert await raw.recv() == Pong(id=4)
    raw.abort()


@pytest.mark.parametrize(
    ("encoding", "opcode", "payload"),
    [
        (JSON, OP_BINARY, b'{"type":"ping","id":1,"x":"\xff"}'),
        (MSGPACK, OP_TEXT, msgspec.json.encode({"type": "ping", "id": 1})),
    ],
    ids=["json-in-binary", "text-on-msgpack"],
)
async def test_a_frame_of_the_wrong_type_is_a_bad_message(
    hub: Any, tenant: Any, encoding: str, opcode: int, payload: bytes
) -> None:
    _, key = tenant
    raw = await RawSocket.open(hub.port, key, (encoding,))
    await raw.recv()
    await raw.send(frame(opcode, payload))
    error = await raw.recv()
    assert isinstance(error, Error) and error.code == "bad_message"
    assert encoding in error.message
    await raw.send_message(Ping(id=2))
    assert await raw.recv() == Pong(id=2)
    raw.abort()
