"""The catalog as stored: every table's row in ``_ht_tables`` and the SQL name counter."""

from __future__ import annotations

import sqlite3

from server.engine.catalog import TableState, decode_columns


def data_version(conn: sqlite3.Connection) -> int:
    """``PRAGMA data_version``: changes when another connection committed to the file."""
    (version,) = conn.execute("PRAGMA data_version").fetchone()
    return int(version)


def load_catalog(conn: sqlite3.Connection) -> tuple[dict[str, TableState], int]:
    """Every table (dropped ones too, so their ids stay taken) and the SQL name counter."""
    tables = {}
    for tid, sql, name, version, dropped, columns in conn.execute(
        "SELECT id, sql, name, version, dropped, columns FROM _ht_tables"
    ):
        tables[tid] = TableState(tid, name, sql, version, decode_columns(columns), bool(dropped))
    (next_sql,) = conn.execute("SELECT value FROM _ht_meta WHERE key='next_sql'").fetchone()
    return tables, int(next_sql)
