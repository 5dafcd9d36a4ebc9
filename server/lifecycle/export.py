"""Tenant export (data subject access): a portable archive of everything the tenant stored,
secrets excluded.

Archive layout (a directory, or the same files in a ``.tar.gz``)::

    manifest.json          format, tenant, time, tables, and size + SHA-256 of every file
    tenant.sqlite          a consistent copy of the tenant database (SQLite backup API,
                           taken while the server runs), secrets table emptied and vacuumed
    tables/t_<n>.json      each live table: id, name, version, columns, rows (id, order key,
                           values by column id) — exact values
    tables/t_<n>.csv       the same rows for spreadsheets: _id, _order, one column per
                           column name. Text (header names, row ids and cells) starting
                           with = + - @ tab or CR is prefixed with ' so that a spreadsheet
                           does not run it as a formula; numbers are written as numbers
                           (-5 stays -5)

Every file and directory of the archive is owner-only (0600 / 0700), as are the tenant
databases it is made from. File names use the generated SQL names (``t_<n>``), never user
text. The export is audited
(``admin.read``) in the control log and the tenant's log *before* any data is read, and
logged at WARNING as an alert.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import logging
import os
import shutil
import sqlite3
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import msgspec

from server.audit import log as audit_log
from server.audit.actions import Action
from server.audit.chain import AuditEntry
from server.control.plane import ControlPlane
from server.control.tenants import TenantRecord
from server.engine.catalog import TableState
from server.lifecycle.archive_errors import ExportError
from server.lifecycle.provision import open_tenant_db
from server.private import PRIVATE_FILE, private_tree
from server.store import reader
from server.store.schema import tenant_path

log = logging.getLogger(__name__)

EXPORT_FORMAT = "hypertab-export/1"
MANIFEST = "manifest.json"
DATABASE = "tenant.sqlite"
_CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def sha256_file(path: Path) -> str:
    """Streamed SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _copy_database(source: Path, target: Path) -> None:
    src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(target, isolation_level=None)
        try:
            src.backup(dst)  # all pages in one step: one consistent snapshot
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            has_secrets = dst.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='_ht_secrets'"
            ).fetchone()
            if has_secrets:
                dst.execute("PRAGMA secure_delete=1")
                dst.execute("DELETE FROM _ht_secrets")
            dst.execute("VACUUM")  # rebuilds the file: no freed page keeps a ciphertext
        finally:
            dst.close()
    finally:
        src.close()


def _csv_text(text: str) -> str:
    # A spreadsheet would run a cell starting with these as a formula (CSV injection).
    return "'" + text if text.startswith(_CSV_FORMULA_START) else text


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        # A number is data, not a formula, and must read back as a number: never prefixed.
        return str(value)
    if isinstance(value, (dict, list)):
        return _csv_text(json.dumps(value, ensure_ascii=False, sort_keys=True))
    return _csv_text(str(value))


def _table_files(conn: sqlite3.Connection, state: TableState, tables_dir: Path) -> dict[str, Any]:
    read = reader.read_snapshot(conn, state.id)
    assert read is not None
    table = read.table
    columns = [msgspec.to_builtins(c.to_def()) for c in table.columns]
    rows = [msgspec.to_builtins(r) for r in read.rows]
    doc = {
        "id": table.id,
        "name": table.name,
        "sql": table.sql,
        "version": table.version,
        "columns": columns,
        "rows": rows,
    }
    (tables_dir / f"{table.sql}.json").write_text(
        json.dumps(doc, ensure_ascii=False, indent=1, sort_keys=True) + "\n", encoding="utf-8"
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["_id", "_order", *(_csv_text(c.name) for c in table.columns)])
    for row in read.rows:
        writer.writerow(
            [
                _csv_text(row.id),
                _csv_text(row.order),
                *(_csv_cell(row.values.get(c.id)) for c in table.columns),
            ]
        )
    (tables_dir / f"{table.sql}.csv").write_text(buffer.getvalue(), encoding="utf-8")
    return {
        "id": table.id,
        "name": table.name,
        "sql": table.sql,
        "version": table.version,
        "rows": len(rows),
        "columns": len(columns),
    }


def build_export(source: Path, workdir: Path, tenant: TenantRecord, now: float) -> dict[str, Any]:
    """Write the archive's files into ``workdir``; returns the manifest (sync)."""
    database = workdir / DATABASE
    _copy_database(source, database)
    tables_dir = workdir / "tables"
    tables_dir.mkdir()
    conn = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)
    conn.isolation_level = None
    try:
        catalog, _ = reader.load_catalog(conn)
        states = sorted((t for t in catalog.values() if not t.dropped), key=lambda t: t.sql)
        tables = [_table_files(conn, state, tables_dir) for state in states]
    finally:
        conn.close()
    files = []
    for path in sorted(p for p in workdir.rglob("*") if p.is_file()):
        rel = path.relative_to(workdir).as_posix()
        files.append({"path": rel, "size": path.stat().st_size, "sha256": sha256_file(path)})
    manifest = {
        "format": EXPORT_FORMAT,
        "tenant": {"id": tenant.id, "name": tenant.name, "plan": tenant.plan.value},
        "exported_at": now,
        "database": DATABASE,
        "secrets": "excluded",
        "tables": tables,
        "files": files,
    }
    (workdir / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    private_tree(workdir)  # copied as is into the destination, modes included
    return manifest


def _write_archive(workdir: Path, out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out} already exists; not overwriting an export")
    if out.name.endswith((".tar.gz", ".tgz")):
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
        with os.fdopen(fd, "wb") as handle, tarfile.open(fileobj=handle, mode="w:gz") as tar:
            for path in sorted(workdir.rglob("*")):
                tar.add(path, arcname=path.relative_to(workdir).as_posix(), recursive=False)
        tmp.replace(out)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():
            out.rmdir()
        shutil.copytree(workdir, out)


def _export_sync(source: Path, out: Path, tenant: TenantRecord, now: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hypertab-export-") as tmp:
        manifest = build_export(source, Path(tmp), tenant, now)
        _write_archive(Path(tmp), out)
    return manifest


async def _audit(control: ControlPlane, source: Path, entry: AuditEntry) -> None:
    async with control.transaction() as conn:
        await audit_log.ensure_schema(conn, commit=False)
        await audit_log.append(conn, entry, commit=False)
    tenant_conn = await open_tenant_db(source)
    try:
        await audit_log.ensure_schema(tenant_conn, commit=True)
        await audit_log.append(tenant_conn, entry, commit=True)
    finally:
        await tenant_conn.close()


async def export_tenant(
    control: ControlPlane,
    data_dir: Path,
    tenant: TenantRecord,
    out: Path,
    *,
    now: float,
    actor: str,
) -> dict[str, Any]:
    """Audit, then write ``tenant``'s export archive to ``out`` (directory or .tar.gz)."""
    source = tenant_path(data_dir, tenant.id)
    entry = AuditEntry(
        now,
        actor,
        Action.ADMIN_READ,
        target=tenant.id,
        details={"what": "tenant_export", "secrets": "excluded"},
    )
    await _audit(control, source, entry)
    log.warning("tenant data export", extra={"tenant": tenant.id, "alert": "tenant_export"})
    return await asyncio.to_thread(_export_sync, source, out, tenant, now)
