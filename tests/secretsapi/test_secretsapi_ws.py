"""The secret store end to end: SDK -> WebSocket -> tenant database, with real files."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from client_sdk import Client, ServerError
from server.auth.principal import Scope
from server.store.schema import tenant_path

OPENAI = "sk-proj-ABCDEFGHIJKLMNOP-the-plaintext-1234"


async def test_set_list_reveal_delete_roundtrip(hub_url: str, tenant: Any) -> None:
    _, key = tenant
    async with await Client.connect(hub_url, api_key=key) as client:
        stored = await client.secrets.set("OPENAI_API_KEY", OPENAI, kind="ai_provider_key")
        assert stored.name == "OPENAI_API_KEY" and stored.masked == "…1234"
        await client.secrets.set("PIN", "1234", kind="env_var")
        listing = await client.secrets.list()
        assert [(e.name, e.kind, e.masked) for e in listing] == [
            ("OPENAI_API_KEY", "ai_provider_key", "…1234"),
            ("PIN", "env_var", "••••"),
        ]
        assert await client.secrets.reveal("OPENAI_API_KEY") == OPENAI
        await client.secrets.delete("PIN")
        with pytest.raises(ServerError) as missing:
            await client.secrets.reveal("PIN")
        assert missing.value.code == "secret_not_found"
        with pytest.raises(ServerError) as again:
            await client.secrets.delete("PIN")
        assert again.value.code == "secret_not_found"


async def test_invalid_secrets_are_refused_without_echoing_the_value(
    hub_url: str, tenant: Any
) -> None:
    _, key = tenant
    async with await Client.connect(hub_url, api_key=key) as client:
        with pytest.raises(ServerError) as bad:
            await client.secrets.set("H", "Bearer abc\r\nX-Evil: 1", kind="api_account_auth_header")
        assert bad.value.code == "invalid_secret"
        assert "abc" not in bad.value.message and "Evil" not in bad.value.message
        with pytest.raises(ServerError) as bad_name:
            await client.secrets.set("../etc", "x")
        assert bad_name.value.code == "bad_message"


async def test_scopes_gate_each_operation(hub: Any, hub_url: str, tenant: Any) -> None:
    record, _ = tenant
    now = time.time()
    writer = await hub.control.create_key(
        record.id, "writer", [Scope.SECRETS_WRITE], created_by="test", now=now
    )
    reader = await hub.control.create_key(
        record.id, "reader", [Scope.SECRETS_READ], created_by="test", now=now
    )
    tables = await hub.control.create_key(
        record.id, "tables", [Scope.TABLES_READ], created_by="test", now=now
    )
    async with await Client.connect(hub_url, api_key=writer.secret) as w:
        await w.secrets.set("TOKEN", "value-of-the-token-0000")
        assert [e.name for e in await w.secrets.list()] == ["TOKEN"]  # write may list
        with pytest.raises(ServerError) as no_read:
            await w.secrets.reveal("TOKEN")
        assert no_read.value.code == "forbidden"
    async with await Client.connect(hub_url, api_key=reader.secret) as r:
        assert await r.secrets.reveal("TOKEN") == "value-of-the-token-0000"
        with pytest.raises(ServerError) as no_write:
            await r.secrets.set("OTHER", "x")
        assert no_write.value.code == "forbidden"
        with pytest.raises(ServerError) as no_delete:
            await r.secrets.delete("TOKEN")
        assert no_delete.value.code == "forbidden"
    async with await Client.connect(hub_url, api_key=tables.secret) as t:
        with pytest.raises(ServerError) as no_list:
            await t.secrets.list()
        assert no_list.value.code == "forbidden"


async def test_reveal_is_audited_as_secret_read(hub: Any, hub_url: str, tenant: Any) -> None:
    record, key = tenant
    async with await Client.connect(hub_url, api_key=key) as client:
        await client.secrets.set("DB_URL", "postgres://u:p@h/db")
        await client.secrets.reveal("DB_URL")
    db = tenant_path(Path(hub.config.data_dir), record.id)
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT actor, action, target, details FROM _ht_audit_log").fetchall()
    actions = [(r[1], r[2]) for r in rows]
    assert ("secret.written", "DB_URL") in actions
    assert ("secret.read", "DB_URL") in actions
    assert all("postgres" not in str(r) for r in rows)
