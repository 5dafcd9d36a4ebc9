"""Tenant webhooks: every committed change of the table, in version order, across a
``kill -9`` of the server; a rejecting receiver is retried, then reported failed; private
and plain-http destinations are refused."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from pathlib import Path
from typing import Any

import pytest
from delivery_helpers import HubProcess, Receiver, run_cli

from client_sdk import Client
from server.app import HypertabServer
from server.config import Config, load_pepper
from server.control.plane import ControlPlane
from server.lifecycle.service import Lifecycle
from server.secrets.keyring import generate_key_file

FAST = {
    "HYPERTAB_DELIVERY_ALLOW_NETWORKS": "127.0.0.0/8",
    "HYPERTAB_DELIVERY_RETRY_BASE": "0.05",
    "HYPERTAB_DELIVERY_RETRY_MAX_DELAY": "0.2",
    "HYPERTAB_DELIVERY_TIMEOUT": "2",
}


async def make_tenant(data: Path) -> tuple[str, str]:
    await asyncio.to_thread(data.mkdir, parents=True, exist_ok=True)
    await asyncio.to_thread(generate_key_file, data / "master.keys")
    plane = await ControlPlane.open(data, pepper=load_pepper(data), watch=False)
    lifecycle = await Lifecycle.open(data, plane)
    try:
        record, issued = await lifecycle.create_tenant("acme", now=time.time())
        return record.id, issued.secret
    finally:
        await lifecycle.close()
        await plane.close()


def add_hook(data: Path, tenant: str, url: str, table: str) -> dict[str, Any]:
    code, out, err = run_cli(
        "webhook", "add", "--tenant", tenant, "--url", url, f"--table={table}", "--json",
        "--data-dir", str(data),
    )  # fmt: skip
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)
    return result


def hooks(data: Path, tenant: str) -> list[dict[str, Any]]:
    code, out, err = run_cli(
        "webhook", "list", "--tenant", tenant, "--json", "--data-dir", str(data)
    )
    assert code == 0, err
    listed: list[dict[str, Any]] = json.loads(out)["webhooks"]
    return listed


@pytest.fixture
def receiver() -> Any:
    r = Receiver()
    r.start()
    yield r
    r.stop()


async def test_every_change_in_version_order_across_kill_9(
    tmp_path: Path, receiver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in FAST.items():  # for the CLI run in this process
        monkeypatch.setenv(name, value)
    data = tmp_path / "data"
    tenant, key = await make_tenant(data)
    hub = HubProcess(data, {**FAST, "HYPERTAB_DELIVERY_MAX_ATTEMPTS": "10000"})
    hub.start()
    try:
        async with await Client.connect(hub.url, api_key=key, reconnect=False) as client:
            people = await client.create_table("People", [("Name", "text")])
            other = await client.create_table("Other", [("X", "number")])
            start = people.version
        added = await asyncio.to_thread(add_hook, data, tenant, receiver.url, "People")
        secret = added["secret"]
        await asyncio.sleep(0.2)  # the hub notices the new webhook (control.db changed)
        receiver.stop()  # round 0 cannot be delivered before the kill
        for round_ in range(2):
            async with await Client.connect(hub.url, api_key=key, reconnect=False) as client:
                people = await client.table("People")
                other = await client.table("Other")
                for i in range(60):
                    await people.insert({"Name": f"r{round_}-{i}"})
                    if i % 10 == 0:
                        await other.insert({"X": i})  # another table: not delivered
                last = people.version
            if round_ == 0:
                (hook,) = await asyncio.to_thread(hooks, data, tenant)
                assert hook["pending"] == 60  # committed, waiting in the outbox
                hub.kill()
                receiver.start()
                hub.start()
        wanted = last - start
        deadline = time.monotonic() + 15
        versions: dict[int, Any] = {}
        while time.monotonic() < deadline and len(versions) < wanted:
            await asyncio.sleep(0.05)
            for got in list(receiver.received):
                for change in got.json["changes"]:
                    versions[change["version"]] = change
        assert sorted(versions) == list(range(start + 1, last + 1))  # every change, no gap
        by_id: dict[str, bytes] = {}
        for got in receiver.received:
            body = got.json
            assert got.signature_ok(secret)
            assert body["table"] == people.id and body["tenant"] == tenant
            numbers = [c["version"] for c in body["changes"]]
            assert numbers == list(range(body["from_version"], body["to_version"] + 1))
            assert by_id.setdefault(got.event_id, got.body) == got.body  # a repeat is identical
        arrived = [(g.json["from_version"], g.json["to_version"]) for g in receiver.received]
        ranges = list(dict.fromkeys(arrived))  # in arrival order, a repeat dropped
        assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(ranges))  # in version order
        inserted = [c for v, c in sorted(versions.items()) for op in c["ops"] if "rows" in op]
        assert len(inserted) == 120
    finally:
        hub.stop()


async def test_a_rejecting_receiver_is_retried_then_reported_failed(
    tmp_path: Path, receiver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    tenant, key = await make_tenant(data)
    for name, value in {**FAST, "HYPERTAB_DELIVERY_MAX_ATTEMPTS": "3"}.items():
        monkeypatch.setenv(name, value)
    server = HypertabServer(Config(data_dir=data, port=0))
    await server.start()
    url = f"ws://127.0.0.1:{server.port}/v1/ws"
    try:
        async with await Client.connect(url, api_key=key, reconnect=False) as client:
            table = await client.create_table("T", [("A", "text")])
            await asyncio.to_thread(add_hook, data, tenant, receiver.url, table.id)
            await asyncio.sleep(0.2)  # the hub notices the new webhook (control.db changed)
            receiver.status = 500
            await table.insert({"A": "lost"})
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and len(receiver.rejected) < 3:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            assert len(receiver.rejected) == 3  # the bound: 3 attempts, then no more
            assert len({r.event_id for r in receiver.rejected}) == 1  # one batch, one id
            (hook,) = await asyncio.to_thread(hooks, data, tenant)
            assert hook["failed_batches"] == 1 and hook["pending"] == 0
            assert "500" in hook["last_error"] and "v2-v2" in hook["last_failed"]
            assert hook["disabled_at"] is not None  # a dead receiver queues nothing more
            await table.insert({"A": "not queued"})
            (hook,) = await asyncio.to_thread(hooks, data, tenant)
            assert hook["pending"] == 0
            receiver.status = 200
            code, out, err = await asyncio.to_thread(
                run_cli, "webhook", "test", "--tenant", tenant, hook["id"], "--json",
                "--data-dir", str(data),
            )  # fmt: skip
            assert code == 0 and json.loads(out)["status"] == 200, err
            (hook,) = await asyncio.to_thread(hooks, data, tenant)
            assert hook["disabled_at"] is None  # the test passed: enabled again
            await table.insert({"A": "kept"})
            got = await asyncio.to_thread(receiver.wait_for, 2, 10.0)
            assert got[0].json["type"] == "test"
            assert got[1].json["from_version"] == 4  # the receiver sees the gap at 2-3
    finally:
        await server.stop()


async def test_private_and_plain_http_destinations_are_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    tenant, _ = await make_tenant(data)
    refusals = {
        "https://10.1.2.3/hook": "private",
        "https://[fd00::5]/hook": "private",
        "http://example.com/hook": "plain http",
        "http://127.0.0.1:9/hook": "private",  # loopback is private for tenant webhooks
    }
    for url, reason in refusals.items():
        code, _, err = await asyncio.to_thread(
            run_cli, "webhook", "add", "--tenant", tenant, "--url", url, "--data-dir", str(data)
        )
        assert code == 1 and reason in err, (url, err)
    assert await asyncio.to_thread(hooks, data, tenant) == []
