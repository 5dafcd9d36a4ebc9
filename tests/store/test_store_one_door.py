"""One door into a tenant's writer: every write is a job on the store's queue, run in
order by the one writer, in the writer's own thread; a job's connection dies with the job."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest
from store_helpers import TABLE, Recorder, cells, insert, make_table, open_store, update

from server.store.asyncconn import JobEnded
from server.store.tenant import WRITER_THREAD, StoreClosed


def table_version(conn: sqlite3.Connection) -> tuple[str, int]:
    (version,) = conn.execute("SELECT version FROM _ht_tables WHERE id=?", (TABLE,)).fetchone()
    return threading.current_thread().name, int(version)


async def test_functions_run_in_queue_order_in_the_writer_thread(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "t.db")
    try:
        await make_table(store, rows=1)
        async with store.exclusive():  # hold the writer so that all three queue
            before = store.submit(TABLE, "c", "o1", update("r0", "a"), "u")
            seen = asyncio.ensure_future(store.run_exclusive(table_version))
            await asyncio.sleep(0)  # the task queues its job
            after = store.submit(TABLE, "c", "o2", update("r0", "b"), "u")
        assert (await before).version == 2
        assert await seen == (WRITER_THREAD, 2)  # after the first batch, before the second
        assert (await after).version == 3
    finally:
        await store.close()


async def test_a_turn_writes_on_the_writer_between_groups(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "t.db")
    try:
        await make_table(store)
        async with store.exclusive() as conn:
            await conn.execute("BEGIN IMMEDIATE")
            await conn.execute("INSERT INTO _ht_meta (key, value) VALUES ('probe', 7)")
            assert conn.in_transaction
            await conn.commit()
            assert not conn.in_transaction
            async with conn.execute("SELECT value FROM _ht_meta WHERE key='probe'") as cur:
                assert await cur.fetchone() == (7,)
        with pytest.raises(JobEnded):  # kept past its turn: refused
            await conn.execute("SELECT 1")
        assert (await store.apply(TABLE, "c", "o1", insert("n"), "u")).version == 2
    finally:
        await store.close()


async def test_a_transaction_a_job_leaves_open_is_rolled_back(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "t.db")
    try:
        await make_table(store)

        def leave_open(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO _ht_meta (key, value) VALUES ('left', 1)")

        await store.run_exclusive(leave_open)
        async with store.exclusive() as conn:
            await conn.execute("BEGIN IMMEDIATE")
            await conn.execute("INSERT INTO _ht_meta (key, value) VALUES ('left2', 1)")
        # The writer goes on: the next group's BEGIN is not refused, nothing was kept.
        assert (await store.apply(TABLE, "c", "o1", insert("n"), "u")).error is None

        def keys(conn: sqlite3.Connection) -> list[str]:
            return [k for (k,) in conn.execute("SELECT key FROM _ht_meta ORDER BY key")]

        assert await store.run_exclusive(keys) == ["next_sql"]
    finally:
        await store.close()


async def test_a_failing_function_fails_its_caller_only(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "t.db")
    try:
        await make_table(store)

        def broken(conn: sqlite3.Connection) -> None:
            conn.execute("SELECT * FROM no_such_table")

        with pytest.raises(sqlite3.OperationalError):
            await store.run_exclusive(broken)
        assert (await store.apply(TABLE, "c", "o1", insert("n"), "u")).error is None
    finally:
        await store.close()


async def test_a_turn_given_up_before_it_came_is_skipped(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "t.db")
    try:
        await make_table(store)
        async with store.exclusive():

            async def wait_for_turn() -> None:
                async with store.exclusive():
                    raise AssertionError("a cancelled turn ran")

            waiting = asyncio.ensure_future(wait_for_turn())
            await asyncio.sleep(0)  # queued behind this turn
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
        assert (await store.apply(TABLE, "c", "o1", insert("n"), "u")).version == 2
    finally:
        await store.close()


async def test_close_runs_what_was_queued_then_refuses(tmp_path: Path) -> None:
    recorder = Recorder()
    store = await open_store(tmp_path / "t.db", recorder)
    await make_table(store)
    futures = [store.submit(TABLE, "c", f"o{i}", insert(f"n{i}"), "u") for i in range(3)]
    await store.close()
    assert [(await f).version for f in futures] == [2, 3, 4]
    with pytest.raises(StoreClosed):
        store.submit(TABLE, "c", "late", insert("late"), "u")
    with pytest.raises(StoreClosed):
        await store.run_exclusive(table_version)
    with pytest.raises(StoreClosed):
        async with store.exclusive():
            pass
    await store.close()  # idempotent
    reopened = await open_store(tmp_path / "t.db")
    try:
        assert set(await cells(reopened)) == {"n0", "n1", "n2"}
    finally:
        await reopened.close()


def _add_hook(conn: sqlite3.Connection) -> None:
    conn.execute(
        "INSERT INTO _ht_webhooks (id, tbl, url, created_at, created_by)"
        " VALUES ('hk1', NULL, 'https://example.invalid/', 0, 'test')"
    )


def _outbox(conn: sqlite3.Connection) -> list[int]:
    return [v for (v,) in conn.execute("SELECT version FROM _ht_webhook_outbox ORDER BY seq")]


async def test_a_webhook_added_by_a_job_gets_the_next_commit(tmp_path: Path) -> None:
    # The writer remembers that there is no webhook; a job may change that.
    store = await open_store(tmp_path / "t.db")
    try:
        await make_table(store)
        await store.apply(TABLE, "c", "o1", insert("a"), "u")
        await store.run_exclusive(_add_hook)
        outcome = await store.apply(TABLE, "c", "o2", insert("b"), "u")
        assert await store.run_exclusive(_outbox) == [outcome.version]
    finally:
        await store.close()


async def test_a_webhook_added_by_another_connection_gets_the_next_commit(
    tmp_path: Path,
) -> None:
    store = await open_store(tmp_path / "t.db")
    try:
        await make_table(store)
        await store.apply(TABLE, "c", "o1", insert("a"), "u")

        def other_process() -> None:
            with sqlite3.connect(tmp_path / "t.db", isolation_level=None) as other:
                _add_hook(other)

        await asyncio.to_thread(other_process)
        outcome = await store.apply(TABLE, "c", "o2", insert("b"), "u")
        assert await store.run_exclusive(_outbox) == [outcome.version]
    finally:
        await store.close()
