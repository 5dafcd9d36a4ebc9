"""``key update`` narrows a key's scopes (never widens) and open sockets narrow at once, on
every process: over the wire (``key_update``) across two hubs sharing Redis, and from the
CLI through control.db's watcher. Audited as ``key.updated``.

Before, a key's scopes were fixed at the handshake: only revoke or rotate could narrow it.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from attack_helpers import eventually
from sec_identity_helpers import MP, cli, key_id, open_raw
from websockets.asyncio.client import ClientConnection

from client_sdk import Client, ServerError
from protocol.identity import GrantsChanged
from protocol.messages import Ack, Apply, Error, Subscribe, Subscribed
from protocol.ops import InsertRows, NewRow
from server.app import HypertabServer
from server.config import Config
from server.secrets import generate_key_file

READ_WRITE = ["tables:read", "tables:write"]


async def _next(conn: ClientConnection, kind: Any, timeout: float = 20.0) -> Any:
    """The next message of ``kind`` (others, e.g. snapshot chunks, are skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            message = MP.decode_server(await conn.recv(decode=False))
            if isinstance(message, kind):
                return message


async def _subscribe(conn: ClientConnection, table: str) -> None:
    await conn.send(MP.encode(Subscribe(id=1, table=table)))
    assert (await _next(conn, Subscribed)).table == table


async def _insert(conn: ClientConnection, table: str, op: str) -> Any:
    rows = [NewRow(id=f"r-{op}", values={})]
    await conn.send(MP.encode(Apply(id=9, table=table, client="c", op=op, ops=[InsertRows(rows)])))
    return await _next(conn, Ack | Error)


async def _key(hub: HypertabServer, tenant: str, scopes: list[str]) -> str:
    assert hub.control is not None
    issued = await hub.control.create_key(
        tenant, "narrowed", scopes, created_by="test", now=time.time()
    )
    return issued.secret


@pytest.fixture
async def two_nodes(tmp_path: Path, redis_url: str) -> Any:
    data = tmp_path / "shared"
    data.mkdir()
    generate_key_file(data / "master.keys")
    nodes = [HypertabServer(Config(data_dir=data, port=0, redis_url=redis_url)) for _ in "ab"]
    for node in nodes:
        node.admission.enabled = False
        await node.start()
    try:
        # Node B must hear it through Redis, not by watching the shared control.db.
        assert nodes[1].control is not None and nodes[1].control.watcher is not None
        await nodes[1].control.watcher.stop()
        yield nodes
    finally:
        for node in reversed(nodes):
            await node.stop()


async def test_key_update_on_node_a_narrows_an_open_socket_on_node_b(two_nodes: Any) -> None:
    node_a, node_b = two_nodes
    record, issued = await node_a.services.lifecycle.create_tenant("acme", now=time.time())
    url_a = f"ws://127.0.0.1:{node_a.port}/v1/ws"
    url_b = f"ws://127.0.0.1:{node_b.port}/v1/ws"
    key = await _key(node_a, record.id, READ_WRITE)
    async with await Client.connect(url_a, api_key=issued.secret) as admin:
        table = await admin.create_table("T", [("A", "text")])
        on_b, welcome = await open_raw(url_b, key)
        assert sorted(welcome.scopes) == READ_WRITE
        await _subscribe(on_b, table.id)
        assert isinstance(await _insert(on_b, table.id, "o1"), Ack)

        info = await admin.keys.update(key_id(key), ["tables:read"])
        assert info.scopes == ["tables:read"]
        pushed = await _next(on_b, GrantsChanged)
        assert pushed.scopes == ["tables:read"] and pushed.dropped == []
        refused = await _insert(on_b, table.id, "o2")
        assert isinstance(refused, Error) and refused.code == "forbidden"

        with pytest.raises(ServerError) as widened:  # never wider
            await admin.keys.update(key_id(key), ["tables:read", "schema:write"])
        assert widened.value.code == "forbidden"
        fresh, welcome = await open_raw(url_b, key)  # new handshakes read the database
        assert welcome.scopes == ["tables:read"]
        await fresh.close()
        await on_b.close()
    assert node_a.control is not None
    rows = await node_a.control.fetchall(
        "SELECT actor, details FROM _ht_audit_log WHERE action = 'key.updated' AND target = ?",
        (key_id(key),),
    )
    assert len(rows) == 1  # the refused widening changed nothing and recorded nothing
    details = json.loads(rows[0][1])
    assert details["scopes_before"] == READ_WRITE and details["scopes"] == ["tables:read"]


async def test_cli_key_update_drops_subscriptions_it_no_longer_allows(
    hub: Any, hub_url: str, tenant: Any
) -> None:
    record, admin_key = tenant
    key = await _key(hub, record.id, READ_WRITE)
    async with await Client.connect(hub_url, api_key=admin_key) as admin:
        table = await admin.create_table("T", [("A", "text")])
    conn, _ = await open_raw(hub_url, key)
    await _subscribe(conn, table.id)
    data = str(hub.config.data_dir)
    result = await asyncio.to_thread(
        cli, "key", "update", key_id(key), "--scope", "tables:write", "--data-dir", data
    )
    assert result.returncode == 0, result.stderr
    pushed = await _next(conn, GrantsChanged)
    assert pushed.scopes == ["tables:write"] and pushed.dropped == [table.id]
    (session,) = hub.registry.of_credential(key_id(key))
    assert session.subscriptions == {}  # no more changes for a table it may not read
    widen = await asyncio.to_thread(
        cli, "key", "update", key_id(key), "--scope", "tables:read", "--data-dir", data
    )
    assert widen.returncode == 1 and "only be narrowed" in widen.stderr
    with sqlite3.connect(Path(data) / "control.db") as db:
        rows = db.execute(
            "SELECT actor FROM _ht_audit_log WHERE action = 'key.updated' AND target = ?",
            (key_id(key),),
        ).fetchall()
    assert [r[0][:4] for r in rows] == ["cli:"]
    await conn.close()


async def test_the_periodic_recheck_narrows_when_an_event_was_lost(
    hub: Any, hub_url: str, tenant: Any
) -> None:
    record, _ = tenant
    key = await _key(hub, record.id, READ_WRITE)
    conn, _ = await open_raw(hub_url, key)
    # The grants changed with no event at all (as if every event had been lost).
    await hub.control.watcher.stop()
    with sqlite3.connect(Path(hub.config.data_dir) / "control.db") as db:
        db.execute("PRAGMA busy_timeout=5000")
        db.execute("UPDATE api_keys SET scopes = ? WHERE id = ?", ('["tables:read"]', key_id(key)))
    await hub.recheck()
    (session,) = hub.registry.of_credential(key_id(key))
    await eventually(lambda: sorted(s.value for s in session.principal.scopes) == ["tables:read"])
    assert (await _next(conn, GrantsChanged)).scopes == ["tables:read"]
    await conn.close()
