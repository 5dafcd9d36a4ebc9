"""A backup taken while a client keeps writing, restored into an empty data directory:
every op acknowledged before the backup began is there, with the same ids, keys, versions
and secrets, and the audit chains verify."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from backup_helpers import bring_keys, cli, cli_json, cli_process, loose_modes, start_hub, url_of

from client_sdk import Client

SECRET = "sk-test-backup-keeps-this-encrypted-0042"


async def _snapshot(client: Client, table: str) -> tuple[int, dict[str, Any]]:
    info = next(t for t in await client.list_tables() if t.name == table)
    rows = {row.id: dict(row.values) async for row in client.query_all(info.id)}
    return info.version, rows


async def test_backup_during_writes_restores_every_acked_op(
    hub: Any, hub_url: str, tenant: Any, tmp_path: Path
) -> None:
    record, key = tenant
    data_dir = Path(hub.config.data_dir)
    acked: list[tuple[str, int]] = []
    stop = asyncio.Event()

    async with await Client.connect(hub_url, api_key=key) as client:
        still = await client.create_table("Still", [("Name", "text"), ("N", "number")])
        for n in range(20):
            await still.insert({"Name": f"row {n}", "N": n})
        await client.secrets.set("OPENAI", SECRET, kind="ai_provider_key")
        still_before = await _snapshot(client, "Still")
        hot = await client.create_table("Hot", [("N", "number")])

        async def write() -> None:
            n = 0
            while not stop.is_set():
                acked.append((await hot.insert({"N": n}), n))  # returns once acked
                n += 1

        writer = asyncio.create_task(write())
        try:
            while len(acked) < 50:
                await asyncio.sleep(0.01)
            acked_before = list(acked)  # acknowledged before the backup began
            # A separate process, as an operator runs it next to `hypertab serve`.
            result = await cli_process(data_dir, "backup", str(tmp_path / "bk"), "--json")
            acked_during = len(acked) - len(acked_before)
        finally:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
    assert result.returncode == 0, result.stderr
    assert acked_during > 0, "the writer must keep committing while the backup runs"
    summary = json.loads(result.stdout)
    assert summary["tenants"] == [record.id]

    backup = tmp_path / "bk"
    assert loose_modes(backup) == []
    every_byte = b"".join(p.read_bytes() for p in backup.rglob("*") if p.is_file())
    assert SECRET.encode() not in every_byte and b"row 1" not in every_byte
    assert b"SQLite format 3" not in every_byte  # nothing stored in the clear
    manifest = json.loads((backup / "manifest.json").read_text())
    names = {f["name"] for f in manifest["server"]["files"]}
    assert "server/files/pepper.key" in names and not any(n.endswith(".lock") for n in names)

    fresh = tmp_path / "fresh"
    bring_keys(data_dir, fresh)
    restored = await cli_json(fresh, "restore", str(backup))
    assert restored["tenants"] == [record.id] and restored["deleted_since_backup"] == []
    assert loose_modes(fresh) == []

    # Table versions are the backup's (read from the restored file, as the manifest says).
    with sqlite3.connect(fresh / "tenants" / f"{record.id}.db") as conn:
        versions = conn.execute("SELECT sql, version, dropped FROM _ht_tables ORDER BY sql")
        on_disk = [{"sql": s, "version": v, "dropped": bool(d)} for s, v, d in versions]
    assert on_disk == manifest["tenants"][0]["tables"]

    server = await start_hub(fresh)
    try:  # the old admin key authenticates: same tenant id, same key, same pepper
        async with await Client.connect(url_of(server), api_key=key) as client:
            assert client.welcome.tenant == record.id
            assert await _snapshot(client, "Still") == still_before
            version, rows = await _snapshot(client, "Hot")
            for row_id, n in acked_before:
                assert rows[row_id] == {hot.replica.column_id("N"): n}
            assert len(acked_before) <= len(rows) <= len(acked)
            assert version == 1 + len(rows)  # create + one insert per row: no gap, no loss
            assert await client.secrets.reveal("OPENAI") == SECRET  # data keys restored
            more = await client.table("Hot")
            await more.insert({"N": -1})  # and it keeps working
    finally:
        await server.stop()

    for which in (("--control",), ("--tenant", record.id)):
        verified = await cli(fresh, "audit", "verify", *which)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert ": ok (" in verified.stdout
    assert time.time() - manifest["created_at"] < 600
