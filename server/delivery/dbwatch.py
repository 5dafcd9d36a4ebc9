"""Noticing that another connection committed to a SQLite file, for a few microseconds.

``PRAGMA data_version`` changes exactly when a connection *other than the one asking*
committed to the database. The dispatchers ask every 50 ms; on a plain ``sqlite3``
connection of their own (read-only, in the event loop's thread) the answer comes from the
shared-memory WAL index in microseconds, without a thread hop and without the per-statement
DEBUG lines aiosqlite writes, which at 20 polls a second would flood a debug log.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


class CommitWatch:
    """``changed()`` is True when another connection committed since the last call."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
        )
        self._version: int | None = None

    def changed(self) -> bool:
        """Whether ``data_version`` moved (True on the first call)."""
        row = self._conn.execute("PRAGMA data_version").fetchone()
        version = int(row[0]) if row is not None else 0
        moved = version != self._version
        self._version = version
        return moved

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._conn.close()
