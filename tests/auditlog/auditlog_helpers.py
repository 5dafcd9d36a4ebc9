"""Helpers for the audit-log tests: read the logs from the SQLite files, run the CLI."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from server.store.schema import tenant_path


def rows(db: Path) -> list[dict[str, Any]]:
    """Every audit entry of a database file, in id order, details parsed."""
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        found = conn.execute("SELECT * FROM _ht_audit_log ORDER BY id").fetchall()
    return [{**dict(r), "details": json.loads(r["details"])} for r in found]


def control_rows(hub: Any, action: str | None = None) -> list[dict[str, Any]]:
    """The control log's entries (of one action when given)."""
    found = rows(hub.config.data_dir / "control.db")
    return [r for r in found if action is None or r["action"] == action]


def tenant_rows(hub: Any, tenant: str, action: str | None = None) -> list[dict[str, Any]]:
    """A tenant log's entries (of one action when given)."""
    found = rows(tenant_path(hub.config.data_dir, tenant))
    return [r for r in found if action is None or r["action"] == action]


def file_bytes(db: Path) -> bytes:
    """A database file and its WAL, as bytes (to prove something was never stored)."""
    data = db.read_bytes()
    wal = db.with_name(db.name + "-wal")
    return data + (wal.read_bytes() if wal.exists() else b"")


def hypertab(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the real ``hypertab`` command against ``data_dir``."""
    script = Path(sys.executable).parent / "hypertab"
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "server.cli"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERTAB_")}
    return subprocess.run(
        [*argv, *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
