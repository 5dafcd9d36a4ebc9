"""Ciphertexts moved inside the real SQLite files never decrypt through the API."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from client_sdk import Client, ServerError
from server.store.schema import tenant_path

VALUE = "sk-ant-api03-this-is-the-plaintext-value-9876"


def _blob(db: Path, name: str) -> tuple[bytes, int]:
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT ciphertext, key_version FROM _ht_secrets WHERE name = ?", (name,)
        ).fetchone()
    assert row is not None
    return bytes(row[0]), int(row[1])


def _overwrite(db: Path, name: str, blob: bytes, version: int) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute(
            "UPDATE _ht_secrets SET ciphertext = ?, key_version = ? WHERE name = ?",
            (blob, version, name),
        )


async def test_moved_ciphertexts_fail_with_an_error_not_plaintext(
    hub: Any, hub_url: str, tenant: Any
) -> None:
    record_a, key_a = tenant
    record_b, issued_b = await hub.services.lifecycle.create_tenant("other", now=time.time())
    data_dir = Path(hub.config.data_dir)
    db_a, db_b = tenant_path(data_dir, record_a.id), tenant_path(data_dir, record_b.id)
    async with (
        await Client.connect(hub_url, api_key=key_a) as a,
        await Client.connect(hub_url, api_key=issued_b.secret) as b,
    ):
        await a.secrets.set("ANTHROPIC", VALUE, kind="ai_provider_key")
        await a.secrets.set("DECOY", "another-value-of-some-length", kind="ai_provider_key")
        await b.secrets.set("ANTHROPIC", "b-own-value-000000000000", kind="ai_provider_key")
        blob, version = _blob(db_a, "ANTHROPIC")

        _overwrite(db_a, "DECOY", blob, version)  # another name, same tenant
        _overwrite(db_b, "ANTHROPIC", blob, version)  # same name, another tenant

        for client, name in ((a, "DECOY"), (b, "ANTHROPIC")):
            with pytest.raises(ServerError) as failed:
                await client.secrets.reveal(name)
            assert failed.value.code == "secret_unreadable"
            assert VALUE not in str(failed.value)
            with pytest.raises(ServerError) as listed:
                await client.secrets.list()
            assert listed.value.code == "secret_unreadable"
        # The original still reads back: nothing else was disturbed.
        assert await a.secrets.reveal("ANTHROPIC") == VALUE

        # A flipped bit or a truncation is an error too.
        _overwrite(db_a, "ANTHROPIC", blob[:-1] + bytes([blob[-1] ^ 1]), version)
        with pytest.raises(ServerError) as flipped:
            await a.secrets.reveal("ANTHROPIC")
        assert flipped.value.code == "secret_unreadable"
        _overwrite(db_a, "ANTHROPIC", blob[:20], version)
        with pytest.raises(ServerError) as truncated:
            await a.secrets.reveal("ANTHROPIC")
        assert truncated.value.code == "secret_unreadable"
    with sqlite3.connect(db_a) as conn:
        outcomes = conn.execute(
            "SELECT details FROM _ht_audit_log WHERE action = 'secret.read'"
        ).fetchall()
    assert any("unreadable" in row[0] for row in outcomes)
