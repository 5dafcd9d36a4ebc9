"""Grep every file of the data dir and every log line: no secret plaintext, no master key
(raw, base64 or hex) and no API key appears anywhere."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import time
from pathlib import Path

import pytest
from lifecycle_helpers import url_of

from client_sdk import Client
from server.app import HypertabServer
from server.auth.principal import TenantId
from server.config import Config
from server.lifecycle.export import export_tenant
from server.lifecycle.provision import open_tenant_db
from server.lifecycle.rotation import rotate_tenant_key
from server.logs import configure_logging
from server.store.schema import tenant_path

PLAINTEXTS = [
    "sk-proj-LEAKCANARY-0123456789abcdefghij",
    "Bearer LEAKCANARY-header-value-zyxwvu",
    "postgres://app:LEAKCANARY-pw@db.internal/app",
]


def _forms(raw: bytes) -> list[bytes]:
    return [raw, base64.b64encode(raw), raw.hex().encode(), raw.hex().upper().encode()]


async def test_no_secret_key_or_credential_in_files_or_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    master = os.urandom(32)
    monkeypatch.setenv("HYPERTAB_MASTER_KEYS", "mk1:" + base64.b64encode(master).decode())
    logs = io.StringIO()
    handler = configure_logging("DEBUG", stream=logs)
    data_dir = tmp_path / "data"
    hub = HypertabServer(Config(data_dir=data_dir, port=0))
    await hub.start()
    api_keys: list[str] = []
    try:
        lifecycle = hub.services.lifecycle
        record, issued = await lifecycle.create_tenant("acme", now=time.time())
        doomed, doomed_key = await lifecycle.create_tenant("doomed", now=time.time())
        api_keys += [issued.secret, doomed_key.secret]
        kinds = ["ai_provider_key", "api_account_auth_header", "env_var"]
        for key in (issued.secret, doomed_key.secret):
            async with await Client.connect(url_of(hub), api_key=key) as client:
                table = await client.create_table("Notes", [("Body", "text")])
                await table.insert({"Body": "ordinary table data"})
                for i, (value, kind) in enumerate(zip(PLAINTEXTS, kinds, strict=True)):
                    await client.secrets.set(f"S{i}", value, kind=kind)  # type: ignore[arg-type]
                    assert await client.secrets.reveal(f"S{i}") == value
                await client.secrets.set("S0", PLAINTEXTS[0] + "-v2", kind="ai_provider_key")
                await client.secrets.list()
                await client.secrets.delete("S2")
        tenant = TenantId(record.id)
        conn = await open_tenant_db(tenant_path(data_dir, tenant))
        try:
            await rotate_tenant_key(lifecycle.datakeys, conn, tenant, now=time.time())
        finally:
            await conn.close()
        await export_tenant(
            hub.control, data_dir, record, tmp_path / "export", now=time.time(), actor="test"
        )
        await lifecycle.delete_tenant(
            doomed.id, now=time.time(), actor="test", close_store=hub.stores.close_tenant
        )
    finally:
        await hub.stop()
        logging.getLogger().removeHandler(handler)

    needles = [p.encode() for p in PLAINTEXTS] + _forms(master)
    needles += [k.encode() for k in api_keys]
    files = [p for p in [*data_dir.rglob("*"), *(tmp_path / "export").rglob("*")] if p.is_file()]
    assert any(p.name == "control.db" for p in files) and len(files) > 5
    for path in files:
        content = path.read_bytes()
        for needle in needles:
            assert needle not in content, f"found a secret in {path.relative_to(tmp_path)}"
    text = logs.getvalue()
    assert text  # logging was captured
    for needle in needles:
        assert needle.decode("latin-1") not in text
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    alerts = [line for line in lines if line.get("alert") == "tenant_export"]
    assert alerts and alerts[0]["level"] == "WARNING"
