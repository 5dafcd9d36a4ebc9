"""A write the tenant database refuses is logged with its cause and answered truthfully.

It used to be answered ``internal`` (temporary: clients retry forever) and logged nowhere:
``server/store/writer.py`` turned the IntegrityError into a silent outcome. A known trigger
is a second process writing the same data directory, which is reproduced here by another
SQLite connection committing the next version of a table behind the store's back.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from client_sdk import Client, ServerError
from protocol.errors import is_temporary
from protocol.messages import Change
from protocol.ops import ColumnDef, ColumnType, CreateTable, InsertRows, NewRow
from server.store.manager import StoreManager
from server.store.schema import tenant_path

TENANT = "writeerrors0000a"
VALUE = "cell-value-that-must-not-be-logged-7d1f"


def _ignore(tenant: str, table: str, changes: list[Change]) -> None:
    pass


def _other_writer_takes_next_version(db: Path, table: str, version: int) -> None:
    """What a second process writing this file does: commit ``version`` of ``table``."""
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute(
            "INSERT INTO _ht_oplog (tbl, version, client, op, ts, change)"
            " VALUES (?, ?, 'other-process', 'x', 0, x'00')",
            (table, version),
        )
    conn.close()


def _insert(value: str, row: str = "r1") -> list[Any]:
    return [InsertRows(rows=[NewRow(id=row, values={"a": value})])]


async def _store_with_table(tmp_path: Path) -> StoreManager:
    manager = StoreManager(tmp_path, on_commit=_ignore)
    async with manager.use(TENANT) as store:
        created = await store.apply(
            "t",
            "c",
            "o1",
            [CreateTable(name="T", columns=[ColumnDef(id="a", name="A", type=ColumnType.TEXT)])],
            "test",
        )
        assert created.error is None and created.version == 1
    return manager


async def test_a_constraint_failure_is_logged_and_not_temporary(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manager = await _store_with_table(tmp_path)
    try:
        _other_writer_takes_next_version(tenant_path(tmp_path, TENANT), "t", 2)
        caplog.set_level(logging.ERROR, logger="server.store")
        async with manager.use(TENANT) as store:
            outcome = await store.apply("t", "c", "o2", _insert(VALUE), "test")
        assert outcome.error is not None and outcome.error.code == "store_conflict"
        assert not is_temporary(outcome.error.code)
        (record,) = [r for r in caplog.records if r.name == "server.store.failures"]
        assert record.levelno == logging.ERROR
        assert getattr(record, "tenant", None) == TENANT
        assert getattr(record, "cause", None) == "SQLITE_CONSTRAINT_PRIMARYKEY"
        assert VALUE not in caplog.text and record.exc_info is None
        # Nothing was applied: the row is not there, and other tables still work.
        async with manager.use(TENANT) as store:
            snap = await store.snapshot("t")
            assert snap is not None and snap.rows == []
    finally:
        await manager.close()


async def test_a_full_disk_is_store_failed_not_temporary(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manager = await _store_with_table(tmp_path)
    try:
        async with manager.use(TENANT) as store:
            async with store.exclusive() as conn:  # the file may not grow: a full disk
                async with conn.execute("PRAGMA page_count") as cur:
                    row = await cur.fetchone()
                assert row is not None
                await conn.execute(f"PRAGMA max_page_count = {int(row[0])}")
            caplog.set_level(logging.ERROR, logger="server.store")
            outcome = await store.apply("t", "c", "o2", _insert(VALUE * 20_000), "test")
        assert outcome.error is not None and outcome.error.code == "store_failed"
        assert not is_temporary("store_failed")
        causes = [getattr(r, "cause", None) for r in caplog.records]
        assert "SQLITE_FULL" in causes, causes
        assert VALUE not in caplog.text
    finally:
        await manager.close()


async def test_the_client_gets_a_non_temporary_code_on_the_wire(
    hub: Any, hub_url: str, tenant: Any
) -> None:
    record, key = tenant
    async with await Client.connect(hub_url, api_key=key) as client:
        table = await client.create_table("People", [("Name", "text")])
        db = tenant_path(Path(hub.config.data_dir), record.id)
        await asyncio.to_thread(_other_writer_takes_next_version, db, table.id, 2)
        with pytest.raises(ServerError) as failed:
            await asyncio.wait_for(table.insert({"Name": VALUE}), 20)
        assert failed.value.code == "store_conflict" and not failed.value.temporary
