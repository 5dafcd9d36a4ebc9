"""An operator-initiated export reaches the alert receiver: promptly, signed, after an
outage, after a ``kill -9`` of the server, and never twice for one id."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from delivery_helpers import HubProcess, Receiver, alert_env, clean_env, hypertab

from server.alerts import outbox
from server.alerts.dispatcher import open_connection
from server.app import HypertabServer
from server.config import Config, load_pepper
from server.control.plane import ControlPlane
from server.control.tenants import TenantRecord
from server.lifecycle.export import export_tenant
from server.lifecycle.service import Lifecycle


async def make_tenant(data: Path, name: str = "acme") -> TenantRecord:
    plane = await ControlPlane.open(data, pepper=load_pepper(data), watch=False)
    lifecycle = await Lifecycle.open(data, plane)
    try:
        record, _ = await lifecycle.create_tenant(name, now=time.time())
        return record
    finally:
        await lifecycle.close()
        await plane.close()


async def export(data: Path, record: TenantRecord, out: Path) -> None:
    """What ``hypertab tenant export`` does, in this process (no interpreter start-up)."""
    plane = await ControlPlane.open(data, pepper=load_pepper(data), watch=False)
    try:
        await export_tenant(plane, data, record, out, now=time.time(), actor="cli:test")
    finally:
        await plane.close()


async def attempts(data: Path) -> int:
    conn = await open_connection(data / "control.db")
    try:
        return sum(a.attempts for a in await outbox.listing(conn))
    finally:
        await conn.close()


@pytest.fixture
def receiver() -> Receiver:
    r = Receiver()
    r.start()
    yield r  # type: ignore[misc]
    r.stop()


async def test_a_cli_export_alerts_the_receiver_within_a_second_signed(
    tmp_path: Path, receiver: Receiver
) -> None:
    data = tmp_path / "data"
    record = await make_tenant(data)
    hub = HubProcess(data, alert_env(receiver))
    hub.start()
    try:
        done = await asyncio.to_thread(
            hypertab, "tenant", "export", record.id, str(tmp_path / "out"), "--data-dir",
            str(data), env=clean_env(),
        )  # fmt: skip
        exported_at = time.time()
        assert done.returncode == 0, done.stderr
        got = await asyncio.to_thread(receiver.wait_for, 1, 5.0)
        assert len(got) == 1
        alert = got[0]
        assert alert.at - exported_at < 1.0  # loose; bench/alerts.py measures it
        assert alert.signature_ok()
        body = alert.json
        assert body["kind"] == "tenant_export" and body["tenant"] == record.id
        assert body["audit"]["action"] == "admin.read" and body["id"] == alert.event_id
        listed = await asyncio.to_thread(
            hypertab, "alerts", "list", "--json", "--data-dir", str(data), env=clean_env()
        )
        assert '"state": "delivered"' in listed.stdout
        await asyncio.sleep(0.5)
        assert len(receiver.received) == 1  # once
    finally:
        hub.stop()


async def test_an_alert_waits_out_a_ten_second_outage(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    record = await make_tenant(data)
    for name, value in alert_env(receiver).items():
        monkeypatch.setenv(name, value)
    server = HypertabServer(Config(data_dir=data, port=0))
    await server.start()
    try:
        receiver.stop()
        down_at = time.time()
        await export(data, record, tmp_path / "out")
        await asyncio.sleep(10.0)  # a real outage: connections are refused meanwhile
        tried = await attempts(data)
        assert tried >= 3 and receiver.received == []
        receiver.start()
        up_at = time.time()
        got = await asyncio.to_thread(receiver.wait_for, 1, 5.0)
        assert len(got) == 1 and got[0].at >= up_at and up_at - down_at >= 10.0
        assert got[0].signature_ok() and got[0].json["kind"] == "tenant_export"
        await asyncio.sleep(1.0)  # past the next retry time (max delay 1 s): nothing more
        assert len(receiver.received) == 1
    finally:
        await server.stop()


async def test_an_alert_survives_kill_9_of_the_server_before_sending(
    tmp_path: Path, receiver: Receiver
) -> None:
    data = tmp_path / "data"
    record = await make_tenant(data)
    receiver.stop()  # the server cannot send before it dies
    hub = HubProcess(data, alert_env(receiver))
    hub.start()
    try:
        await export(data, record, tmp_path / "out")
        deadline = time.monotonic() + 5.0
        while await attempts(data) == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert await attempts(data) >= 1
        hub.kill()
        receiver.start()
        await asyncio.sleep(0.5)
        assert receiver.received == []  # nobody is left to send it
        hub.start()
        got = await asyncio.to_thread(receiver.wait_for, 1, 5.0)
        assert len(got) == 1 and got[0].signature_ok()
        await asyncio.sleep(0.5)
        assert len({r.event_id for r in receiver.received}) == len(receiver.received) == 1
    finally:
        hub.stop()
