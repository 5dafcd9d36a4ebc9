"""Revocation and rotation end to end: 1,000 sockets, the SDK, the CLI, another node."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from identity_helpers import bearer, eventually, master_key_file, new_tenant, open_raw
from websockets.asyncio.client import ClientConnection
from websockets.protocol import State

from client_sdk import Client
from protocol.codec import JSON, MSGPACK, codec_for
from protocol.errors import CloseCode
from protocol.messages import Ping, Pong
from server.app import HypertabServer
from server.config import Config

MP = codec_for(MSGPACK)


def _key_id(key: str) -> str:
    return key.split("_")[2]


async def _new_key(hub: HypertabServer, tenant: str, name: str = "k", **kw: Any) -> str:
    assert hub.control is not None
    scopes = kw.pop("scopes", ["tables:read", "tables:write"])
    issued = await hub.control.create_key(
        tenant, name, scopes, created_by="test", now=time.time(), **kw
    )
    return issued.secret


async def _closed_with(conn: ClientConnection) -> int | None:
    await asyncio.wait_for(conn.wait_closed(), 30)
    return conn.close_code


async def _pong(conn: ClientConnection) -> bool:
    await conn.send(MP.encode(Ping(id=7)))
    return isinstance(MP.decode_server(await conn.recv(decode=False)), Pong)


async def _open_many(url: str, keys: list[str], per_key: int, batch: int = 100) -> list[Any]:
    wanted = [k for k in keys for _ in range(per_key)]
    conns: list[ClientConnection] = []
    for start in range(0, len(wanted), batch):
        opened = await asyncio.gather(
            *(open_raw(url, headers=bearer(k)) for k in wanted[start : start + batch])
        )
        conns.extend(c for c, _ in opened)
    return conns


async def test_revoking_one_key_among_1000_sockets_closes_exactly_its_own(
    hub: HypertabServer, hub_url: str, tenant: Any
) -> None:
    record, _ = tenant
    keys = [await _new_key(hub, record.id, f"k{i}") for i in range(10)]
    conns = await _open_many(hub_url, keys, per_key=100)
    assert len(hub.registry) == 1000
    victim = keys[3]
    victims, others = conns[300:400], conns[:300] + conns[400:]
    assert hub.control is not None
    await hub.control.revoke_key(_key_id(victim), now=time.time())  # type: ignore[arg-type]
    codes = await asyncio.gather(*(_closed_with(c) for c in victims))
    assert set(codes) == {CloseCode.CREDENTIAL_REVOKED}
    assert all(c.state is State.OPEN for c in others)
    assert all(await asyncio.gather(*(_pong(c) for c in others)))
    assert len(hub.registry) == 900
    assert hub.registry.of_credential(_key_id(victim)) == []
    await asyncio.gather(*(c.close() for c in others))


async def test_rotation_closes_old_sockets_and_the_sdk_resumes_with_the_new_key(
    hub: HypertabServer, hub_url: str, tenant: Any
) -> None:
    record, admin_key = tenant
    key = await _new_key(hub, record.id, "app")
    async with await Client.connect(hub_url, api_key=admin_key) as admin:
        people = await admin.create_table("People", [("Name", "text")])
        await people.insert({"Name": "Ada"})
        client = await Client.connect(hub_url, api_key=key, max_backoff=0.2)
        try:
            replica = await client.table(people.id)
            await eventually(lambda: len(replica.rows) == 1)
            raw, _ = await open_raw(hub_url, headers=bearer(key))
            assert hub.control is not None
            issued = await hub.control.rotate_key(_key_id(key), now=time.time())  # type: ignore[arg-type]
            assert await _closed_with(raw) == CloseCode.CREDENTIAL_REVOKED
            await eventually(lambda: hub.registry.of_credential(_key_id(key)) == [])
            # changes made while the client is out
            await people.insert({"Name": "Grace"})
            await people.insert({"Name": "Linus"})
            assert client.connections == 1  # the old key is refused: no reconnection
            client.set_api_key(issued.secret)
            await eventually(lambda: client.connections == 2)
            await eventually(lambda: len(replica.rows) == 3)
            assert sorted(r["Name"] for r in replica.rows.values()) == ["Ada", "Grace", "Linus"]
            await replica.insert({"Name": "Barbara"})  # and it writes with the new key
            await eventually(lambda: len(people.rows) == 4)
        finally:
            await client.close()


async def test_sdk_rotating_its_own_key_switches_to_the_new_one(
    hub: HypertabServer, hub_url: str, tenant: Any
) -> None:
    record, _ = tenant
    key = await _new_key(
        hub, record.id, "self", scopes=["tables:read", "tables:write", "schema:write", "keys:admin"]
    )
    async with await Client.connect(hub_url, api_key=key, max_backoff=0.2) as client:
        table = await client.create_table("T", [("Name", "text")])
        new = await client.keys.rotate(_key_id(key))
        assert new.replaces == _key_id(key) and new.secret != key
        assert "secret" not in repr(new) or "<redacted>" in repr(new)
        await eventually(lambda: client.connections == 2)
        assert client.welcome is not None and client.welcome.subject == f"key:{new.info.id}"
        await table.insert({"Name": "after rotation"})
        status_list = {k.id: k.status for k in await client.keys.list()}
        assert status_list[_key_id(key)] == "revoked"
        assert status_list[new.info.id] == "live"


async def test_key_administration_over_the_websocket(
    hub: HypertabServer, hub_url: str, tenant: Any
) -> None:
    from client_sdk import ServerError

    _, admin_key = tenant
    _, other_admin = await new_tenant(hub, "other")
    async with (
        await Client.connect(hub_url, api_key=admin_key) as admin,
        await Client.connect(hub_url, api_key=other_admin) as other,
    ):
        created = await admin.keys.create("reader", ["tables:read"])
        assert created.info.status == "live" and created.info.scopes == ["tables:read"]
        listed = await admin.keys.list()
        assert created.info.id in [k.id for k in listed]
        assert all(not hasattr(k, "secret") for k in listed)
        assert created.info.id not in [k.id for k in await other.keys.list()]
        raw, welcome = await open_raw(hub_url, headers=bearer(created.secret))
        assert welcome.scopes == ["tables:read"]
        # another tenant's admin cannot see, revoke or rotate it
        for call in (other.keys.revoke(created.info.id), other.keys.rotate(created.info.id)):
            with pytest.raises(ServerError) as info:
                await call
            assert info.value.code == "unknown_key"
        assert raw.state is State.OPEN
        revoked = await admin.keys.revoke(created.info.id)
        assert revoked.status == "revoked"
        assert await _closed_with(raw) == CloseCode.CREDENTIAL_REVOKED
        with pytest.raises(ServerError) as info:
            await admin.keys.rotate(created.info.id)
        assert info.value.code == "key_not_rotatable"
        # keys:admin does not escalate: a limited admin cannot mint or rotate wider keys
        limited = await admin.keys.create("ops", ["keys:admin", "tables:read"])
        async with await Client.connect(hub_url, api_key=limited.secret) as ops:
            with pytest.raises(ServerError) as info:
                await ops.keys.create("wider", ["tables:read", "tables:write"])
            assert info.value.code == "forbidden"
            with pytest.raises(ServerError) as info:
                await ops.keys.rotate(_key_id(admin_key))
            assert info.value.code == "forbidden"
            narrow = await ops.keys.create("narrow", ["tables:read"])
            assert narrow.info.created_by == f"key:{limited.info.id}"
        # a key without keys:admin cannot administer keys at all
        async with await Client.connect(hub_url, api_key=narrow.secret) as plain:
            with pytest.raises(ServerError) as info:
                await plain.keys.list()
            assert info.value.code == "forbidden"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERTAB_")}
    script = Path(sys.executable).parent / "hypertab"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "server.cli"]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


async def test_cli_revocation_in_another_process_closes_sockets(
    hub: HypertabServer, hub_url: str, tenant: Any
) -> None:
    record, _ = tenant
    key = await _new_key(hub, record.id, "cli-victim")
    keep = await _new_key(hub, record.id, "cli-keep")
    victims = [(await open_raw(hub_url, headers=bearer(key)))[0] for _ in range(3)]
    kept, _ = await open_raw(hub_url, headers=bearer(keep))
    result = await asyncio.to_thread(
        _cli, "key", "revoke", _key_id(key), "--data-dir", str(hub.config.data_dir)
    )
    assert result.returncode == 0, result.stderr
    codes = await asyncio.gather(*(_closed_with(c) for c in victims))
    assert set(codes) == {CloseCode.CREDENTIAL_REVOKED}
    assert await _pong(kept)
    await kept.close()


async def test_cli_tenant_origins_applies_to_the_next_handshake(
    hub: HypertabServer, hub_url: str, tenant: Any
) -> None:
    from identity_helpers import refusal

    from protocol.codec import AUTH_SUBPROTOCOL_PREFIX

    record, key = tenant
    browser = [JSON, AUTH_SUBPROTOCOL_PREFIX + key]
    origin = "https://sheets.example.org"
    status, _ = await refusal(hub_url, subprotocols=browser, origin=origin)
    assert status == 403
    data = str(hub.config.data_dir)
    added = await asyncio.to_thread(
        _cli, "tenant", "origins", record.id, "--add", origin + ":443", "--json", "--data-dir", data
    )
    assert added.returncode == 0, added.stderr
    assert msgspec.json.decode(added.stdout) == {"tenant": record.id, "origins": [origin]}
    conn, welcome = await open_raw(hub_url, subprotocols=browser, origin=origin)
    assert welcome.tenant == record.id
    await conn.close()
    bad = await asyncio.to_thread(
        _cli, "tenant", "origins", record.id, "--add", "https://*.example.org", "--data-dir", data
    )
    assert bad.returncode == 2 and "wildcards" in bad.stderr


async def test_revocation_on_node_a_closes_a_socket_on_node_b(
    tmp_path: Path, redis_url: str
) -> None:
    data = tmp_path / "shared"
    master_key_file(data)
    node_a = HypertabServer(Config(data_dir=data, port=0, redis_url=redis_url))
    node_b = HypertabServer(Config(data_dir=data, port=0, redis_url=redis_url))
    await node_a.start()
    await node_b.start()
    try:
        assert node_a.control is not None and node_b.control is not None
        # Node B must hear it through Redis, not by watching the shared control.db.
        assert node_b.control.watcher is not None
        await node_b.control.watcher.stop()
        record, _ = await new_tenant(node_a, "acme")
        key = await _new_key(node_a, record.id, "everywhere")
        url_b = f"ws://127.0.0.1:{node_b.port}/v1/ws"
        on_b, _ = await open_raw(url_b, headers=bearer(key))
        await node_a.control.revoke_key(_key_id(key), now=time.time())  # type: ignore[arg-type]
        assert await _closed_with(on_b) == CloseCode.CREDENTIAL_REVOKED
    finally:
        await node_b.stop()
        await node_a.stop()
