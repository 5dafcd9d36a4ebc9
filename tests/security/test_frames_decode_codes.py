"""A batch refused while decoding names the failing op, with the code the error table gives:
a cell value no column can hold is ``type_mismatch``, a malformed op is ``invalid_op``; both
carry ``op_index``. Unknown fields are ignored at the top level only."""

from __future__ import annotations

import math
from typing import Any

import msgspec
import pytest
from frames_helpers import OP_BINARY, OP_TEXT, RawSocket, frame

from client_sdk import Client
from protocol.codec import JSON, MSGPACK
from protocol.messages import Ack, Error

GOOD = {"type": "update_cells", "row": "r1", "values": {"n": 1}}


def batch(bad_op: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {
        "type": "apply",
        "id": 7,
        "table": "t",
        "client": "c",
        "op": "o",
        "ops": [GOOD, bad_op],
        **top,
    }


def cell(value: Any) -> dict[str, Any]:
    return {"type": "update_cells", "row": "r1", "values": {"n": value}}


CASES = [
    (JSON, cell(2**53 + 2), "type_mismatch"),
    (JSON, cell(-(2**53) - 2), "type_mismatch"),
    (JSON, cell(1e301), "type_mismatch"),
    (MSGPACK, cell(math.nan), "type_mismatch"),
    (MSGPACK, cell(math.inf), "type_mismatch"),
    (JSON, cell("x" * 65_537), "type_mismatch"),
    (
        JSON,
        {"type": "insert_rows", "rows": [{"values": {"n": 1}}, {"values": {"n": 2**60}}]},
        "type_mismatch",
    ),
    (JSON, {"type": "teleport_rows"}, "invalid_op"),
    (
        JSON,
        {"type": "add_column", "column": {"id": "b", "name": "B", "type": "blob"}},
        "invalid_op",
    ),
    (JSON, {"type": "update_cells", "row": "bad id!", "values": {"n": 1}}, "invalid_op"),
    (JSON, {"type": "update_cells", "row": "r1", "values": {"bad id!": 1}}, "invalid_op"),
    (JSON, {"type": "drop_table", "unknown": 1}, "invalid_op"),
    (JSON, {"type": "update_cells", "row": "r1", "values": 5}, "invalid_op"),
]


@pytest.fixture
async def table_key(hub_url: str, tenant: Any) -> Any:
    _, key = tenant
    client = await Client.connect(hub_url, api_key=key)
    table = await client.create_table("T", [("n", "n", "number")], table_id="t")
    await table.insert({"n": 1}, row_id="r1")
    yield key, table
    await client.close()


@pytest.mark.parametrize(("encoding", "bad_op", "code"), CASES)
async def test_a_bad_op_is_named_by_op_index(
    hub: Any, table_key: Any, encoding: str, bad_op: dict[str, Any], code: str
) -> None:
    key, table = table_key
    version = table.version
    raw = await RawSocket.open(hub.port, key, (encoding,))
    await raw.recv()
    if encoding == MSGPACK:
        await raw.send(frame(OP_BINARY, msgspec.msgpack.encode(batch(bad_op))))
    else:
        await raw.send(frame(OP_TEXT, msgspec.json.encode(batch(bad_op))))
    error = await raw.recv()
    assert isinstance(error, Error)
    assert (error.code, error.id, error.op_index) == (code, 7, 1)
    raw.abort()
    await table.update("r1", {"n": 2})
    assert table.version == version + 1  # nothing of the refused batch was applied


async def test_a_bad_top_level_field_is_a_bad_message_without_op_index(
    hub: Any, table_key: Any
) -> None:
    key, _ = table_key
    raw = await RawSocket.open(hub.port, key, (JSON,))
    await raw.recv()
    await raw.send(frame(OP_TEXT, msgspec.json.encode(batch(GOOD, table="bad id!"))))
    error = await raw.recv()
    assert isinstance(error, Error)
    assert (error.code, error.id, error.op_index) == ("bad_message", 7, None)
    raw.abort()


async def test_unknown_top_level_fields_are_ignored(hub: Any, table_key: Any) -> None:
    key, _ = table_key
    raw = await RawSocket.open(hub.port, key, (JSON,))
    await raw.recv()
    await raw.send(frame(OP_TEXT, msgspec.json.encode(batch(GOOD, future_field={"a": [1]}))))
    ack = await raw.recv()
    assert isinstance(ack, Ack) and ack.id == 7
    raw.abort()
