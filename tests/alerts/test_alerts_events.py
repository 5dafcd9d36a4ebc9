"""Events only the hub or the CLI sees raise alerts: handshake bursts, abuse closes, broken
audit chains, master key rotations."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest
from delivery_helpers import open_raw, refused_status, run_cli

from server.alerts import outbox
from server.alerts.dispatcher import open_connection
from server.app import HypertabServer
from server.config import Config


async def alerts_of(data: Path) -> list[outbox.Alert]:
    conn = await open_connection(data / "control.db")
    try:
        return list(reversed(await outbox.listing(conn)))
    finally:
        await conn.close()


async def eventually_kinds(data: Path, wanted: set[str]) -> set[str]:
    deadline = time.monotonic() + 10
    kinds: set[str] = set()
    while time.monotonic() < deadline:
        kinds = {a.kind for a in await alerts_of(data)}
        if wanted <= kinds:
            break
        await asyncio.sleep(0.05)
    return kinds


async def test_a_burst_of_failed_handshakes_alerts_per_address_and_per_tenant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HYPERTAB_ALERT_AUTH_FAILURES", "3")
    data = tmp_path / "data"
    server = HypertabServer(Config(data_dir=data, port=0))
    await server.start()
    url = f"ws://127.0.0.1:{server.port}/v1/ws"
    try:
        assert server.control is not None
        tenant, admin = await server.control.create_tenant("acme", now=time.time())
        stolen = await server.control.create_key(
            tenant.id, "ci", ["tables:read"], created_by="test", now=time.time()
        )
        await server.control.revoke_key(stolen.record.id, now=time.time())
        for _ in range(3):
            assert await refused_status(url, stolen.secret) == 401
        assert await eventually_kinds(data, {"handshake_failures"}) >= {"handshake_failures"}
        bursts = [a for a in await alerts_of(data) if a.kind == "handshake_failures"]
        deadline = time.monotonic() + 5
        while len(bursts) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            bursts = [a for a in await alerts_of(data) if a.kind == "handshake_failures"]
        scopes = {a.details_obj()["scope"]: a for a in bursts}
        assert set(scopes) == {"ip", "tenant"}
        assert scopes["ip"].ip == "127.0.0.1" and scopes["tenant"].tenant == tenant.id
        conn = await open_raw(url, admin.secret)  # the tenant itself is not locked out
        await conn.close()
    finally:
        await server.stop()


async def test_an_abuse_close_alerts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from protocol.codec import MSGPACK, codec_for
    from protocol.messages import Ping

    monkeypatch.setenv("HYPERTAB_BURST_PER_SECOND", "2")
    monkeypatch.setenv("HYPERTAB_ABUSE_DENIALS", "3")
    data = tmp_path / "data"
    server = HypertabServer(Config(data_dir=data, port=0))
    await server.start()
    url = f"ws://127.0.0.1:{server.port}/v1/ws"
    try:
        assert server.control is not None
        tenant, admin = await server.control.create_tenant("noisy", now=time.time())
        conn = await open_raw(url, admin.secret)
        codec = codec_for(MSGPACK)
        for n in range(20):  # keeps sending while refused
            await conn.send(codec.encode(Ping(id=n + 1)))
        await asyncio.wait_for(conn.wait_closed(), 10)
        assert conn.close_code == 4029
        assert "abuse_close" in await eventually_kinds(data, {"abuse_close"})
        (alert,) = [a for a in await alerts_of(data) if a.kind == "abuse_close"]
        assert alert.tenant == tenant.id and alert.severity == "low"
    finally:
        await server.stop()


async def test_a_broken_audit_chain_found_by_verify_alerts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    code, _, err = await asyncio.to_thread(
        run_cli, "tenant", "create", "acme", "--data-dir", str(data)
    )
    assert code == 0, err

    def tamper() -> None:
        db = sqlite3.connect(data / "control.db")
        with db:
            db.execute("UPDATE _ht_audit_log SET actor = 'someone-else' WHERE id = 1")
        db.close()

    await asyncio.to_thread(tamper)
    code, out, _ = await asyncio.to_thread(
        run_cli, "audit", "verify", "--control", "--data-dir", str(data)
    )
    assert code == 1 and "BROKEN at entry 1" in out
    (alert,) = [a for a in await alerts_of(data) if a.kind == "audit_chain_broken"]
    assert alert.severity == "critical" and alert.details_obj()["broken_at"] == 1
