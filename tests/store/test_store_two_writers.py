"""Two stores on one file (two hub processes' worth): ``BEGIN IMMEDIATE`` serialises their
transactions and versions come from the database, so they stay gap-free whichever writes."""

from __future__ import annotations

import asyncio
from pathlib import Path

from store_helpers import TABLE, Recorder, cells, insert, make_table, open_store, update


async def test_two_stores_share_one_gap_free_version_sequence(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    seen_a, seen_b = Recorder(), Recorder()
    a = await open_store(path, seen_a)
    b = await open_store(path, seen_b)
    try:
        await make_table(a, rows=2)
        await b.refresh()  # b learns of the table another "process" created
        assert b.table(TABLE) is not None
        futures = []
        for i in range(40):
            store, row = (a, "r0") if i % 2 else (b, "r1")
            futures.append(store.submit(TABLE, f"c{i % 2}", f"o{i}", update(row, f"v{i}"), "u"))
        outcomes = await asyncio.gather(*futures)
        assert all(o.error is None and not o.duplicate for o in outcomes)
        versions = sorted(o.version for o in outcomes)
        assert versions == list(range(2, 42))  # no version twice, none skipped
        # Each store broadcast its own commits; together they are every version once.
        assert sorted(seen_a.versions()[1:] + seen_b.versions()) == versions
        # Both catalogs caught up with the file.
        await a.apply(TABLE, "c", "last-a", insert("na"), "u")
        last = await b.apply(TABLE, "c", "last-b", insert("nb"), "u")
        assert last.version == 43
        state = a.table(TABLE)
        assert state is not None and state.version == 42  # a has not looked since its commit
        replay = await a.since(TABLE, 0)
        assert replay is not None and [c.version for c in replay[1]] == list(range(1, 44))
    finally:
        await a.close()
        await b.close()


async def test_a_writer_waits_for_the_other_writers_transaction(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    a = await open_store(path)
    b = await open_store(path)
    try:
        await make_table(a, rows=1)
        async with a.exclusive() as conn:
            await conn.execute("BEGIN IMMEDIATE")  # a holds SQLite's write lock
            await conn.execute("INSERT INTO _ht_meta (key, value) VALUES ('a', 1)")
            waiting = b.submit(TABLE, "c", "o1", update("r0", "from b"), "u")
            await asyncio.sleep(0.2)
            assert not waiting.done()  # b's BEGIN IMMEDIATE is waiting on the lock
            await conn.commit()
        outcome = await waiting
        # b re-read the catalog under the lock: the table a created is known and the
        # version is the file's next one.
        assert outcome.error is None and outcome.version == 2
        assert await cells(b) == {"r0": "from b"}
    finally:
        await a.close()
        await b.close()


async def test_a_retry_sent_to_the_other_store_is_a_duplicate(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    a = await open_store(path)
    b = await open_store(path)
    try:
        await make_table(a, rows=1)
        first = await a.apply(TABLE, "c", "o1", update("r0", "x"), "u")
        again = await b.apply(TABLE, "c", "o1", update("r0", "x"), "u")
        assert again.duplicate and again.version == first.version
    finally:
        await a.close()
        await b.close()
