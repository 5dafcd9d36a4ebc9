"""A batch of json cells too costly to check is refused whole, through the SDK (real hub).

Before: nothing bounded a batch's json cells, only each cell; a frame of cells that expand
on encoding (a control character is 1 msgpack byte and 6 JSON bytes) was walked element by
element and stored.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from client_sdk import Client
from client_sdk.errors import ServerError
from protocol.limits import MAX_FRAME_BYTES, MAX_JSON_BATCH_BYTES
from protocol.ops import InsertRows, NewRow


async def test_a_huge_json_batch_is_refused_with_a_clear_error_and_nothing_applied(
    hub_url: str, tenant: Any
) -> None:
    _, key = tenant
    cell = ["\x01" * 10_000]  # 10 KB in the frame, 60 KB of JSON to store
    rows = [NewRow(id=f"r{i}", values={"J": cell}) for i in range(40)]
    assert len(msgspec.msgpack.encode(rows)) < MAX_FRAME_BYTES // 2
    assert sum(len(msgspec.json.encode(r.values["J"])) for r in rows) > MAX_JSON_BATCH_BYTES
    async with await Client.connect(hub_url, api_key=key) as client:
        table = await client.create_table("Blobs", [("J", "json")])
        with pytest.raises(ServerError) as info:
            await table.apply([InsertRows(rows=[NewRow(id="first", values={"J": [1]})]),
                               InsertRows(rows=rows)])  # fmt: skip
        assert info.value.code == "type_mismatch" and info.value.op_index == 1
        assert "split the batch" in info.value.message
        assert str(MAX_JSON_BATCH_BYTES) in info.value.message
        assert table.rows == {}  # not even the first op's row
        await table.apply([InsertRows(rows=rows[:20])])  # half of it is fine
    async with await Client.connect(hub_url, api_key=key) as client:
        again = await client.table(table.id)
        assert sorted(again.rows) == sorted(f"r{i}" for i in range(20))
