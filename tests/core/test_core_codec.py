"""Decoding client frames: limits and types are checked before any logic runs (pure)."""

from __future__ import annotations

import math

import msgspec
import pytest

from protocol.codec import JSON, MSGPACK, classify, codec_for
from protocol.errors import DecodeError
from protocol.messages import Apply, Changes, Ping, Subscribe
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


@pytest.mark.parametrize("encoding", [MSGPACK, JSON])
def test_nesting_too_deep_to_decode_is_a_decode_error(encoding: str) -> None:
    """Clients decode server frames with the same codec: no RecursionError on either side."""
    codec = codec_for(encoding)
    for kind, decode in (("ping", codec.decode_client), ("pong", codec.decode_server)):
        if encoding == JSON:
            deep = b"[" * 50_000 + b"]" * 50_000
            frame = b'{"type":"%s","id":1,"x":%s}' % (kind.encode(), deep)
        else:
            head = msgspec.msgpack.encode({"type": kind, "id": 1})
            frame = b"\x83" + head[1:] + b"\xa1x" + b"\x91" * 50_000 + b"\x90"
        with pytest.raises(DecodeError, match="nested too deeply"):
            decode(frame)
        assert codec.request_id(frame) is None


def test_json_text_decodes_as_it_is() -> None:
    assert codec_for(JSON).decode_client('{"type":"ping","id":3,"x":"żółw"}') == Ping(id=3)


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ({"type": "nope", "id": 1}, ("unknown_type", None)),
        (apply_with(2**70), ("type_mismatch", 0)),
        (apply_with("x" * 70_000), ("type_mismatch", 0)),
        ({**apply_with(1), "ops": [{"type": "drop_table"}, {"type": "nope"}]}, ("invalid_op", 1)),
        ({**apply_with(1), "ops": [{"type": "update_cells", "row": "bad id"}]}, ("invalid_op", 0)),
        ({**apply_with(1), "ops": [{"type": "drop_table", "x": 1}]}, ("invalid_op", 0)),
        ({**apply_with(1), "ops": []}, ("bad_message", None)),
        ({**apply_with(1), "table": "bad id"}, ("bad_message", None)),
        ({"type": "subscribe", "id": "one", "table": "t"}, ("bad_message", None)),
        ({"type": "query", "id": 1, "table": "t", "where": 5}, ("invalid_filter", None)),
    ],
)
def test_decode_failures_are_classified(frame: dict[str, object], expected: object) -> None:
    with pytest.raises(DecodeError) as refused:
        codec_for(JSON).decode_client(msgspec.json.encode(frame))
    assert classify(str(refused.value)) == expected
