"""Every audited event appears, with the right fields, after the action that causes it."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from typing import Any

import msgspec
import pytest
from auditlog_helpers import control_rows, file_bytes, hypertab, tenant_rows
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from client_sdk import Client, ServerError
from protocol.audit import AuditChunk, AuditExport, ToolCall
from protocol.messages import Ok
from server.audit import GENESIS_HASH, AuditWriteError, verify
from server.audit.export import parse
from server.auth.principal import Plan
from server.ratelimit import LimitPolicy, PlanLimits
from server.store.schema import tenant_path


async def _status(url: str, credential: str) -> int:
    try:
        async with connect(url, additional_headers={"Authorization": f"Bearer {credential}"}):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


async def test_signup_and_key_changes_are_in_the_control_log(hub: Any, tenant: Any) -> None:
    record, admin_key = tenant
    created = control_rows(hub, "tenant.created")
    assert [(r["target"], r["actor"]) for r in created] == [(record.id, "system")]
    assert created[0]["details"]["plan"] == "free"
    first_key = control_rows(hub, "key.created")
    assert first_key[0]["details"]["tenant"] == record.id

    data = hub.config.data_dir
    made = hypertab(data, "key", "create", "--tenant", record.id, "--name", "bot", "--json")
    assert made.returncode == 0, made.stderr
    issued = json.loads(made.stdout)["key"]
    assert hypertab(data, "key", "revoke", issued["id"]).returncode == 0
    other = hypertab(data, "key", "create", "--tenant", record.id, "--name", "b2", "--json")
    second = json.loads(other.stdout)["key"]
    rotated = hypertab(data, "key", "rotate", second["id"], "--json")
    assert rotated.returncode == 0, rotated.stderr
    new = json.loads(rotated.stdout)["key"]

    keys = control_rows(hub, "key.created")
    assert [r["target"] for r in keys][-2:] == [issued["id"], second["id"]]
    assert keys[-2]["actor"].startswith("cli:")
    assert keys[-2]["details"]["scopes"] == sorted(issued["scopes"])
    revoked = control_rows(hub, "key.revoked")
    assert [(r["target"], r["actor"][:4]) for r in revoked] == [(issued["id"], "cli:")]
    (rot,) = control_rows(hub, "key.rotated")
    assert rot["target"] == second["id"] and rot["details"]["replaced_by"] == new["id"]
    stored = file_bytes(data / "control.db")
    for secret in (admin_key, issued["secret"], second["secret"], new["secret"]):
        assert secret.encode() not in stored  # keys are stored hashed, never logged

    await hub.control.delete_tenant(record.id, now=time.time(), actor="cli:ops")
    (deleted,) = control_rows(hub, "tenant.deleted")
    assert (deleted["target"], deleted["actor"]) == (record.id, "cli:ops")


async def test_failed_handshakes_are_audited_without_the_credential(
    hub: Any, hub_url: str, tenant: Any
) -> None:
    record, _ = tenant
    issued = await hub.control.create_key(
        record.id, "doomed", ["tables:read"], created_by="test", now=time.time()
    )
    await hub.control.revoke_key(issued.record.id, now=time.time())
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
    assert await _status(hub_url, issued.secret) == 401
    assert await _status(hub_url, jwt) == 401
    assert await _status(hub_url, "") == 401
    await hub.audit.flush()
    failed = control_rows(hub, "auth.failed")
    assert [r["details"]["reason"] for r in failed] == ["revoked", "unsupported", "missing"]
    assert all(r["ip"] == "127.0.0.1" and r["actor"] == "anonymous" for r in failed)
    assert failed[0]["target"] == issued.record.id  # the public key id, never the secret
    stored = file_bytes(hub.config.data_dir / "control.db")
    assert issued.secret.encode() not in stored
    assert b"c2lnbmF0dXJl" not in stored and b"eyJzdWIi" not in stored
    assert hub.metrics.auth_failures["revoked"] == 1


async def test_tool_calls_store_the_digest_never_the_arguments(
    hub: Any, hub_url: str, tenant: Any
) -> None:
    record, key = tenant
    args = {"query": "hunter2-very-private", "limit": 3}
    client = await Client.connect(hub_url, api_key=key)
    try:
        answer = await client.request(lambda rid: ToolCall(id=rid, tool="web.search", args=args))
        assert isinstance(answer, Ok)
        digest = "ab" * 32
        await client.request(lambda rid: ToolCall(id=rid, tool="fs.read", args_digest=digest))
        with pytest.raises(ServerError) as info:
            await client.request(lambda rid: ToolCall(id=rid, tool="x"))
        assert info.value.code == "bad_message"
    finally:
        await client.close()
    calls = tenant_rows(hub, record.id, "tool.call")
    expected = hashlib.sha256(msgspec.json.encode(args, order="sorted")).hexdigest()
    assert [(r["target"], r["details"]["args_sha256"]) for r in calls] == [
        ("web.search", expected),
        ("fs.read", digest),
    ]
    assert calls[0]["actor"].startswith(f"{record.id}/") and calls[0]["ip"] == "127.0.0.1"
    assert b"hunter2-very-private" not in file_bytes(tenant_path(hub.config.data_dir, record.id))


async def _export_all(client: Client, fmt: str, limit: int) -> str:
    parts: list[str] = []
    after: int | None = None
    while True:

        def page(rid: int, after: int | None = after) -> AuditExport:
            return AuditExport(id=rid, format=fmt, after=after, limit=limit)  # type: ignore[arg-type]

        chunk = await client.request(page)
        assert isinstance(chunk, AuditChunk)
        parts.append(chunk.data)
        if chunk.next is None:
            return "".join(parts)
        after = chunk.next


async def test_export_over_the_websocket(hub: Any, hub_url: str, tenant: Any) -> None:
    record, key = tenant
    client = await Client.connect(hub_url, api_key=key)
    try:
        with pytest.raises(ServerError) as info:
            await client.request(lambda rid: AuditExport(id=rid))
        assert info.value.code == "plan_required"
    finally:
        await client.close()
    await hub.control.set_plan(record.id, Plan.PRO)
    reader = await hub.control.create_key(
        record.id, "no-audit", ["tables:read"], created_by="test", now=time.time()
    )
    client = await Client.connect(hub_url, api_key=reader.secret)
    with pytest.raises(ServerError) as info:
        await client.request(lambda rid: AuditExport(id=rid))
    assert info.value.code == "forbidden"
    await client.close()
    client = await Client.connect(hub_url, api_key=key)
    try:
        for n in range(5):
            await client.request(lambda rid, n=n: ToolCall(id=rid, tool=f"t{n}", args=[n]))
        jsonl = await _export_all(client, "jsonl", limit=2)
        csv = await _export_all(client, "csv", limit=3)
    finally:
        await client.close()
    from_jsonl, from_csv = parse(jsonl, "jsonl"), parse(csv, "csv")
    assert verify(from_jsonl, anchor=GENESIS_HASH) is None
    assert verify(from_csv, anchor=GENESIS_HASH) is None
    assert from_csv[: len(from_jsonl)] == from_jsonl  # the same entries, either format
    exports = [e for e in from_csv if e.action == "export"]
    assert [e.details_obj()["format"] for e in exports] == ["jsonl", "csv"]  # once per export
    assert [e.target for e in from_jsonl if e.action == "tool.call"] == [f"t{n}" for n in range(5)]


async def test_rate_limit_denials_become_one_entry_per_window(
    hub: Any, hub_url: str, tenant: Any
) -> None:
    record, key = tenant
    client = await Client.connect(hub_url, api_key=key)  # welcome: no limits, no pacing
    hub.admission.enabled = True
    hub.admission.settings.policy = LimitPolicy(plan_limits=PlanLimits({Plan.FREE: 1}))
    now = [2_000_000.0]
    hub.admission.clock = lambda: now[0]
    try:
        await client.request(lambda rid: ToolCall(id=rid, tool="a", args_digest="0" * 64))
        for _ in range(5):
            with pytest.raises(ServerError) as info:
                await client.request(lambda rid: ToolCall(id=rid, tool="a", args_digest="0" * 64))
            assert info.value.code == "rate_limited"
    finally:
        await client.close()
    assert await hub.audit.flush_denials(now=now[0] + 61) == 1
    (entry,) = tenant_rows(hub, record.id, "rate_limit.exceeded")
    assert entry["details"]["count"] == 5 and entry["details"]["units"] == 5
    assert entry["actor"].startswith(f"{record.id}/")


async def test_an_action_whose_audit_entry_fails_is_not_applied(
    hub: Any, hub_url: str, tenant: Any
) -> None:
    record, key = tenant
    data = hub.config.data_dir
    await hub.control.set_plan(record.id, Plan.PRO)  # (a plan change is audited too)
    fail = (
        "CREATE TRIGGER audit_down BEFORE INSERT ON _ht_audit_log"
        " BEGIN SELECT RAISE(ABORT, 'audit store down'); END"
    )
    with sqlite3.connect(data / "control.db", timeout=30) as db:
        db.execute(fail)
    keys = await hub.control.list_keys(record.id)
    with pytest.raises(AuditWriteError):
        await hub.control.revoke_key(keys[0].id, now=time.time())
    with pytest.raises(AuditWriteError):
        await hub.control.create_key(
            record.id, "k", ["tables:read"], created_by="t", now=time.time()
        )
    assert hypertab(data, "key", "revoke", keys[0].id).returncode == 1
    assert await hub.control.list_keys(record.id) == keys  # no key made, none revoked
    assert await _status(hub_url, key) == 101  # the key still works

    with sqlite3.connect(tenant_path(data, record.id), timeout=30) as db:
        db.execute(fail)
    client = await Client.connect(hub_url, api_key=key)
    try:
        with pytest.raises(ServerError) as info:
            await client.request(lambda rid: AuditExport(id=rid))
        assert info.value.code == "internal"  # no entry, no export
        with pytest.raises(ServerError):
            await client.request(lambda rid: ToolCall(id=rid, tool="t", args_digest="1" * 64))
    finally:
        await client.close()
    assert tenant_rows(hub, record.id, "export") == []


async def test_retention_purges_old_entries_and_the_rest_verifies(hub: Any, tenant: Any) -> None:
    from server.audit import AuditEntry, verify_db
    from server.audit.events import record_tenant_event

    record, _ = tenant
    old = time.time() - 100 * 86_400
    async with hub.stores.use(record.id) as store:
        for n in range(3):
            await record_tenant_event(store, AuditEntry(old + n, "system", "tool.call", f"o{n}"))
        await record_tenant_event(store, AuditEntry(time.time(), "system", "tool.call", "new"))
    purged = await hub.audit.purge_expired()
    assert purged >= 3
    assert [r["target"] for r in tenant_rows(hub, record.id)] == ["new"]
    async with hub.stores.use(record.id) as store, store.exclusive() as conn:
        assert await verify_db(conn) is None
