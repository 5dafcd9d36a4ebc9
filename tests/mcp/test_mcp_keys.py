"""The agent's key: from a 0600 file or the environment, never argv; rotation closes the
connection at once and a key file carries the MCP server over to the new key; per-key rate
limits tighter than the plan's."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp.client.session import ClientSession
from mcp_helpers import HYPERTAB, call, mcp_session

from client_sdk import Client, RateLimited, ServerError
from protocol.messages import Apply
from protocol.ops import InsertRows, NewRow, Op
from server.hub.admission import AdmissionSettings
from server.ratelimit import LimitPolicy


def _write_key(path: Path, key: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(key + "\n")
    tmp.chmod(0o600)
    tmp.replace(path)  # atomic: the MCP server never reads half a key


async def _until(session: ClientSession, code: str | None, tries: int = 100) -> dict[str, Any]:
    """Call list_tables until it fails with ``code`` (or succeeds, for None)."""
    for _ in range(tries):
        result = await call(session, "list_tables")
        if (result.get("error") or {}).get("code") == code:
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"list_tables never gave {code}: {result}")


async def test_rotation_closes_the_connection_and_a_key_file_carries_on(
    hub: Any, hub_url: str, tenant: Any, tmp_path: Path
) -> None:
    _, admin_key = tenant
    async with await Client.connect(hub_url, api_key=admin_key) as admin:
        await admin.create_table("People", [("Name", "text")])
        agent = await admin.keys.create("agent", ["tables:read", "tables:write"])
        key_file = tmp_path / "agent.key"
        _write_key(key_file, agent.secret)
        async with mcp_session(hub_url, key_file=key_file) as session:
            assert "tables" in await call(session, "list_tables")
            assert len(hub.registry.of_credential(agent.info.id)) == 1
            fresh = await admin.keys.rotate(agent.info.id)
            assert hub.registry.of_credential(agent.info.id) == []  # closed at once
            await _until(session, "connection_lost")
            _write_key(key_file, fresh.secret)
            await _until(session, None)  # reconnected with the new key, same process
            assert len(hub.registry.of_credential(fresh.info.id)) == 1
            inserted = await call(session, "insert_rows", table="People", rows=[{"Name": "Ada"}])
            assert inserted["inserted"] == 1


async def test_a_revoked_environment_key_stops_the_agent(
    hub: Any, hub_url: str, tenant: Any
) -> None:
    _, admin_key = tenant
    async with await Client.connect(hub_url, api_key=admin_key) as admin:
        agent = await admin.keys.create("agent", ["tables:read"])
        async with mcp_session(hub_url, key=agent.secret) as session:
            assert "tables" in await call(session, "list_tables")
            await admin.keys.revoke(agent.info.id)
            assert hub.registry.of_credential(agent.info.id) == []
            await _until(session, "connection_lost")  # a call in flight may see only that
            failed = await call(session, "list_tables")
            assert "revoked" in failed["error"]["message"]


def _mcp(env: dict[str, str], *args: str, cli: bool = False) -> subprocess.CompletedProcess[str]:
    argv = [str(HYPERTAB), "mcp"] if cli else [sys.executable, "-m", "client_sdk.mcp"]
    return subprocess.run(
        [*argv, *args],
        cwd=Path(__file__).resolve().parents[2],
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_the_key_comes_from_env_or_a_private_file_only(tmp_path: Path) -> None:
    loose = tmp_path / "loose.key"
    loose.write_text("ht_live_x\n")
    loose.chmod(0o644)
    refused = _mcp({"HYPERTAB_API_KEY_FILE": str(loose)}, cli=True)  # `hypertab mcp` delegates
    assert refused.returncode == 2
    assert "chmod 600" in refused.stderr
    missing = _mcp({})
    assert missing.returncode == 2 and "HYPERTAB_API_KEY" in missing.stderr
    assert "--key " not in _mcp({}, "--help").stdout  # no option takes the key itself


def test_the_mcp_package_never_imports_the_hub() -> None:
    code = (
        "import sys, client_sdk.mcp.app, client_sdk.mcp.tools;"
        "bad = sorted(m for m in sys.modules if m == 'server' or m.startswith('server.'));"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


async def test_an_agent_key_rate_is_tighter_than_the_plan(
    hub: Any, hub_url: str, tenant: Any
) -> None:
    record, admin_key = tenant
    hub.admission.enabled = True  # plan limits on: free is 100 ops/minute
    hub.admission.settings = AdmissionSettings(policy=LimitPolicy(burst_limit=1000))
    async with await Client.connect(hub_url, api_key=admin_key) as admin:
        table = await admin.create_table("T", [("A", "text")])
        agent = await admin.keys.create("agent", ["tables:read", "tables:write"], rate=3)
        assert agent.info.rate == 3
        async with await Client.connect(hub_url, api_key=agent.secret, reconnect=False) as bot:
            assert bot.welcome is not None and bot.welcome.limits.ops_per_minute == 3
            bot._pacer.reset(0, 0)  # send past the announced limit, to see the hub refuse
            mine = await bot.table(table.id)
            for n in range(3):
                await mine.insert({"A": str(n)})
            with pytest.raises(RateLimited):
                await asyncio.wait_for(bot.request(lambda rid: _insert(rid, table.id)), 5)
        rotated = await admin.keys.rotate(agent.info.id)
        assert rotated.info.rate == 3  # a rotation keeps the key's grants and rate
        with pytest.raises(ServerError):
            await admin.keys.create("x", ["tables:read"], rate=0)
    made = await asyncio.to_thread(
        _cli,
        hub.config.data_dir,
        "key",
        "create",
        "--tenant",
        record.id,
        "--name",
        "bot",
        "--scope",
        "tables:read",
        "--rate",
        "120",
        "--json",
    )
    assert json.loads(made.stdout)["key"]["rate"] == 120
    listed = await asyncio.to_thread(
        _cli, hub.config.data_dir, "key", "list", "--tenant", record.id, "--json"
    )
    assert [k["rate"] for k in json.loads(listed.stdout)["keys"]] == [None, 3, 3, 120]


def _insert(rid: int, table: str) -> Apply:
    ops: list[Op] = [InsertRows(rows=[NewRow(values={})])]
    return Apply(id=rid, table=table, client="c", op=f"o{rid}", ops=ops)


def _cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERTAB_")}
    done = subprocess.run(
        [str(HYPERTAB), *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done
