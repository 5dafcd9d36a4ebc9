"""``hypertab incident contain``: every old credential dies at once, new ones work, secrets
survive the key rotation, and the incident is on the record."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from delivery_helpers import open_raw, refused_status, run_cli

from protocol.errors import CloseCode
from server.alerts import outbox
from server.alerts.dispatcher import open_connection
from server.app import HypertabServer
from server.audit import log as audit_log
from server.auth.principal import Scope, TenantId
from server.config import Config, load_pepper
from server.control.plane import ControlPlane
from server.lifecycle import secret_ops
from server.lifecycle.provision import open_tenant_db
from server.lifecycle.service import Lifecycle
from server.secrets.keyring import generate_key_file, load_key_file
from server.store.schema import tenant_path


async def provision(data: Path, names: list[str]) -> list[tuple[Any, list[str]]]:
    """Tenants, each with its admin key, a second key and one secret."""
    plane = await ControlPlane.open(data, pepper=load_pepper(data), watch=False)
    lifecycle = await Lifecycle.open(data, plane)
    out = []
    try:
        for name in names:
            record, admin = await lifecycle.create_tenant(name, now=time.time())
            extra = await plane.create_key(
                record.id, "bot", [Scope.TABLES_READ], created_by="test", now=time.time()
            )
            keys = await lifecycle.keys_for(TenantId(record.id), now=time.time())
            conn = await open_tenant_db(tenant_path(data, record.id))
            try:
                await secret_ops.set_secret(
                    conn, TenantId(record.id), keys, "OPENAI", "ai_provider_key",
                    f"sk-{name}-value", now=time.time(), actor="test",
                )  # fmt: skip
            finally:
                await conn.close()
            out.append((record, [admin.secret, extra.secret]))
    finally:
        await lifecycle.close()
        await plane.close()
    return out


async def reveal(data: Path, tenant: str) -> tuple[str, int]:
    plane = await ControlPlane.open(data, pepper=load_pepper(data), watch=False)
    lifecycle = await Lifecycle.open(data, plane)
    try:
        keys = await lifecycle.keys_for(TenantId(tenant), now=time.time())
        conn = await open_tenant_db(tenant_path(data, tenant))
        try:
            _, value = await secret_ops.reveal_secret(
                conn, TenantId(tenant), keys, "OPENAI", now=time.time(), actor="test"
            )
            listed = await secret_ops.list_secrets(conn, TenantId(tenant), keys)
        finally:
            await conn.close()
        return value, listed[0].key_version
    finally:
        await lifecycle.close()
        await plane.close()


async def control_actions(data: Path) -> list[Any]:
    plane = await ControlPlane.open(data, pepper=load_pepper(data), watch=False)
    try:
        async with plane.transaction() as conn:
            return [e async for e in audit_log.entries(conn)]
    finally:
        await plane.close()


async def closed_at(conn: Any) -> tuple[float, int | None]:
    await asyncio.wait_for(conn.wait_closed(), 20)
    return time.monotonic(), conn.close_code


async def test_contain_one_tenant(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    generate_key_file(data / "master.keys")
    (acme, acme_keys), (_, other_keys) = await provision(data, ["acme", "other"])
    server = HypertabServer(Config(data_dir=data, port=0))
    await server.start()
    url = f"ws://127.0.0.1:{server.port}/v1/ws"
    try:
        sockets = [await open_raw(url, k) for k in acme_keys]
        bystander = await open_raw(url, other_keys[0])
        watchers = [asyncio.create_task(closed_at(s)) for s in sockets]
        started = time.monotonic()
        code, out, err = await asyncio.to_thread(
            run_cli, "incident", "contain", "--tenant", acme.id, "--json", "--data-dir", str(data)
        )
        returned = time.monotonic()
        assert code == 0, err
        result = json.loads(out)
        closes = await asyncio.gather(*watchers)
        assert {code for _, code in closes} == {CloseCode.CREDENTIAL_REVOKED}
        # Closed before (or right after) the command returned; bench/alerts.py measures it.
        assert max(t for t, _ in closes) - returned < 0.5, (returned - started, closes)
        assert bystander.close_code is None  # another tenant is untouched
        for key in acme_keys:
            assert await refused_status(url, key) == 401
        (item,) = result["tenants"]
        new_key = item["key"]["secret"]
        assert len(item["keys_revoked"]) == 2
        fresh = await open_raw(url, new_key)
        await fresh.close()
        value, version = await reveal(data, acme.id)
        assert value == "sk-acme-value" and version == item["data_key_version"] == 2
        entries = await control_actions(data)
        incident = [e for e in entries if e.action == "incident.contained"]
        assert len(incident) == 1 and incident[0].target == result["case"]
        assert new_key not in incident[0].details  # the key's id, never its secret
        assert any("owner" in step for step in result["next_steps"])
        conn = await open_connection(data / "control.db")
        try:
            kinds = {a.kind for a in await outbox.listing(conn)}
        finally:
            await conn.close()
        assert {"incident_contained", "admin_key_created"} <= kinds
        await bystander.close()
    finally:
        await server.stop()


async def test_contain_all_leaves_only_new_keys_and_a_new_master_key(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    generate_key_file(data / "master.keys")
    tenants = await provision(data, ["one", "two"])
    server = HypertabServer(Config(data_dir=data, port=0))
    await server.start()
    url = f"ws://127.0.0.1:{server.port}/v1/ws"
    try:
        code, out, err = await asyncio.to_thread(
            run_cli, "incident", "contain", "--all", "--case", "inc-test-1", "--json",
            "--data-dir", str(data),
        )  # fmt: skip
        assert code == 0, err
        result = json.loads(out)
        assert result["case"] == "inc-test-1" and result["master_key"] is not None
        assert len(load_key_file(data / "master.keys").ids) == 2
        new_keys = {t["tenant"]: t["key"]["secret"] for t in result["tenants"]}
        assert set(new_keys) == {record.id for record, _ in tenants}
        for record, old in tenants:
            for key in old:
                assert await refused_status(url, key) == 401
            fresh = await open_raw(url, new_keys[record.id])
            await fresh.close()
            value, _ = await reveal(data, record.id)
            assert value == f"sk-{record.name}-value"
        actions = [e.action for e in await control_actions(data)]
        assert actions.count("incident.contained") == 1 and "keyring.rotated" in actions
    finally:
        await server.stop()


def jwt_for(tenant: str, secret: str, issued_at: float) -> str:
    import jwt as pyjwt

    claims = {
        "sub": "user-1",
        "aud": "authenticated",
        "iat": int(issued_at),
        "exp": issued_at + 300,
        "role": "authenticated",
        "app_metadata": {"tenant": tenant},
    }
    return pyjwt.encode(claims, secret, algorithm="HS256")


async def test_contain_cuts_off_the_tenants_jwts_issued_before_it(
    tmp_path: Path, monkeypatch: Any
) -> None:
    secret = "incident-jwt-secret-" + "x" * 32
    monkeypatch.setenv("HYPERTAB_JWT_SECRET", secret)  # for the summary of the CLI
    data = tmp_path / "data"
    await asyncio.to_thread(data.mkdir)
    await asyncio.to_thread(generate_key_file, data / "master.keys")
    (acme, _), (other, _) = await provision(data, ["acme", "other"])
    server = HypertabServer(Config(data_dir=data, port=0, jwt_secret=secret))
    await server.start()
    url = f"ws://127.0.0.1:{server.port}/v1/ws"
    try:
        stolen = jwt_for(acme.id, secret, time.time() - 60)
        open_with_jwt = await open_raw(url, stolen)
        bystander = jwt_for(other.id, secret, time.time() - 60)
        code, out, err = await asyncio.to_thread(
            run_cli, "incident", "contain", "--tenant", acme.id, "--json", "--data-dir", str(data)
        )
        assert code == 0, err
        _, close_code = await closed_at(open_with_jwt)
        assert close_code == CloseCode.CREDENTIAL_REVOKED
        assert await refused_status(url, stolen) == 401  # issued before the incident
        fresh = await open_raw(url, jwt_for(acme.id, secret, time.time() + 2))  # after it
        await fresh.close()
        other_conn = await open_raw(url, bystander)  # another tenant's tokens still work
        await other_conn.close()
        assert any("HYPERTAB_JWT_SECRET" in step for step in json.loads(out)["next_steps"])
    finally:
        await server.stop()
