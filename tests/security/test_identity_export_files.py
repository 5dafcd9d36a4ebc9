"""Tenant export: numbers stay numbers, text that a spreadsheet would run is defused (row ids
included), and every file holding tenant data is owner-only (0600), control.db included."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest
from sec_identity_helpers import cli, mode

from client_sdk import Client
from server.control.plane import ControlPlane
from server.store.schema import tenant_path


async def _fill(hub_url: str, key: str) -> str:
    async with await Client.connect(hub_url, api_key=key) as client:
        table = await client.create_table(
            "Ledger", [("Label", "text"), ("Amount", "number"), ("=Header", "text")]
        )
        await table.insert({"Label": "refund", "Amount": -5}, row_id="-A1")
        await table.insert({"Label": "-5", "Amount": 2.5}, row_id="plain")
        await table.insert({"Label": "@SUM(A1)", "Amount": -0.25}, row_id="r3")
        return table.id


def _csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


@pytest.mark.parametrize("archive", ["export-dir", "export.tar.gz"])
async def test_export_keeps_numbers_defuses_text_and_is_owner_only(
    hub: Any, hub_url: str, tenant: Any, tmp_path: Path, archive: str
) -> None:
    record, key = tenant
    await _fill(hub_url, key)
    data_dir = Path(hub.config.data_dir)
    out = tmp_path / archive
    result = await asyncio.to_thread(
        cli, "tenant", "export", record.id, str(out), "--data-dir", str(data_dir)
    )
    assert result.returncode == 0, result.stderr

    if archive.endswith(".tar.gz"):
        assert mode(out) == 0o600
        with tarfile.open(out) as tar:
            members = tar.getmembers()
            assert members and all(m.mode & 0o077 == 0 for m in members), [
                (m.name, oct(m.mode)) for m in members
            ]
            (member,) = [m for m in members if m.name.endswith(".csv")]
            handle = tar.extractfile(member)
            assert handle is not None
            text = handle.read().decode()
    else:
        assert mode(out) == 0o700
        for path in out.rglob("*"):
            assert mode(path) == (0o700 if path.is_dir() else 0o600), path
        (path,) = list((out / "tables").glob("*.csv"))
        text = path.read_text()

    rows = _csv_rows(text)
    assert rows[0] == ["_id", "_order", "Label", "Amount", "'=Header"]
    by_id = {row[0]: row for row in rows[1:]}
    assert set(by_id) == {"'-A1", "plain", "r3"}  # a row id can start a formula too
    assert by_id["'-A1"][2:4] == ["refund", "-5"]  # the number reads back as a number
    assert float(by_id["'-A1"][3]) == -5
    assert by_id["plain"][2:4] == ["'-5", "2.5"]  # text that looks like a formula: defused
    assert by_id["r3"][2:4] == ["'@SUM(A1)", "-0.25"]


async def test_control_db_and_every_data_file_are_owner_only(
    hub: Any, hub_url: str, tenant: Any
) -> None:
    record, key = tenant
    await _fill(hub_url, key)  # the WAL files exist while the hub runs
    data_dir = Path(hub.config.data_dir)
    control = data_dir / "control.db"
    tenant_db = tenant_path(data_dir, record.id)
    for path in (control, tenant_db):
        for suffix in ("", "-wal", "-shm"):
            file = path.with_name(path.name + suffix)
            assert file.exists() and mode(file) == 0o600, (file.name, oct(mode(file)))
    for name in ("pepper.key", "master.keys"):
        assert mode(data_dir / name) == 0o600, name


async def test_an_existing_loose_control_db_is_tightened_when_opened(tmp_path: Path) -> None:
    data = tmp_path / "fresh"
    plane = await ControlPlane.open(data, pepper=os.urandom(32))
    await plane.close()
    assert mode(data) == 0o700  # a data directory made by the server is private
    control = data / "control.db"
    assert mode(control) == 0o600
    os.chmod(control, 0o644)  # as made by an older version
    plane = await ControlPlane.open(data, pepper=os.urandom(32))
    try:
        assert mode(control) == 0o600
        assert all(mode(p) == 0o600 for p in data.glob("control.db*"))
    finally:
        await plane.close()
