"""Open tenant stores are bounded: idle stores are closed (LRU and idle timeout), busy ones
never; a closed store reopens with everything it had."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from protocol.messages import Change
from protocol.ops import ColumnDef, ColumnType, CreateTable, InsertRows, NewRow
from server.store.manager import StoreManager
from server.store.tenant import READER_THREAD, WRITER_THREAD

TENANTS = [f"tenant{i:04d}abcd" for i in range(6)]


def sqlite_threads() -> int:
    """Live tenant connection threads (a writer and a reader per open store)."""
    names = (WRITER_THREAD, READER_THREAD)
    return sum(t.name in names for t in threading.enumerate())


def ignore(tenant: str, table: str, changes: list[Change]) -> None:
    pass


async def test_lru_bound_and_reopen(tmp_path: Path) -> None:
    manager = StoreManager(tmp_path, on_commit=ignore, max_open=3)
    threads_before = sqlite_threads()
    for tenant in TENANTS:
        async with manager.use(tenant) as store:
            outcome = await store.apply(
                "t",
                "c",
                "o1",
                [
                    CreateTable(
                        name="T", columns=[ColumnDef(id="a", name="A", type=ColumnType.TEXT)]
                    ),
                    InsertRows(rows=[NewRow(id="r", values={"a": tenant})]),
                ],
                "test",
            )
            assert outcome.error is None
        assert manager.open_count <= 3
    # Two SQLite threads per open store; closed stores leave none behind (a closed
    # connection's thread may take a moment to exit).
    for _ in range(200):
        if sqlite_threads() - threads_before <= 2 * 3:
            break
        await asyncio.sleep(0.01)
    assert sqlite_threads() - threads_before <= 2 * 3
    async with manager.use(TENANTS[0]) as store:  # evicted long ago: reopens from its file
        snap = await store.snapshot("t")
        assert snap is not None and snap.rows[0].values == {"a": TENANTS[0]}
    await manager.close()
    assert manager.open_count == 0


async def test_busy_stores_are_not_evicted_and_idle_ones_close(tmp_path: Path) -> None:
    manager = StoreManager(tmp_path, on_commit=ignore, max_open=1, idle_seconds=0.0)
    held = await manager.lease(TENANTS[0])
    async with manager.use(TENANTS[1]):
        assert manager.open_count == 2  # over the bound: the leased store is in use
    manager.release(held)
    assert await manager.close_idle() == 2
    assert manager.open_count == 0
    await manager.close()
