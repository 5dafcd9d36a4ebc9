"""The process's one ``data_version`` reader (server/control/pulse.py) and its wake-ups.

Real SQLite file in WAL mode, commits from another connection as the CLI makes them.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from server.control.pulse import ControlPulse, Wakeup


def _control_db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x INTEGER)")
    return conn


async def test_a_wakeup_ends_its_wait_when_set_or_when_the_time_is_up() -> None:
    wakeup = Wakeup()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await wakeup.wait(0.05)  # nothing sets it: the time runs out
    assert loop.time() - started >= 0.04 and not wakeup.is_set()
    waiting = asyncio.create_task(wakeup.wait(30))
    await asyncio.sleep(0)
    wakeup.set()
    async with asyncio.timeout(5):
        await waiting  # ended by set(), long before 30 s
    assert wakeup.is_set()
    await wakeup.wait(30)  # still set: returns at once
    wakeup.clear()
    assert not wakeup.is_set()


async def test_a_cancelled_wait_leaves_the_wakeup_usable() -> None:
    wakeup = Wakeup()
    waiting = asyncio.create_task(wakeup.wait(None))
    await asyncio.sleep(0)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    wakeup.set()  # no waiter: just set
    await wakeup.wait(None)


async def test_subscribers_are_woken_by_another_connections_commit_and_only_then(
    tmp_path: Path,
) -> None:
    path = tmp_path / "control.db"
    writer = _control_db(path)
    pulse = ControlPulse(path, interval=0.01)
    first, second = Wakeup(), Wakeup()
    pulse.subscribe(first)
    pulse.subscribe(second)
    pulse.start()
    try:
        await asyncio.sleep(0.1)  # ten reads, no commit
        assert not first.is_set() and not second.is_set()
        writer.execute("INSERT INTO t VALUES (1)")  # as `hypertab key revoke` commits
        async with asyncio.timeout(5):
            await first.wait(None)
            await second.wait(None)
        first.clear()
        second.clear()
        await asyncio.sleep(0.1)
        assert not first.is_set()  # one wake-up per change
    finally:
        pulse.close()
        writer.close()
    pulse.close()  # idempotent
