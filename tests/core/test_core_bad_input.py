"""Bad input gets its documented error or close code, changes nothing, and harms no one else."""

from __future__ import annotations

import math
from typing import Any

import msgspec
import pytest
from core_wire import Wire
from websockets.exceptions import ConnectionClosed

from client_sdk import Client
from protocol.codec import JSON, MSGPACK
from protocol.errors import ERRORS, CloseCode
from protocol.messages import Apply, Error, Ping, Pong, Subscribe
from protocol.ops import AddColumn, ColumnDef, ColumnType, CreateTable, UpdateCells


def apply_frame(value: object, **over: object) -> dict[str, object]:
    frame: dict[str, object] = {
        "type": "apply",
        "id": 5,
        "table": "t",
        "client": "c",
        "op": "bad",
        "ops": [{"type": "update_cells", "row": "r1", "values": {"n": value}}],
    }
    frame.update(over)
    return frame


@pytest.fixture
async def setup(hub_url: str, tenant: Any) -> Any:
    _, key = tenant
    client = await Client.connect(hub_url, api_key=key)
    table = await client.create_table("T", [("n", "n", "number")], table_id="t")
    await table.insert({"n": 1}, row_id="r1")
    yield key, client, table
    await client.close()


BAD_FRAMES: list[tuple[str, bytes, str]] = [
    (MSGPACK, b"\xc1\xc1 garbage", "bad_message"),
    (JSON, b"{not json", "bad_message"),
    (JSON, msgspec.json.encode({"type": "teleport", "id": 1}), "unknown_type"),
    (JSON, msgspec.json.encode({"type": "subscribe", "id": "x", "table": "t"}), "bad_message"),
    (JSON, msgspec.json.encode(apply_frame(2**70)), "type_mismatch"),
    (MSGPACK, msgspec.msgpack.encode(apply_frame(math.nan)), "type_mismatch"),
    (JSON, msgspec.json.encode(apply_frame("x" * 70_000)), "type_mismatch"),
    (
        JSON,
        msgspec.json.encode(apply_frame(1, table='t"; DROP TABLE _ht_tables;--')),
        "bad_message",
    ),
]


@pytest.mark.parametrize(("encoding", "frame", "code"), BAD_FRAMES)
async def test_bad_frames_get_an_error_and_change_nothing(
    hub_url: str, setup: Any, encoding: str, frame: bytes, code: str
) -> None:
    key, _, table = setup
    version = table.version
    wire = await Wire.open(hub_url, key, encoding)
    await wire.send_raw(frame, text=encoding == JSON)
    error = await wire.recv()
    assert isinstance(error, Error)
    assert error.code == code and code in ERRORS
    await wire.send(Ping(id=77))  # the connection still works
    assert await wire.recv() == Pong(id=77)
    await wire.close()
    await table.update("r1", {"n": 2})
    assert table.version == version + 1
    assert table.rows["r1"] == {"n": 2}


@pytest.mark.parametrize(
    ("ops", "code"),
    [
        ([UpdateCells(row="ghost", values={"n": 1})], "unknown_row"),
        ([UpdateCells(row="r1", values={"ghost": 1})], "unknown_column"),
        ([UpdateCells(row="r1", values={"n": "text"})], "type_mismatch"),
        ([CreateTable(name="T")], "table_exists"),
        (
            [
                AddColumn(column=ColumnDef(id="ok", name="Fine", type=ColumnType.TEXT)),
                UpdateCells(row="r1", values={"n": 9}),
                UpdateCells(row="nope", values={"n": 9}),
            ],
            "unknown_row",
        ),
    ],
)
async def test_invalid_batches_are_atomic(
    hub_url: str, setup: Any, ops: list[Any], code: str
) -> None:
    key, _, table = setup
    version, columns = table.version, dict(table.replica.columns)
    wire = await Wire.open(hub_url, key)
    await wire.send(Apply(id=1, table="t", client="w", op="o1", ops=ops))
    error = await wire.recv()
    assert isinstance(error, Error)
    assert (error.code, error.id, error.op_index) == (code, 1, len(ops) - 1)
    await wire.close()
    await table.update("r1", {"n": 3})  # nothing of the failed batch was applied
    assert table.version == version + 1
    assert table.replica.columns == columns
    assert table.rows["r1"] == {"n": 3}


async def test_unknown_table_and_sql_in_names(hub_url: str, setup: Any) -> None:
    key, client, _ = setup
    wire = await Wire.open(hub_url, key)
    await wire.send(Subscribe(id=1, table="no-such-table"))
    error = await wire.recv()
    assert isinstance(error, Error) and error.code == "unknown_table"
    await wire.close()
    evil = "Robert'); DROP TABLE _ht_tables;--"
    weird = await client.create_table(evil, [(evil, "text")])
    row = await weird.insert({evil: evil})
    assert weird.rows[row] == {next(iter(weird.replica.columns)): evil}
    names = {t.name for t in await client.list_tables()}
    assert names == {"T", evil}


async def test_oversized_frame_closes_with_1009(hub_url: str, setup: Any) -> None:
    key, _, table = setup
    wire = await Wire.open(hub_url, key, max_size=None)
    await wire.send_raw(b"\x00" * (2 << 20))
    with pytest.raises(ConnectionClosed):
        await wire.recv()
    assert wire.conn.close_code == CloseCode.MESSAGE_TOO_BIG
    await table.update("r1", {"n": 4})  # others keep working


async def test_flood_of_garbage_closes_with_bad_client(hub_url: str, setup: Any) -> None:
    key, _, _ = setup
    wire = await Wire.open(hub_url, key)
    with pytest.raises(ConnectionClosed):
        for _ in range(100):
            await wire.send_raw(b"\xc1")
            await wire.recv()
    assert wire.conn.close_code == CloseCode.BAD_CLIENT
