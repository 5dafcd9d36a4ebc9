"""Retries and tombstones on the store itself.

A batch carries its client's id and op id: the same ids again are acknowledged with the
original version and not applied twice, whether the first run committed in an earlier
group, in the same group, or the retry would now fail. A deleted row stays deleted: its id
can be neither written, nor inserted again, nor moved, and a retried delete is no error.
"""

from __future__ import annotations

from pathlib import Path

from store_helpers import TABLE, Recorder, cells, insert, make_table, open_store, update

from protocol.ops import DeleteRows, InsertRows, MoveRow, NewRow


async def test_a_retry_is_acked_with_its_original_version(tmp_path: Path) -> None:
    recorder = Recorder()
    store = await open_store(tmp_path / "t.db", recorder)
    try:
        await make_table(store, rows=1)
        first = await store.apply(TABLE, "c1", "o1", update("r0", "one"), "u")
        other = await store.apply(TABLE, "c1", "o2", update("r0", "two"), "u")
        again = await store.apply(TABLE, "c1", "o1", update("r0", "one"), "u")
        assert (first.version, first.duplicate) == (2, False)
        assert (again.version, again.duplicate, again.change) == (2, True, None)
        assert other.version == 3
        assert await cells(store) == {"r0": "two"}  # the retry did not write again
        assert recorder.versions() == [1, 2, 3]  # nor was it broadcast
        # Another client's op with the same op id is a different batch.
        mine = await store.apply(TABLE, "c2", "o1", update("r0", "three"), "u")
        assert (mine.version, mine.duplicate) == (4, False)
    finally:
        await store.close()


async def test_a_retry_whose_replay_would_fail_is_still_a_duplicate(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "t.db")
    try:
        await make_table(store)
        first = await store.apply(TABLE, "c", "o1", insert("n1"), "u")
        again = await store.apply(TABLE, "c", "o1", insert("n1"), "u")  # the row exists now
        assert again.error is None and again.duplicate and again.version == first.version
    finally:
        await store.close()


async def test_a_retry_in_the_same_group_is_a_duplicate(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "t.db")
    try:
        await make_table(store, rows=1)
        async with store.exclusive():
            a = store.submit(TABLE, "c", "o1", update("r0", "x"), "u")
            b = store.submit(TABLE, "c", "o1", update("r0", "x"), "u")
        first, second = await a, await b
        assert (first.version, first.duplicate) == (2, False)
        assert (second.version, second.duplicate) == (2, True)
        state = store.table(TABLE)
        assert state is not None and state.version == 2
    finally:
        await store.close()


async def test_a_retry_is_recognised_after_reopening(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "t.db")
    await make_table(store, rows=1)
    first = await store.apply(TABLE, "c", "o1", update("r0", "x"), "u")
    await store.close()
    store = await open_store(tmp_path / "t.db")
    try:
        again = await store.apply(TABLE, "c", "o1", update("r0", "x"), "u")
        assert again.duplicate and again.version == first.version
    finally:
        await store.close()


async def test_a_deleted_row_stays_deleted(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "t.db")
    try:
        await make_table(store, rows=3)
        gone = await store.apply(TABLE, "c", "del", [DeleteRows(rows=["r1"])], "u")
        assert gone.error is None
        written = await store.apply(TABLE, "c", "o1", update("r1", "x"), "u")
        assert written.error is not None and written.error.code == "row_deleted"
        back = await store.apply(TABLE, "c", "o2", insert("r1"), "u")
        assert back.error is not None and back.error.code == "row_deleted"
        twice = await store.apply(TABLE, "c", "o3", [DeleteRows(rows=["r1"])], "u")
        assert twice.error is not None and twice.error.code == "row_deleted"
        moved = await store.apply(TABLE, "c", "o4", [MoveRow(row="r1", after="r2")], "u")
        assert moved.error is not None and moved.error.code == "row_deleted"
        anchored = await store.apply(
            TABLE, "c", "o5", [InsertRows(rows=[NewRow(id="n", values={}, after="r1")])], "u"
        )
        assert anchored.error is not None and anchored.error.code == "unknown_row"
        # None of the refusals took a version; the retried delete is acked as before.
        retried = await store.apply(TABLE, "c", "del", [DeleteRows(rows=["r1"])], "u")
        assert retried.duplicate and retried.version == gone.version
        state = store.table(TABLE)
        assert state is not None and state.version == gone.version
        assert await cells(store) == {"r0": "v0", "r2": "v2"}
    finally:
        await store.close()


async def test_a_tombstone_outlives_a_reopen_and_unknown_rows_are_not_deleted(
    tmp_path: Path,
) -> None:
    store = await open_store(tmp_path / "t.db")
    await make_table(store, rows=1)
    assert (await store.apply(TABLE, "c", "del", [DeleteRows(rows=["r0"])], "u")).error is None
    await store.close()
    store = await open_store(tmp_path / "t.db")
    try:
        back = await store.apply(TABLE, "c", "o1", insert("r0"), "u")
        assert back.error is not None and back.error.code == "row_deleted"
        never = await store.apply(TABLE, "c", "o2", update("never", "x"), "u")
        assert never.error is not None and never.error.code == "unknown_row"
        fresh = await store.apply(TABLE, "c", "o3", insert("never"), "u")  # no tombstone
        assert fresh.error is None
    finally:
        await store.close()


async def test_moving_a_live_row_between_others_keeps_it(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "t.db")
    try:
        await make_table(store, rows=3)
        moved = await store.apply(TABLE, "c", "m", [MoveRow(row="r2", after="r0")], "u")
        assert moved.error is None and moved.change is not None
        applied = moved.change.ops[0]
        assert isinstance(applied, MoveRow) and applied.order  # the server-made order key
        snap = await store.snapshot(TABLE)
        assert snap is not None and [r.id for r in snap.rows] == ["r0", "r2", "r1"]
    finally:
        await store.close()
