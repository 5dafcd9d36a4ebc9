"""A secret that names a data key version that does not exist gets a non-temporary code.

It used to answer ``secrets_unavailable`` (temporary), so a client retried a read that can
never succeed. Data key versions start at 1; 0 (or a version the tenant never had) is a
row no writer of ours made.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from client_sdk import Client, ServerError
from protocol.errors import is_temporary
from server.store.schema import tenant_path

VALUE = "sk-test-value-that-must-never-come-back-0123"


def _set_version(db: Path, name: str, version: int) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("UPDATE _ht_secrets SET key_version = ? WHERE name = ?", (version, name))


@pytest.mark.parametrize("version", [0, 99])
async def test_a_missing_data_key_version_is_not_temporary(
    hub: Any, hub_url: str, tenant: Any, version: int
) -> None:
    record, key = tenant
    db = tenant_path(Path(hub.config.data_dir), record.id)
    async with await Client.connect(hub_url, api_key=key) as client:
        await client.secrets.set("PROVIDER", VALUE, kind="ai_provider_key")
        await client.secrets.set("OTHER", "another-value-000000000", kind="env_var")
        _set_version(db, "PROVIDER", version)
        with pytest.raises(ServerError) as revealed:
            await client.secrets.reveal("PROVIDER")
        assert revealed.value.code == "secret_key_missing"
        assert not revealed.value.temporary and not is_temporary("secret_key_missing")
        assert VALUE not in str(revealed.value)
        with pytest.raises(ServerError) as listed:
            await client.secrets.list()
        assert listed.value.code == "secret_key_missing"
        # Nothing else is affected, and setting it again repairs it.
        assert await client.secrets.reveal("OTHER") == "another-value-000000000"
        await client.secrets.set("PROVIDER", VALUE, kind="ai_provider_key")
        assert await client.secrets.reveal("PROVIDER") == VALUE
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT details FROM _ht_audit_log WHERE action = 'secret.read' AND target = ?",
            ("PROVIDER",),
        ).fetchall()
    assert any("unreadable" in row[0] for row in rows)  # the failed read is audited
