"""Rotation through the real CLI while the hub runs: every secret still reads back, and the
old master key can then be dropped (not before)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from lifecycle_helpers import cli, cli_json

from client_sdk import Client

SECRETS = {
    "OPENAI_API_KEY": ("sk-proj-0123456789abcdefghijklmnop", "ai_provider_key"),
    "GITHUB_AUTH": ("Bearer ghp_zyxwvutsrqponmlkjihgfedcba", "api_account_auth_header"),
    "REGION": ("eu-west-1", "env_var"),
}


async def _all_read_back(client: Client) -> None:
    for name, (value, _) in SECRETS.items():
        assert await client.secrets.reveal(name) == value


async def test_tenant_and_master_rotation_keep_every_secret(
    hub: Any, hub_url: str, tenant: Any
) -> None:
    record, key = tenant
    data_dir = Path(hub.config.data_dir)
    async with await Client.connect(hub_url, api_key=key) as client:
        for name, (value, kind) in SECRETS.items():
            await client.secrets.set(name, value, kind=kind)  # type: ignore[arg-type]

        rotated = await cli_json(data_dir, "tenant", "rotate-key", record.id)
        assert rotated["key_version"] == 2 and rotated["reencrypted"] == 3
        assert rotated["destroyed_versions"] == [1]
        await _all_read_back(client)
        assert {e.key_version for e in await client.secrets.list()} == {2}

        before = await cli_json(data_dir, "keyring", "list")
        (old_id,) = [k["id"] for k in before["keys"]]
        refused = await cli(data_dir, "keyring", "remove", old_id)
        assert refused.returncode == 1 and "current" in refused.stderr

        master = await cli_json(data_dir, "keyring", "rotate")
        assert master["rewrapped"] >= 1 and master["key_id"] != old_id
        with sqlite3.connect(data_dir / "control.db") as conn:
            in_use = {r[0] for r in conn.execute("SELECT master_key_id FROM _ht_data_keys")}
        assert in_use == {master["key_id"]}
        await _all_read_back(client)  # the hub re-read the key file

        removed = await cli_json(data_dir, "keyring", "remove", old_id)
        assert removed["removed"] == old_id
        keys = json.loads((data_dir / "master.keys").read_text())["keys"]
        assert [k["id"] for k in keys] == [master["key_id"]]
        await _all_read_back(client)
        await client.secrets.set("AFTER", "set-after-rotation")
        assert await client.secrets.reveal("AFTER") == "set-after-rotation"

    # A fresh process with only the new key reads everything (no cached keys involved).
    for name, (value, _) in SECRETS.items():
        shown = await cli(data_dir, "secret", "reveal", "--tenant", record.id, name)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout == value + "\n"


async def test_master_key_in_use_cannot_be_removed(hub: Any, tenant: Any) -> None:
    data_dir = Path(hub.config.data_dir)
    old = (await cli_json(data_dir, "keyring", "list"))["keys"][0]["id"]
    # Add a key without rewrapping (as if the rewrap had not run yet): the old one still
    # wraps the tenant's data key and must stay.
    from server.secrets import add_master_key

    add_master_key(data_dir / "master.keys")
    refused = await cli(data_dir, "keyring", "remove", old)
    assert refused.returncode == 1 and "still wraps" in refused.stderr
