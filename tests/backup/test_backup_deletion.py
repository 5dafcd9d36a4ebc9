"""The deletion promise covers backups: a tenant deleted after a backup cannot be decrypted
from it nor restored, even by an operator holding the backup and the master key."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from backup_helpers import bring_keys, cli, cli_json, cli_process, start_hub, url_of

from client_sdk import Client
from client_sdk.errors import AuthenticationError
from server.backup import keystore
from server.backup.crypto import SERVER_SCOPE
from server.backup.errors import TamperedBackup, TenantShredded
from server.backup.files import CONTROL_NAME
from server.backup.verify import open_file, open_manifest, tenant_key
from server.secrets import load_key_file

SECRET = "sk-doomed-tenant-secret-000000000007"


def _wrapped_keys(data_dir: Path, tenant: str) -> list[bytes]:
    with sqlite3.connect(data_dir / "control.db") as conn:
        rows = conn.execute(
            "SELECT wrapped_key FROM _ht_data_keys WHERE tenant_id = ?", (tenant,)
        ).fetchall()
    return [bytes(r[0]) for r in rows]


async def test_tenant_deleted_after_a_backup_is_gone_from_it(
    hub: Any, hub_url: str, tmp_path: Path
) -> None:
    data_dir = Path(hub.config.data_dir)
    lifecycle = hub.services.lifecycle
    kept, kept_key = await lifecycle.create_tenant("kept", now=time.time())
    doomed, doomed_key = await lifecycle.create_tenant("doomed", now=time.time())
    for key in (kept_key.secret, doomed_key.secret):
        async with await Client.connect(hub_url, api_key=key) as client:
            table = await client.create_table("T", [("X", "text")])
            await table.insert({"X": "hello"})
            await client.secrets.set("KEY", SECRET, kind="env_var")
    doomed_wrapped = _wrapped_keys(data_dir, doomed.id)
    assert doomed_wrapped

    backup = tmp_path / "bk"
    made = await cli_json(data_dir, "backup", str(backup))
    assert sorted(made["tenants"]) == sorted([kept.id, doomed.id])

    # The backup never carries a data key: its control.db copy has none.
    ring = load_key_file(data_dir / "master.keys")
    manifest = open_manifest(backup, ring)
    control_copy = tmp_path / "control-copy.db"
    (entry,) = [e for e in manifest.server_files if e["name"] == CONTROL_NAME]
    with control_copy.open("wb") as sink:
        open_file(backup, entry, ring.get(manifest.doc["master_key_id"]), scope=SERVER_SCOPE,
                  backup_id=manifest.backup_id, sink=sink)  # fmt: skip
    with sqlite3.connect(control_copy) as conn:
        assert conn.execute("SELECT COUNT(*) FROM _ht_data_keys").fetchone() == (0,)
        assert conn.execute("SELECT COUNT(*) FROM tenants").fetchone() == (2,)
    copy_bytes = control_copy.read_bytes()
    assert not any(w in copy_bytes for w in doomed_wrapped)

    # Deleted by another process while the hub serves (it learns through control.db).
    deleted = await cli_process(data_dir, "tenant", "delete", doomed.id, "--yes", "--json")
    assert deleted.returncode == 0, deleted.stderr

    # Its part no longer decrypts: the key store has a tombstone, not a key.
    store = keystore.load(data_dir / "tenant-keys.json")
    assert doomed.id in store.deleted and store.keys_of(doomed.id) == []
    (doomed_part,) = [t for t in manifest.tenants if t["id"] == doomed.id]
    with pytest.raises(TenantShredded):
        tenant_key(store, doomed_part, ring)
    assert _wrapped_keys(data_dir, doomed.id) == []  # nor does the live control.db have it
    # Even the right data key of another tenant does not open it (AD binds the tenant).
    (kept_part,) = [t for t in manifest.tenants if t["id"] == kept.id]
    with pytest.raises(TamperedBackup), (tmp_path / "x").open("wb") as sink:
        open_file(backup, doomed_part["file"], tenant_key(store, kept_part, ring),
                  scope=doomed.id, backup_id=manifest.backup_id, sink=sink)  # fmt: skip

    checked = await cli(data_dir, "backup", "verify", str(backup), "--json")
    assert checked.returncode == 0, checked.stderr
    statuses = {t["id"]: t["status"] for t in json.loads(checked.stdout)["tenants"]}
    assert statuses == {kept.id: "ok", doomed.id: "shredded"}

    fresh = tmp_path / "fresh"
    bring_keys(data_dir, fresh)
    restored = await cli_json(fresh, "restore", str(backup))
    assert restored["tenants"] == [kept.id]
    assert restored["deleted_since_backup"] == [doomed.id]
    assert not (fresh / "tenants" / f"{doomed.id}.db").exists()
    listing = await cli_json(fresh, "tenant", "list")
    assert [t["id"] for t in listing["tenants"]] == [kept.id]
    assert _wrapped_keys(fresh, doomed.id) == []

    server = await start_hub(fresh)
    try:
        with pytest.raises(AuthenticationError):
            await Client.connect(url_of(server), api_key=doomed_key.secret)
        async with await Client.connect(url_of(server), api_key=kept_key.secret) as client:
            assert await client.secrets.reveal("KEY") == SECRET
    finally:
        await server.stop()
    verified = await cli(fresh, "audit", "verify", "--control")
    assert verified.returncode == 0, verified.stdout + verified.stderr
