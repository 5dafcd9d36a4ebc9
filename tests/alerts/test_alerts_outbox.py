"""Which actions raise alerts, in the same transaction as their audit entry."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from server.alerts import outbox
from server.alerts.burst import BurstDetector
from server.alerts.config import AlertConfig, AlertConfigError
from server.alerts.dispatcher import AlertDispatcher, open_connection
from server.audit import events
from server.auth.principal import Scope
from server.config import load_pepper
from server.control.plane import ControlPlane


async def _plane(data: Path) -> ControlPlane:
    return await ControlPlane.open(data, pepper=load_pepper(data), watch=False)


async def _kinds(data: Path) -> list[str]:
    conn = await open_connection(data / "control.db")
    try:
        return [a.kind for a in reversed(await outbox.listing(conn))]
    finally:
        await conn.close()


async def test_an_action_that_rolls_back_raises_no_alert(tmp_path: Path) -> None:
    plane = await _plane(tmp_path)
    try:
        with pytest.raises(RuntimeError):
            async with plane.transaction() as conn:
                await events.audit_control_event(
                    conn, events.admin_read("cli:eve", "tenant_x", time.time())
                )
                raise RuntimeError("the export failed")
        assert await _kinds(tmp_path) == []
        async with plane.transaction() as conn:
            await events.audit_control_event(
                conn, events.admin_read("cli:eve", "tenant_x", time.time())
            )
        assert await _kinds(tmp_path) == ["admin_read"]
    finally:
        await plane.close()


async def test_admin_keys_and_deletions_alert_but_signups_and_plain_keys_do_not(
    tmp_path: Path,
) -> None:
    plane = await _plane(tmp_path)
    try:
        now = time.time()
        tenant, _ = await plane.create_tenant("acme", now=now)  # its first admin key: no alert
        await plane.create_key(tenant.id, "reader", [Scope.TABLES_READ], created_by="t", now=now)
        assert await _kinds(tmp_path) == []
        admin = await plane.create_key(
            tenant.id, "ops", [Scope.KEYS_ADMIN, Scope.TABLES_READ], created_by="cli:bob", now=now
        )
        await plane.delete_tenant(tenant.id, now=now, actor="cli:bob")
        assert await _kinds(tmp_path) == ["admin_key_created", "tenant_deleted"]
        conn = await open_connection(tmp_path / "control.db")
        try:
            first = (await outbox.listing(conn))[-1]
        finally:
            await conn.close()
        body = first.body()
        assert body["tenant"] == tenant.id and body["audit"]["target"] == admin.record.id
        assert admin.secret not in str(body)  # never a credential in an alert
        assert first.event_id.startswith("al_")
    finally:
        await plane.close()


async def test_a_receiver_that_keeps_failing_is_marked_failed_and_listed(tmp_path: Path) -> None:
    plane = await _plane(tmp_path)
    clock = [time.time()]
    config = AlertConfig.from_env(
        {
            # Nothing listens on port 9 of 127.0.0.1: every attempt is refused at once.
            "HYPERTAB_ALERT_WEBHOOK_URL": "http://127.0.0.1:9/hook",
            "HYPERTAB_ALERT_WEBHOOK_SECRET": "x" * 20,
            "HYPERTAB_DELIVERY_MAX_ATTEMPTS": "3",
            "HYPERTAB_ALERT_LOG": "off",
        }
    )
    dispatcher = AlertDispatcher(tmp_path / "control.db", config, clock=lambda: clock[0])
    conn = await open_connection(tmp_path / "control.db")
    try:
        async with plane.transaction() as c:
            await events.audit_control_event(c, events.admin_read("cli:eve", "t1", clock[0]))
            await events.audit_control_event(c, events.admin_read("cli:eve", "t2", clock[0]))
        for _ in range(6):  # the second waits while the first is retried: sink is down
            assert await dispatcher.run_round(conn) == 0
            clock[0] += 3600  # past any retry delay
        assert dispatcher.counts == {"pending": 0, "delivered": 0, "failed": 2}
        failed = await outbox.listing(conn, state="failed")
        assert {a.attempts for a in failed} == {3}
        assert all("not reached" in (a.last_error or "") for a in failed)
        assert await outbox.retry_failed(conn, now=clock[0]) == 2
        assert (await outbox.counts(conn))["pending"] == 2
        assert await outbox.purge(conn, before=clock[0] + 1) == 0  # pending ones stay
        log_only = AlertDispatcher(
            tmp_path / "control.db", AlertConfig.from_env({}), clock=lambda: clock[0]
        )
        assert await log_only.run_round(conn) == 2  # the log sink takes them
        await log_only.stop()
        assert await outbox.purge(conn, before=clock[0] - 86_400 * 2) == 0  # recent: kept
        assert await outbox.purge(conn, before=clock[0]) == 2  # past the retention: dropped
    finally:
        await conn.close()
        await dispatcher.stop()
        await plane.close()


def test_a_webhook_sink_needs_a_secret_and_an_allowed_url() -> None:
    with pytest.raises(AlertConfigError, match="SECRET"):
        AlertConfig.from_env({"HYPERTAB_ALERT_WEBHOOK_URL": "https://pager.example.com/"})
    with pytest.raises(AlertConfigError, match="plain http"):
        AlertConfig.from_env(
            {
                "HYPERTAB_ALERT_WEBHOOK_URL": "http://pager.example.com/",
                "HYPERTAB_ALERT_WEBHOOK_SECRET": "s" * 20,
            }
        )
    with pytest.raises(AlertConfigError, match="16 bytes"):
        AlertConfig.from_env(
            {
                "HYPERTAB_ALERT_WEBHOOK_URL": "https://pager.example.com/",
                "HYPERTAB_ALERT_WEBHOOK_SECRET": "short",
            }
        )
    assert AlertConfig.from_env({}).webhook_url is None


def test_a_burst_of_failures_alerts_once_per_cooldown() -> None:
    burst = BurstDetector(threshold=3, window=10.0, cooldown=60.0)
    assert [burst.record("ip:1.2.3.4", t) for t in (0.0, 1.0)] == [None, None]
    assert burst.record("ip:5.6.7.8", 1.5) is None  # another key counts apart
    assert burst.record("ip:1.2.3.4", 2.0) == 3
    assert burst.record("ip:1.2.3.4", 3.0) is None  # once per cooldown
    assert [burst.record("ip:9.9.9.9", t) for t in (0.0, 11.0, 22.0)] == [None, None, None]
    assert [burst.record("ip:1.2.3.4", t) for t in (70.0, 71.0, 72.0)] == [None, None, 3]


async def test_an_operator_revealing_a_tenant_secret_raises_an_alert(tmp_path: Path) -> None:
    import asyncio
    import subprocess
    import sys

    from delivery_helpers import clean_env

    from server.lifecycle.service import Lifecycle
    from server.secrets.keyring import generate_key_file

    await asyncio.to_thread(tmp_path.mkdir, parents=True, exist_ok=True)
    await asyncio.to_thread(generate_key_file, tmp_path / "master.keys")
    plane = await _plane(tmp_path)
    lifecycle = await Lifecycle.open(tmp_path, plane)
    try:
        tenant, _ = await lifecycle.create_tenant("acme", now=time.time())
    finally:
        await lifecycle.close()
        await plane.close()
    base = [sys.executable, "-m", "server.cli", "secret"]
    where = ["--tenant", tenant.id, "--data-dir", str(tmp_path)]

    def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*base, *args, *where], input=stdin, env=clean_env(), capture_output=True,
            text=True, timeout=60, check=False,
        )  # fmt: skip

    assert (await asyncio.to_thread(cli, "set", "TOKEN", stdin="tok-1234567890")).returncode == 0
    assert await _kinds(tmp_path) == []  # writing a secret is no read
    shown = await asyncio.to_thread(cli, "reveal", "TOKEN")
    assert shown.returncode == 0 and shown.stdout.strip() == "tok-1234567890"
    assert await _kinds(tmp_path) == ["admin_read"]
