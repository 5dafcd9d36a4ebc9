"""``hypertab incident report``: which tenants, keys, addresses and actions a window holds."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from pathlib import Path

import pytest
from delivery_helpers import open_raw, refused_status, run_cli

from server.app import HypertabServer
from server.cli.common import UsageError
from server.cli.incident import parse_when
from server.config import Config


async def test_the_report_names_tenants_keys_addresses_and_actions(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = HypertabServer(Config(data_dir=data, port=0))
    await server.start()
    url = f"ws://127.0.0.1:{server.port}/v1/ws"
    try:
        assert server.control is not None
        acme, acme_key = await server.control.create_tenant("acme", now=time.time())
        other, _ = await server.control.create_tenant("other", now=time.time())
        conn = await open_raw(url, acme_key.secret)
        await conn.close()
        stolen = await server.control.create_key(
            acme.id, "ci", ["tables:read"], created_by="test", now=time.time()
        )
        await server.control.revoke_key(stolen.record.id, now=time.time())
        assert await refused_status(url, stolen.secret) == 401  # a revoked key, tried again
        await server.audit.flush()
        code, out, err = await asyncio.to_thread(
            run_cli, "incident", "report", "--since", "1h", "--tenant", acme.id,
            "--data-dir", str(data),
        )  # fmt: skip
        assert code == 0, err
        report = json.loads(out)
        assert [t["id"] for t in report["tenants"]] == [acme.id]  # --tenant: the other is out
        assert report["tenants"][0]["name"] == "acme"
        assert acme_key.record.id in {k["id"] for k in report["keys"]}
        assert "127.0.0.1" in {a["ip"] for a in report["addresses"]}
        assert report["actions"]["auth.failed"] == 1
        assert {"tenant.created", "key.created"} <= set(report["actions"])
        assert stolen.record.id in {k["id"] for k in report["keys"]}
        assert acme_key.secret not in out and stolen.secret not in out
        code, everyone, _ = await asyncio.to_thread(
            run_cli, "incident", "report", "--since", "1h", "--format", "csv",
            "--data-dir", str(data),
        )  # fmt: skip
        assert code == 0
        rows = list(csv.DictReader(io.StringIO(everyone)))
        assert {r["tenant"] for r in rows} >= {acme.id, other.id}
        assert all(r["action"] for r in rows)
    finally:
        await server.stop()


def test_windows_are_durations_or_iso_times() -> None:
    now = 1_767_225_600.0
    assert parse_when("72h", now) == now - 72 * 3600
    assert parse_when("7d", now) == now - 7 * 86_400
    assert parse_when("2026-01-01T00:00:00Z", now) == 1_767_225_600.0
    assert parse_when("2026-01-01", now) == 1_767_225_600.0
    with pytest.raises(UsageError):
        parse_when("last tuesday", now)
