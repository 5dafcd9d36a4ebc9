"""Export while the hub runs, import into a fresh server: the same tables, secrets excluded."""

from __future__ import annotations

import csv
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from lifecycle_helpers import cli, cli_json, start_hub, url_of

from client_sdk import Client
from protocol.ops import DropTable, MoveRow

SECRET = "sk-proj-never-in-an-export-0000000042"


def _archive_files(out: Path) -> list[str]:
    if out.name.endswith(".tar.gz"):
        with tarfile.open(out) as tar:
            return [m.name for m in tar.getmembers()]
    return [p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()]


def _every_byte(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())


async def _snapshot(client: Client) -> list[Any]:
    """Every table as (id, name, version, columns, rows with id/order/values), by id."""
    shot = []
    for info in sorted(await client.list_tables(), key=lambda t: t.id):
        result = await client.query(info.id, limit=1000)
        rows = [(r.id, r.order, dict(sorted(r.values.items()))) for r in result.rows]
        columns = [(c.id, c.name, c.type, c.formula) for c in info.columns]
        shot.append((info.id, info.name, info.version, columns, rows))
    return shot


@pytest.mark.parametrize("archive_name", ["export-dir", "export.tar.gz"])
async def test_export_then_import_gives_the_same_tables(
    hub: Any, hub_url: str, tenant: Any, tmp_path: Path, archive_name: str
) -> None:
    record, key = tenant
    data_dir = Path(hub.config.data_dir)
    async with await Client.connect(hub_url, api_key=key) as client:
        people = await client.create_table(
            "People", [("Name", "text"), ("Age", "number"), ("Admin", "boolean"), ("Meta", "json")]
        )
        ada = await people.insert({"Name": "Ada", "Age": 36, "Admin": True, "Meta": {"k": [1]}})
        bob = await people.insert({"Name": "=cmd|' /C calc'!A0", "Age": 1.5})
        eve = await people.insert({"Name": "Eve"})
        await people.update(ada, {"Age": 37})
        await client.apply(people.id, [MoveRow(row=eve, before=ada)])
        await people.delete(bob)
        await client.create_table("Empty", [("X", "text")])
        gone = await client.create_table("Gone", [("X", "text")])
        await client.apply(gone.id, [DropTable()])
        await client.secrets.set("OPENAI", SECRET, kind="ai_provider_key")
        before = await _snapshot(client)

    out = tmp_path / archive_name
    exported = await cli(data_dir, "tenant", "export", record.id, str(out))
    assert exported.returncode == 0, exported.stderr

    files = _archive_files(out)
    assert {"manifest.json", "tenant.sqlite"} <= set(files)
    assert sum(f.endswith(".json") and f.startswith("tables/") for f in files) == 2
    if not archive_name.endswith(".tar.gz"):
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["secrets"] == "excluded"
        (people_info,) = [t for t in manifest["tables"] if t["name"] == "People"]
        with (out / "tables" / f"{people_info['sql']}.csv").open() as handle:
            rows = list(csv.reader(handle))
        assert rows[0] == ["_id", "_order", "Name", "Age", "Admin", "Meta"]
        assert [r[2] for r in rows[1:]] == ["Eve", "Ada"]
        table_doc = json.loads((out / "tables" / f"{people_info['sql']}.json").read_text())
        assert [r["values"].get("Meta") for r in table_doc["rows"]] == [None, {"k": [1]}]
    every_byte = _every_byte(tmp_path)
    assert SECRET.encode() not in every_byte

    fresh_dir = tmp_path / "fresh"
    assert (await cli(fresh_dir, "keyring", "generate")).returncode == 0
    imported = await cli_json(fresh_dir, "tenant", "import", str(out), "--name", "restored")
    assert imported["tenant"]["id"] != record.id
    fresh = await start_hub(fresh_dir)
    try:
        async with await Client.connect(url_of(fresh), api_key=imported["key"]["secret"]) as c2:
            assert await _snapshot(c2) == before
            assert await c2.secrets.list() == []
            restored = await c2.table("People")  # and it keeps working: new edits apply
            await restored.insert({"Name": "Zed"})
    finally:
        await fresh.stop()
    import sqlite3

    with sqlite3.connect(data_dir / "control.db") as conn:
        reads = conn.execute(
            "SELECT target, details FROM _ht_audit_log WHERE action = 'admin.read'"
        ).fetchall()
    assert any(target == record.id and "tenant_export" in d for target, d in reads)


async def test_tampered_archive_is_refused_and_leaves_nothing(
    hub: Any, tenant: Any, tmp_path: Path
) -> None:
    record, _ = tenant
    out = tmp_path / "export"
    exported = await cli(Path(hub.config.data_dir), "tenant", "export", record.id, str(out))
    assert exported.returncode == 0, exported.stderr
    database = out / "tenant.sqlite"
    database.write_bytes(database.read_bytes() + b"\0")
    fresh_dir = tmp_path / "fresh"
    result = await cli(fresh_dir, "tenant", "import", str(out))
    assert result.returncode == 1 and "does not match" in result.stderr
    assert not (fresh_dir / "tenants").exists() or not any((fresh_dir / "tenants").iterdir())
    listing = await cli_json(fresh_dir, "tenant", "list")
    assert listing == {"tenants": []}
