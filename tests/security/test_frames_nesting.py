"""Deeply nested frames are refused like any bad frame: an error, counted toward 4000, no crash.

Before: msgspec's ``RecursionError`` escaped the codec, the connection handler crashed (1011)
and logged a traceback per connection, and such frames never counted toward the bad-frame
limit.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import pytest
from frames_helpers import RawSocket, frame

from protocol.codec import JSON, MSGPACK
from protocol.errors import CloseCode
from protocol.messages import Apply, Error, Ping, Pong, Presence, Subscribe, Subscribed
from protocol.ops import CreateTable
from server.hub.session import MAX_BAD_FRAMES

DEPTHS = (1_000, 100_000)


def nested_json(depth: int) -> bytes:
    return b'{"type":"ping","id":1,"x":' + b"[" * depth + b"]" * depth + b"}"


def nested_msgpack(depth: int) -> bytes:
    # fixmap of 3 entries, then `depth` one-element arrays around an empty one.
    head = msgspec.msgpack.encode({"type": "ping", "id": 1})
    return b"\x83" + head[1:] + msgspec.msgpack.encode("x") + b"\x91" * depth + b"\x90"


def nested_cell(depth: int) -> bytes:
    value = b"[" * depth + b"]" * depth
    return (
        b'{"type":"apply","id":3,"table":"t","client":"c","op":"o","ops":'
        b'[{"type":"update_cells","row":"r","values":{"c":' + value + b"}}]}"
    )


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize(
    ("encoding", "make"),
    [(JSON, nested_json), (MSGPACK, nested_msgpack), (JSON, nested_cell)],
    ids=["json-ignored-field", "msgpack-ignored-field", "json-cell"],
)
async def test_a_deeply_nested_frame_is_an_error_and_the_connection_lives(
    hub: Any, tenant: Any, encoding: str, make: Any, depth: int, caplog: pytest.LogCaptureFixture
) -> None:
    _, key = tenant
    raw = await RawSocket.open(hub.port, key, (encoding,))
    await raw.recv()  # welcome
    op = 0x2 if encoding == MSGPACK else 0x1
    with caplog.at_level(logging.ERROR):
        await raw.send(frame(op, make(depth)))
        error = await raw.recv()
        assert isinstance(error, Error)
        assert error.code in ("bad_message", "type_mismatch", "invalid_op")
        await raw.send_message(Ping(id=9))  # the connection still serves
        assert await raw.recv() == Pong(id=9)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    raw.abort()


@pytest.mark.parametrize("encoding", [JSON, MSGPACK])
async def test_deeply_nested_frames_count_toward_the_bad_frame_limit(
    hub: Any, tenant: Any, encoding: str
) -> None:
    _, key = tenant
    raw = await RawSocket.open(hub.port, key, (encoding,))
    await raw.recv()
    op, make = (0x2, nested_msgpack) if encoding == MSGPACK else (0x1, nested_json)
    for _ in range(MAX_BAD_FRAMES):
        await raw.send(frame(op, make(5_000)))
    assert await raw.close_code() == CloseCode.BAD_CLIENT


async def test_presence_state_nesting_is_bounded(hub: Any, tenant: Any) -> None:
    """Presence is relayed to every subscriber as it came: its nesting is bounded too."""
    _, key = tenant
    raw = await RawSocket.open(hub.port, key, (JSON,))
    await raw.recv()
    create = CreateTable(name="T", columns=[])
    await raw.send_message(Apply(id=1, table="t", client="c", op="o", ops=[create]))
    await raw.recv()
    await raw.send_message(Subscribe(id=2, table="t"))
    while not isinstance(await raw.recv(), Subscribed):
        pass
    deep: Any = 1
    for _ in range(40):
        deep = [deep]
    await raw.send_message(Presence(table="t", state={"cursor": deep}))
    error = await raw.recv()
    assert isinstance(error, Error) and error.code == "bad_message"
    shallow: Any = 1
    for _ in range(20):
        shallow = [shallow]
    await raw.send_message(Presence(table="t", state={"cursor": shallow}))
    await raw.send_message(Ping(id=3))
    answer = await raw.recv()
    while not isinstance(answer, Pong):
        assert not isinstance(answer, Error)
        answer = await raw.recv()
    raw.abort()
