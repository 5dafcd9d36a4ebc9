"""Connections to ``control.db`` for the data key store, apart from the control plane's."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiosqlite

from server.private import private_database
from server.secrets.envelope import SymmetricKey, new_key_material
from server.secrets.keyring import Keyring


def shred_only_keyring() -> Keyring:
    """A throwaway keyring for data key work that never wraps or unwraps (list, shred,
    schema) when no master keys are configured. Its key exists only in memory."""
    return Keyring([SymmetricKey("unconfigured", new_key_material())])


async def open_control_connection(path: Path) -> aiosqlite.Connection:
    """A separate autocommit connection to ``control.db`` (WAL, waits for the lock)."""
    await asyncio.to_thread(private_database, path)  # owner only, -wal/-shm included
    conn = await aiosqlite.connect(path, isolation_level=None)
    try:
        await conn.execute("PRAGMA busy_timeout=5000")
        await conn.execute("PRAGMA synchronous=FULL")
    except BaseException:
        await conn.close()
        raise
    return conn
