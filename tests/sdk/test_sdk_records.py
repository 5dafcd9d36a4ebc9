"""Rows by column name and row-level events, on a replica fed by hand (pure)."""

from __future__ import annotations

from typing import Any

from client_sdk.records import Record, apply_with_events
from client_sdk.replica import Replica
from protocol.messages import Change, TableInfo
from protocol.ops import (
    ColumnDef,
    ColumnType,
    DeleteRows,
    InsertRows,
    NewRow,
    RenameColumn,
    UpdateCells,
)


def _replica() -> Replica:
    replica = Replica("t")
    columns = [
        ColumnDef(id="n", name="Name", type=ColumnType.TEXT),
        ColumnDef(id="a", name="Age", type=ColumnType.NUMBER),
    ]
    replica.reset(TableInfo(id="t", name="People", version=0, columns=columns))
    return replica


def test_events_name_the_cells_and_fold_an_insert_with_its_recomputation() -> None:
    replica = _replica()
    insert = InsertRows(rows=[NewRow(id="r1", values={"n": "Ada"}, order="a")])
    events = apply_with_events(
        replica, Change(version=1, ops=[insert, UpdateCells(row="r1", values={"a": 36})], by="me")
    )
    assert events is not None and len(events) == 1
    (event,) = events
    assert (event.kind, event.row, event.by, event.version) == ("inserted", "r1", "me", 1)
    assert dict(event.values) == {"Name": "Ada", "Age": 36}
    assert event.changed == ("Name", "Age")

    events = apply_with_events(
        replica, Change(version=2, ops=[UpdateCells(row="r1", values={"a": 37})])
    )
    assert events is not None
    assert [(e.kind, e.changed, e.values["Age"]) for e in events] == [("updated", ("Age",), 37)]

    events = apply_with_events(replica, Change(version=3, ops=[DeleteRows(rows=["r1"])]))
    assert events is not None
    assert [(e.kind, dict(e.values)) for e in events] == [("deleted", {"Name": "Ada", "Age": 37})]
    assert apply_with_events(replica, Change(version=3, ops=[])) is None  # already applied


def test_a_record_follows_a_rename() -> None:
    replica = _replica()
    apply_with_events(
        replica,
        Change(version=1, ops=[InsertRows(rows=[NewRow(id="r", values={"n": "Ada"}, order="a")])]),
    )
    apply_with_events(replica, Change(version=2, ops=[RenameColumn(column="n", name="Full name")]))
    record = Record.of("r", replica.rows["r"], replica.columns)
    assert dict(record) == {"Full name": "Ada"}
    assert "Name" not in record
    assert record.to_dict() == {"_id": "r", "Full name": "Ada"}


def test_a_dropped_feed_stops_listening() -> None:
    import gc

    from client_sdk.table import Feed

    listeners: list[Any] = []
    feed: Feed[int] = Feed(listeners)
    assert len(listeners) == 1
    del feed
    gc.collect()
    assert listeners == []
