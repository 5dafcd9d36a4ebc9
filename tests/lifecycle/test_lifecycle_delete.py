"""``hypertab tenant delete`` while the hub runs: sockets closed (4003), keys refused (401),
no database file, data keys shredded from control.db, a certificate that verifies, and a
modified certificate that does not."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from lifecycle_helpers import cli, cli_json
from websockets.asyncio.client import connect

from client_sdk import AuthenticationError, Client
from server.store.schema import tenant_path


def _read_all(directory: Path, pattern: str) -> bytes:
    return b"".join(p.read_bytes() for p in directory.glob(pattern))


async def _open_socket(url: str, key: str) -> Any:
    ws = await connect(url, additional_headers={"Authorization": f"Bearer {key}"})
    await ws.recv()  # welcome
    return ws


async def test_cli_delete_with_the_hub_running(
    hub: Any, hub_url: str, tenant: Any, tmp_path: Path
) -> None:
    record, key = tenant
    data_dir = Path(hub.config.data_dir)
    db = tenant_path(data_dir, record.id)
    async with await Client.connect(hub_url, api_key=key, reconnect=False) as client:
        people = await client.create_table("People", [("Name", "text")])
        await people.insert({"Name": "Ada"})
        await client.secrets.set("OPENAI", "sk-proj-secret-to-be-shredded-0001")
    with sqlite3.connect(data_dir / "control.db") as conn:
        (wrapped,) = conn.execute(
            "SELECT wrapped_key FROM _ht_data_keys WHERE tenant_id = ?", (record.id,)
        ).fetchone()
    sockets = [await _open_socket(hub_url, key) for _ in range(2)]
    certificate = tmp_path / "cert.json"

    result = await cli_json(
        data_dir, "tenant", "delete", record.id, "--yes", "--certificate", str(certificate)
    )
    assert result["tenant"]["deleted_at"] is not None

    for ws in sockets:
        await asyncio.wait_for(ws.wait_closed(), 10)
        assert ws.close_code == 4003
    while hub.stores.open_count:  # the hub closes the store when it sees the revocation
        await asyncio.sleep(0.01)
    assert not any(db.parent.glob(f"{record.id}.db*"))
    with pytest.raises(AuthenticationError) as refused:
        await Client.connect(hub_url, api_key=key, reconnect=False)
    assert refused.value.status == 401

    with sqlite3.connect(data_dir / "control.db") as conn:
        left = conn.execute(
            "SELECT COUNT(*) FROM _ht_data_keys WHERE tenant_id = ?", (record.id,)
        ).fetchone()
        actions = [r[0] for r in conn.execute("SELECT action FROM _ht_audit_log")]
    assert left == (0,)
    assert "tenant.deleted" in actions
    control_bytes = _read_all(data_dir, "control.db*")
    assert bytes(wrapped) not in control_bytes  # shredded, WAL included

    retained = (data_dir / "audit-retained" / f"{record.id}.jsonl").read_text()
    assert "secret.written" in retained and "sk-proj" not in retained

    verified = await cli(data_dir, "certificate", "verify", str(certificate))
    assert verified.returncode == 0, verified.stderr
    doc = json.loads(certificate.read_text())
    kinds = {item["kind"] for item in doc["payload"]["items"]}
    assert {"tenant_database", "secret", "data_key"} <= kinds

    doc["payload"]["items"][0]["size"] += 1
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(doc))
    refused_cert = await cli(data_dir, "certificate", "verify", str(forged))
    assert refused_cert.returncode == 1 and "signature" in refused_cert.stderr

    other_key = (await cli(tmp_path / "elsewhere", "certificate", "public-key")).stdout.strip()
    unpinned = await cli(
        data_dir, "certificate", "verify", str(certificate), "--public-key", other_key
    )
    assert unpinned.returncode == 1 and "not trusted" in unpinned.stderr


async def test_server_side_delete_closes_and_shreds(hub: Any, hub_url: str, tenant: Any) -> None:
    record, key = tenant
    data_dir = Path(hub.config.data_dir)
    ws = await _open_socket(hub_url, key)
    result = await hub.services.lifecycle.delete_tenant(
        record.id, now=1_800_000_000.0, actor="test", close_store=hub.stores.close_tenant
    )
    await asyncio.wait_for(ws.wait_closed(), 10)
    assert ws.close_code == 4003
    assert not any((data_dir / "tenants").glob(f"{record.id}.db*"))
    assert result.path.exists()
    from server.lifecycle.certificate import (
        load_or_create_signing_key,
        public_key_b64,
        verify_certificate,
    )
    from server.lifecycle.delete import signing_key_path

    pinned = public_key_b64(load_or_create_signing_key(signing_key_path(data_dir)))
    payload = verify_certificate(result.certificate, trusted_keys=[pinned])
    assert payload["tenant"]["id"] == record.id
    assert (signing_key_path(data_dir).stat().st_mode & 0o777) == 0o600
