"""Attacks on storage (docs/security.md, CS-*): user text never reaches SQL text or a file
path, and a hostile archive cannot write outside its place or read another tenant's data."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sqlite3
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest
from attack_helpers import new_tenant, ws_url

from client_sdk import Client
from server.lifecycle.export import DATABASE, EXPORT_FORMAT, MANIFEST, export_tenant
from server.lifecycle.importer import ArchiveError, import_tenant
from server.store.schema import tenant_path

EVIL_TABLE = 'x"; DROP TABLE _ht_tables; -- ../../../etc/passwd'
EVIL_COLUMN = "a]b`c'd\"; ATTACH DATABASE '/tmp/pwn.db' AS pwn; --"
SQL_NAME = re.compile(r"^(t_\d+(_ord)?|_ht_\w+|sqlite_\w+)$")


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _exists(path: Path) -> bool:
    return path.exists()


def _named_anywhere(root: Path, *words: str) -> bool:
    return any(word in p.name for p in root.rglob("*") for word in words)


async def test_cs07_user_names_never_reach_the_sql_schema(hub: Any) -> None:
    record, key = await new_tenant(hub, "acme")
    async with await Client.connect(ws_url(hub), api_key=key) as client:
        table = await client.create_table(EVIL_TABLE, [(EVIL_COLUMN, "text")])
        await table.insert({EVIL_COLUMN: EVIL_COLUMN})
    path = tenant_path(Path(hub.config.data_dir), record.id)
    with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True) as db:
        schema = db.execute("SELECT name, coalesce(sql, '') FROM sqlite_master").fetchall()
        (stored,) = db.execute("SELECT name FROM _ht_tables").fetchone()
    assert stored == EVIL_TABLE  # the name is data
    for name, sql in schema:
        assert SQL_NAME.match(name), name
        assert "DROP" not in sql and "ATTACH" not in sql and "passwd" not in sql
    assert not _exists(Path("/tmp/pwn.db"))


async def test_cs08_path_like_names_never_reach_file_paths(hub: Any, tmp_path: Path) -> None:
    record, key = await new_tenant(hub, "../../escape")
    async with await Client.connect(ws_url(hub), api_key=key) as client:
        table = await client.create_table("../../../outside", [("..\\..\\c", "text")])
        await table.insert({"..\\..\\c": "/etc/passwd"})
    data_dir = Path(hub.config.data_dir)
    assert _exists(tenant_path(data_dir, record.id))
    assert not _named_anywhere(tmp_path, "escape", "outside")
    before = _files(tmp_path)
    out = tmp_path / "exports" / "one"
    manifest = await export_tenant(
        hub.control, data_dir, record, out, now=time.time(), actor="attack-test"
    )
    written = _files(tmp_path) - before
    names = {f.removeprefix("exports/one/") for f in written}
    assert all(f.startswith("exports/one/") for f in written)
    assert {MANIFEST, DATABASE} <= names
    assert all(re.fullmatch(r"tables/t_\d+\.(json|csv)", n) for n in names - {MANIFEST, DATABASE})
    assert [t["name"] for t in manifest["tables"]] == ["../../../outside"]


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _link(name: str, target: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


@pytest.mark.parametrize(
    ("member", "why"),
    [
        (_file("../escape.txt", b"pwned"), "unsafe archive member"),
        # the data filter strips the leading slash: unpacked inside, then no database
        (_file("/tmp/hypertab-abs-escape.txt", b"pwned"), "no database"),
        (_link("tenant.sqlite", "../../control.db", tarfile.SYMTYPE), "unsafe archive member"),
        (_link("tenant.sqlite", "/etc/passwd", tarfile.LNKTYPE), "unsafe archive member"),
    ],
    ids=["dotdot", "absolute", "symlink-out", "hardlink-out"],
)
async def test_cs09_archive_members_escaping_the_root_are_refused(
    hub: Any, tmp_path: Path, member: tuple[tarfile.TarInfo, bytes | None], why: str
) -> None:
    manifest = json.dumps({"format": EXPORT_FORMAT, "files": []}).encode()
    archive = tmp_path / "evil.tar.gz"
    archive.write_bytes(_tar([_file(MANIFEST, manifest), member]))
    tenants_before = await hub.control.list_tenants()
    with pytest.raises(ArchiveError, match=why):
        await import_tenant(
            hub.services.lifecycle, archive, name="evil", now=time.time(), actor="attack-test"
        )
    assert await hub.control.list_tenants() == tenants_before
    assert not _exists(tmp_path / "escape.txt")
    assert not _exists(Path("/tmp/hypertab-abs-escape.txt"))


def _relative(path: Path, start: Path) -> str:
    return os.path.relpath(path, start)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_cs10_archive_pointing_at_another_tenants_files_is_refused(
    hub: Any, tmp_path: Path
) -> None:
    victim, _ = await new_tenant(hub, "victim")
    victim_db = tenant_path(Path(hub.config.data_dir), victim.id)
    tenants_before = await hub.control.list_tenants()
    entry = {"path": DATABASE, "size": victim_db.stat().st_size, "sha256": _sha256(victim_db)}
    cases: dict[str, tuple[dict[str, Any], str]] = {
        # a manifest path climbing out of the archive to the victim's database
        "dotdot": ({**entry, "path": _relative(victim_db, tmp_path / "a-x")}, "outside"),
        "absolute": ({**entry, "path": str(victim_db)}, "outside"),
        # the database copy is a symlink to the victim's live file (size and hash match)
        "symlink": (entry, "missing"),
    }
    for name, (item, why) in cases.items():
        root = tmp_path / f"a-{name}"
        root.mkdir()
        if name == "symlink":
            (root / DATABASE).symlink_to(victim_db)
        (root / MANIFEST).write_text(json.dumps({"format": EXPORT_FORMAT, "files": [item]}))
        with pytest.raises(ArchiveError, match=why):
            await import_tenant(
                hub.services.lifecycle, root, name="thief", now=time.time(), actor="attack-test"
            )
    assert await hub.control.list_tenants() == tenants_before
