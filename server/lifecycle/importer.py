"""Import an export archive as a new tenant: same tables (ids, names, columns, rows, order
keys, versions and op log), a new tenant id, a new admin key and a new data key.

The archive is untrusted input. Before anything is created: a ``.tar.gz`` is unpacked with
the ``data`` filter (no absolute paths, no ``..``, no links out, no devices), the manifest's
format is checked and every listed file's size and SHA-256 verified. The copy is then read
through the catalog only: SQL table and column names must be generated ones (``t_<n>``,
``c_<n>``) and tables are recreated with our own DDL, never the archive's. The whole copy
runs inside provisioning, so a failed import leaves no tenant and no file.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from protocol.limits import ID_PATTERN
from server.auth.apikeys import IssuedKey
from server.auth.principal import Plan
from server.control.tenants import TenantRecord
from server.engine.catalog import decode_columns
from server.lifecycle.archive_errors import ArchiveError
from server.lifecycle.export import DATABASE, EXPORT_FORMAT, MANIFEST, sha256_file
from server.lifecycle.service import Lifecycle

_TABLE_SQL = re.compile(r"^t_[0-9]{1,12}$")
_COLUMN_SQL = re.compile(r"^c_[0-9]{1,12}$")
_ID = re.compile(ID_PATTERN)


@contextlib.contextmanager
def unpacked(archive: Path) -> Iterator[Path]:
    """The archive's root directory (a ``.tar.gz`` is extracted to a temporary one)."""
    if archive.is_dir():
        yield archive
        return
    if not tarfile.is_tarfile(archive):
        raise ArchiveError(f"{archive} is neither a directory nor a tar archive")
    with tempfile.TemporaryDirectory(prefix="hypertab-import-") as tmp:
        with tarfile.open(archive, "r:*") as tar:
            try:
                tar.extractall(tmp, filter="data")
            except tarfile.FilterError as exc:
                raise ArchiveError(f"unsafe archive member: {exc}") from None
        yield Path(tmp)


def verify_archive(root: Path) -> dict[str, Any]:
    """The manifest, once every listed file is present with its size and SHA-256."""
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ArchiveError("archive has no readable manifest.json") from None
    if not isinstance(manifest, dict) or manifest.get("format") != EXPORT_FORMAT:
        raise ArchiveError(f"not a {EXPORT_FORMAT} archive")
    files = manifest.get("files")
    if not isinstance(files, list):
        raise ArchiveError("manifest lists no files")
    listed = set()
    for item in files:
        rel = item.get("path") if isinstance(item, dict) else None
        if not isinstance(rel, str):
            raise ArchiveError("manifest file entry without a path")
        parts = PurePosixPath(rel).parts
        if PurePosixPath(rel).is_absolute() or ".." in parts or not parts:
            raise ArchiveError("manifest names a path outside the archive")
        path = root.joinpath(*parts)
        if not path.is_file() or path.is_symlink():
            raise ArchiveError(f"archive file {rel!r} is missing")
        if path.stat().st_size != item.get("size") or sha256_file(path) != item.get("sha256"):
            raise ArchiveError(f"archive file {rel!r} does not match the manifest")
        listed.add(rel)
    if DATABASE not in listed:
        raise ArchiveError("archive has no database copy")
    return manifest


def _copy_tables(src: sqlite3.Connection, dst: sqlite3.Connection) -> None:
    rows = src.execute(
        "SELECT id, sql, name, version, dropped, columns FROM _ht_tables ORDER BY sql"
    ).fetchall()
    imported: list[str] = []
    for tid, sql, name, version, dropped, columns_json in rows:
        if not (isinstance(tid, str) and _ID.match(tid) and isinstance(sql, str)):
            raise ArchiveError("archive catalog has an invalid table id")
        if not _TABLE_SQL.match(sql) or not isinstance(version, int) or version < 0:
            raise ArchiveError("archive catalog has an invalid table entry")
        columns = decode_columns(columns_json)
        if any(not _COLUMN_SQL.match(c.sql) for c in columns):
            raise ArchiveError("archive catalog has an invalid column entry")
        dst.execute(
            "INSERT INTO _ht_tables (id, sql, name, version, dropped, columns)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (tid, sql, name, version, 1 if dropped else 0, columns_json),
        )
        imported.append(tid)
        if dropped:
            continue
        # Our DDL (as server/store/writer.py creates tables), from validated names only.
        names = "".join(f", {c.sql}" for c in columns)
        dst.execute(f"CREATE TABLE {sql} (_id TEXT PRIMARY KEY, _ord TEXT NOT NULL{names})")
        dst.execute(f"CREATE INDEX {sql}_ord ON {sql} (_ord)")
        marks = ", ".join("?" * (len(columns) + 2))
        insert = f"INSERT INTO {sql} (_id, _ord{names}) VALUES ({marks})"  # noqa: S608
        cursor = src.execute(f"SELECT _id, _ord{names} FROM {sql}")  # noqa: S608
        while batch := cursor.fetchmany(1000):
            dst.executemany(insert, batch)
    for tid in imported:
        dst.executemany(
            "INSERT INTO _ht_oplog (tbl, version, client, op, ts, change) VALUES (?,?,?,?,?,?)",
            src.execute(
                "SELECT tbl, version, client, op, ts, change FROM _ht_oplog WHERE tbl = ?",
                (tid,),
            ),
        )
        dst.executemany(
            "INSERT INTO _ht_tombstones (tbl, row) VALUES (?, ?)",
            src.execute("SELECT tbl, row FROM _ht_tombstones WHERE tbl = ?", (tid,)),
        )
    found = src.execute("SELECT value FROM _ht_meta WHERE key = 'next_sql'").fetchone()
    next_sql = found[0] if found is not None else 1
    if not isinstance(next_sql, int) or next_sql < 1:
        raise ArchiveError("archive catalog has an invalid counter")
    dst.execute("UPDATE _ht_meta SET value = ? WHERE key = 'next_sql'", (next_sql,))


async def import_tenant(
    lifecycle: Lifecycle,
    archive: Path,
    *,
    name: str | None,
    now: float,
    actor: str,
) -> tuple[TenantRecord, IssuedKey, dict[str, Any]]:
    """Create a new tenant holding the archive's tables; returns it, its admin key and
    the archive's manifest."""
    with unpacked(archive) as root:
        manifest = verify_archive(root)
        database = root / DATABASE
        tenant_info = manifest.get("tenant") if isinstance(manifest.get("tenant"), dict) else {}
        plan_name = tenant_info.get("plan") if isinstance(tenant_info, dict) else None
        plan = Plan(plan_name) if plan_name in {p.value for p in Plan} else Plan.FREE
        new_name = name or (tenant_info.get("name") if isinstance(tenant_info, dict) else None)
        if not isinstance(new_name, str):
            raise ArchiveError("give --name: the archive names no tenant")

        def populate(dst: sqlite3.Connection) -> None:
            src = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)
            try:
                _copy_tables(src, dst)
            finally:
                src.close()

        record, issued = await lifecycle.create_tenant(
            new_name, plan, now=now, actor=actor, populate=populate
        )
    return record, issued, manifest
