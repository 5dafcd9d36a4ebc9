"""``hypertab audit export|verify|purge`` as real subprocesses against a running hub's data."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import pytest
from auditlog_helpers import hypertab, tenant_rows

from client_sdk import Client
from protocol.audit import ToolCall
from server.audit import GENESIS_HASH, verify
from server.audit.export import parse
from server.auth.principal import Plan
from server.store.schema import tenant_path

_COLUMNS = "ts, actor, action, target, ip, details, prev_hash, hash"


async def _tool_calls(hub_url: str, key: str, n: int) -> None:
    client = await Client.connect(hub_url, api_key=key)
    try:
        for i in range(n):
            await client.request(lambda rid, i=i: ToolCall(id=rid, tool=f"t{i}", args=i))
    finally:
        await client.close()


async def test_export_both_formats_round_trip(hub: Any, hub_url: str, tenant: Any) -> None:
    record, key = tenant
    await _tool_calls(hub_url, key, 4)
    data = hub.config.data_dir
    refused = hypertab(data, "audit", "export", "--tenant", record.id)
    assert refused.returncode == 1
    assert "Pro plan or above" in refused.stderr and "free" in refused.stderr
    await hub.control.set_plan(record.id, Plan.PRO)
    # The CLI runs in a thread: the plan change wakes the hub's alert dispatcher, whose short
    # control.db transaction must be able to finish on this event loop while the CLI waits.
    jsonl = await asyncio.to_thread(
        hypertab, data, "audit", "export", "--tenant", record.id, "--format", "jsonl"
    )
    csv = await asyncio.to_thread(
        hypertab, data, "audit", "export", "--tenant", record.id, "--format", "csv"
    )
    assert jsonl.returncode == 0 and csv.returncode == 0, jsonl.stderr + csv.stderr
    from_jsonl, from_csv = parse(jsonl.stdout, "jsonl"), parse(csv.stdout, "csv")
    assert verify(from_jsonl, anchor=GENESIS_HASH) is None
    assert verify(from_csv, anchor=GENESIS_HASH) is None
    assert from_csv[: len(from_jsonl)] == from_jsonl
    assert [e.target for e in from_jsonl if e.action == "tool.call"] == ["t0", "t1", "t2", "t3"]
    assert from_jsonl[-1].action == "export" and from_jsonl[-1].actor.startswith("cli:")
    cut = from_jsonl[2].ts
    since = hypertab(data, "audit", "export", "--tenant", record.id, "--since", repr(cut))
    assert next(e.id for e in parse(since.stdout, "jsonl")) == from_jsonl[2].id


@pytest.mark.parametrize("tamper", ["edit", "delete", "reorder"])
async def test_verify_reports_the_first_tampered_entry(
    hub: Any, hub_url: str, tenant: Any, tamper: str
) -> None:
    record, key = tenant
    await _tool_calls(hub_url, key, 5)
    data = hub.config.data_dir
    ok = hypertab(data, "audit", "verify", "--tenant", record.id)
    assert ok.returncode == 0 and "ok" in ok.stdout, ok.stdout + ok.stderr
    entries = tenant_rows(hub, record.id)
    target = entries[2]["id"]
    with sqlite3.connect(tenant_path(data, record.id)) as db:
        if tamper == "edit":
            db.execute("UPDATE _ht_audit_log SET target = 'nothing' WHERE id = ?", (target,))
        elif tamper == "delete":
            db.execute("DELETE FROM _ht_audit_log WHERE id = ?", (target,))
        else:  # swap the contents of two neighbours, keeping the ids in order
            a = db.execute(f"SELECT {_COLUMNS} FROM _ht_audit_log WHERE id = ?", (target,))
            first = a.fetchone()
            b = db.execute(f"SELECT {_COLUMNS} FROM _ht_audit_log WHERE id = ?", (target + 1,))
            second = b.fetchone()
            sets = ", ".join(f"{c.strip()} = ?" for c in _COLUMNS.split(","))
            db.execute(f"UPDATE _ht_audit_log SET {sets} WHERE id = ?", (*second, target))
            db.execute(f"UPDATE _ht_audit_log SET {sets} WHERE id = ?", (*first, target + 1))
    broken = hypertab(data, "audit", "verify", "--tenant", record.id)
    assert broken.returncode == 1
    assert f"BROKEN at entry {target}" in broken.stdout


async def test_verify_the_control_log_and_purge(hub: Any, tenant: Any) -> None:
    record, _ = tenant
    data = hub.config.data_dir
    ok = hypertab(data, "audit", "verify", "--control")
    assert ok.returncode == 0 and "control: ok" in ok.stdout
    with sqlite3.connect(data / "control.db") as db:
        db.execute("UPDATE _ht_audit_log SET actor = 'someone else' WHERE id = 1")
    broken = hypertab(data, "audit", "verify", "--control")
    assert broken.returncode == 1 and "BROKEN at entry 1" in broken.stdout
    purged = hypertab(data, "audit", "purge", "--tenant", record.id, "--days", "30")
    assert purged.returncode == 0 and "0 entries older than 30 days" in purged.stdout
