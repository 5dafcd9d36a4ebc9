"""Group commit on the store itself: batches queued while the writer is busy share one
transaction; a failing batch rolls back alone; versions are gap-free."""

from __future__ import annotations

from pathlib import Path

from store_helpers import TABLE, Recorder, cells, insert, make_table, open_store, update

from protocol.ops import DeleteRows, InsertRows, NewRow, UpdateCells


async def test_batches_queued_during_a_job_share_one_commit(tmp_path: Path) -> None:
    recorder = Recorder()
    store = await open_store(tmp_path / "t.db", recorder)
    try:
        await make_table(store)
        commits = store.commits
        async with store.exclusive():  # the writer is busy: the batches queue up
            futures = [store.submit(TABLE, "c", f"o{i}", insert(f"n{i}"), "u") for i in range(5)]
            assert not any(f.done() for f in futures)  # no ack before the commit
        outcomes = [await f for f in futures]
        assert [o.version for o in outcomes] == [2, 3, 4, 5, 6]
        assert store.commits == commits + 1  # one transaction for the five
        assert [len(changes) for _, changes in recorder.calls[-1:]] == [5]
        assert recorder.versions() == [1, 2, 3, 4, 5, 6]
    finally:
        await store.close()


async def test_a_failing_batch_rolls_back_alone(tmp_path: Path) -> None:
    recorder = Recorder()
    store = await open_store(tmp_path / "t.db", recorder)
    try:
        await make_table(store)
        async with store.exclusive():
            good = store.submit(TABLE, "c", "o1", insert("a"), "u")
            # Its first op would insert "b"; its second fails: neither may remain.
            bad = store.submit(
                TABLE, "c", "o2", [*insert("b"), UpdateCells(row="nope", values={"a": "x"})], "u"
            )
            also = store.submit(TABLE, "c", "o3", insert("c"), "u")
        first, failed, third = await good, await bad, await also
        assert failed.error is not None and failed.error.code == "unknown_row"
        assert failed.error.op_index == 1  # the op that failed
        # The failed batch took no version: the group's versions stay gap-free.
        assert (first.version, third.version) == (2, 3)
        assert await cells(store) == {"a": "x", "c": "x"}
        state = store.table(TABLE)
        assert state is not None and state.version == 3
    finally:
        await store.close()


async def test_a_single_failing_batch_leaves_nothing(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "t.db")
    try:
        await make_table(store, rows=1)
        outcome = await store.apply(
            TABLE, "c", "o1", [*insert("b"), UpdateCells(row="nope", values={"a": "x"})], "u"
        )
        assert outcome.error is not None and outcome.error.code == "unknown_row"
        after = await store.apply(TABLE, "c", "o2", update("r0", "new"), "u")
        assert after.error is None and after.version == 2
        assert await cells(store) == {"r0": "new"}
    finally:
        await store.close()


async def test_versions_are_gap_free_across_groups_and_refusals(tmp_path: Path) -> None:
    recorder = Recorder()
    store = await open_store(tmp_path / "t.db", recorder)
    try:
        await make_table(store, rows=3)
        futures = []
        for i in range(60):
            ops = update("missing", "x") if i % 7 == 3 else update(f"r{i % 3}", f"v{i}")
            futures.append(store.submit(TABLE, "c", f"o{i}", ops, "u"))
        outcomes = [await f for f in futures]
        committed = [o.version for o in outcomes if o.error is None]
        assert len(committed) == 60 - sum(1 for i in range(60) if i % 7 == 3)
        assert committed == list(range(2, 2 + len(committed)))
        assert recorder.versions() == list(range(1, 2 + len(committed)))
    finally:
        await store.close()
    # What the file holds says the same after reopening.
    reopened = await open_store(tmp_path / "t.db")
    try:
        state = reopened.table(TABLE)
        assert state is not None and state.version == 1 + len(committed)
        replay = await reopened.since(TABLE, 0)
        assert replay is not None
        assert [c.version for c in replay[1]] == list(range(1, 2 + len(committed)))
    finally:
        await reopened.close()


async def test_a_batch_is_atomic_across_its_ops(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "t.db")
    try:
        await make_table(store, rows=2)
        outcome = await store.apply(
            TABLE,
            "c",
            "o1",
            [
                UpdateCells(row="r0", values={"a": "changed"}),
                DeleteRows(rows=["r1"]),
                InsertRows(rows=[NewRow(id="r0", values={"a": "dup"})]),  # exists: fails
            ],
            "u",
        )
        assert outcome.error is not None and outcome.error.code == "row_exists"
        assert await cells(store) == {"r0": "v0", "r1": "v1"}
    finally:
        await store.close()


async def test_a_group_run_again_after_a_failure_broadcasts_what_it_stored(
    tmp_path: Path,
) -> None:
    # A group first runs without savepoints; a failure sends it round again. Server-made
    # row ids and order keys of the second run are the ones stored, acked and broadcast.
    recorder = Recorder()
    store = await open_store(tmp_path / "t.db", recorder)
    try:
        await make_table(store, rows=1)
        async with store.exclusive():
            made = store.submit(TABLE, "c", "o1", [InsertRows(rows=[NewRow(values={})])], "u")
            bad = store.submit(TABLE, "c", "o2", update("nope", "x"), "u")
            after = store.submit(TABLE, "c", "o3", update("r0", "y"), "u")
        first, failed, third = await made, await bad, await after
        assert failed.error is not None and (first.version, third.version) == (2, 3)
        assert first.change is not None
        inserted = first.change.ops[0]
        assert isinstance(inserted, InsertRows) and inserted.rows[0].id
        snap = await store.snapshot(TABLE)
        assert snap is not None
        assert {r.id: r.order for r in snap.rows}[inserted.rows[0].id] == inserted.rows[0].order
        broadcast = [c for _, changes in recorder.calls for c in changes if c.version == 2]
        assert broadcast == [first.change]
    finally:
        await store.close()
