"""Decoding client frames: limits and types are checked before any logic runs (pure)."""

from __future__ import annotations

import math

import msgspec
import pytest

from protocol.codec import JSON, MSGPACK, codec_for
from protocol.errors import DecodeError
from protocol.messages import Apply, Changes, Subscribe
from protocol.ops import InsertRows, NewRow, UpdateCells


def apply_with(value: object) -> dict[str, object]:
    return {
        "type": "apply",
        "id": 1,
        "table": "t",
        "client": "c",
        "op": "o",
        "ops": [{"type": "update_cells", "row": "r", "values": {"a": value}}],
    }


@pytest.mark.parametrize("encoding", [MSGPACK, JSON])
def test_roundtrip(encoding: str) -> None:
    codec = codec_for(encoding)
    message = Apply(
        id=3,
        table="t1",
        client="c",
        op="o1",
        ops=[InsertRows(rows=[NewRow(id="r", values={"a": 1, "b": "x"})])],
    )
    assert codec.decode_client(codec.encode(message)) == message


@pytest.mark.parametrize(
    "frame",
    [
        b"\xff\x00garbage",
        msgspec.json.encode({"type": "nope", "id": 1}),
        msgspec.json.encode({"type": "subscribe", "id": "one", "table": "t"}),
        msgspec.json.encode(apply_with(2**70)),
        msgspec.json.encode({**apply_with(1), "table": "t'; DROP TABLE x"}),
        msgspec.json.encode({**apply_with(1), "ops": []}),
        msgspec.json.encode({"type": "subscribe", "id": -1, "table": "t"}),
    ],
)
def test_bad_json_frames_are_refused(frame: bytes) -> None:
    with pytest.raises(DecodeError):
        codec_for(JSON).decode_client(frame)


def test_msgpack_nan_and_infinity_are_refused() -> None:
    codec = codec_for(MSGPACK)
    for value in (math.nan, math.inf, -math.inf):
        with pytest.raises(DecodeError):
            codec.decode_client(msgspec.msgpack.encode(apply_with(value)))


def test_oversized_frame_is_refused_before_parsing() -> None:
    with pytest.raises(DecodeError):
        codec_for(JSON).decode_client(b" " * (2 << 20))


def test_too_many_ops_are_refused() -> None:
    ops = [UpdateCells(row="r", values={"a": 1})] * 1001
    frame = codec_for(MSGPACK).encode(Apply(id=1, table="t", client="c", op="o", ops=ops))
    with pytest.raises(DecodeError):
        codec_for(MSGPACK).decode_client(frame)


def test_server_messages_decode_on_the_client_side() -> None:
    codec = codec_for(JSON)
    assert isinstance(codec.decode_server(codec.encode(Changes(table="t", changes=[]))), Changes)
    with pytest.raises(DecodeError):
        codec.decode_server(codec.encode(Subscribe(id=1, table="t")))
