"""``hypertab secret``: values from stdin only, never argv; listing masks; reveal audited."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from lifecycle_helpers import cli, cli_json

from client_sdk import Client
from server.store.schema import tenant_path

VALUE = "xoxb-slack-token-value-0000000001"


async def test_secret_cli_roundtrip_with_the_hub_running(
    hub: Any, hub_url: str, tenant: Any
) -> None:
    record, key = tenant
    data_dir = Path(hub.config.data_dir)
    stored = await cli_json(
        data_dir, "secret", "set", "--tenant", record.id, "SLACK", "--kind",
        "ai_provider_key", stdin=VALUE + "\n",
    )  # fmt: skip
    assert stored == {"name": "SLACK", "kind": "ai_provider_key", "masked": "…0001"}
    listing = await cli(data_dir, "secret", "list", "--tenant", record.id)
    assert "SLACK" in listing.stdout and VALUE not in listing.stdout
    async with await Client.connect(hub_url, api_key=key) as client:
        assert await client.secrets.reveal("SLACK") == VALUE  # the hub sees the CLI's write
        await client.secrets.set("FROM_SDK", "sdk-side-value")
    shown = await cli(data_dir, "secret", "reveal", "--tenant", record.id, "FROM_SDK")
    assert shown.returncode == 0 and shown.stdout == "sdk-side-value\n"
    deleted = await cli(data_dir, "secret", "delete", "--tenant", record.id, "SLACK")
    assert deleted.returncode == 0, deleted.stderr
    missing = await cli(data_dir, "secret", "reveal", "--tenant", record.id, "SLACK")
    assert missing.returncode == 1 and "no secret" in missing.stderr
    with sqlite3.connect(tenant_path(data_dir, record.id)) as conn:
        actors = conn.execute(
            "SELECT actor FROM _ht_audit_log WHERE action = 'secret.read'"
        ).fetchall()
    assert any(a[0].startswith("cli:") for a in actors)


async def test_a_value_on_the_command_line_is_refused_and_not_echoed(hub: Any, tenant: Any) -> None:
    record, _ = tenant
    data_dir = Path(hub.config.data_dir)
    result = await cli(data_dir, "secret", "set", "--tenant", record.id, "NAME", VALUE)
    assert result.returncode == 2
    assert "stdin" in result.stderr
    assert VALUE not in result.stdout + result.stderr
    listing = await cli_json(data_dir, "secret", "list", "--tenant", record.id)
    assert listing == {"secrets": []}
