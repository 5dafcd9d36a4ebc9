"""Provisioning is all or nothing; the master key source is checked at start-up."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from lifecycle_helpers import clean_env, cli, cli_json, hypertab_argv

from server.app import HypertabServer
from server.audit import log as audit_log
from server.config import Config
from server.secrets import InsecureKeyFileError, generate_key_file
from server.secrets.datakeys import DataKeyStore
from server.store.schema import tenant_path


def _control_counts(data_dir: Path) -> tuple[int, int, int, int]:
    with sqlite3.connect(data_dir / "control.db") as conn:
        return (
            conn.execute("SELECT COUNT(*) FROM tenants").fetchone()[0],
            conn.execute("SELECT COUNT(*) FROM api_keys").fetchone()[0],
            conn.execute("SELECT COUNT(*) FROM _ht_data_keys").fetchone()[0],
            conn.execute(
                "SELECT COUNT(*) FROM _ht_audit_log WHERE action = 'tenant.created'"
            ).fetchone()[0],
        )


async def test_signup_creates_database_data_key_admin_key_and_audit(hub: Any) -> None:
    data_dir = Path(hub.config.data_dir)
    record, _ = await hub.services.lifecycle.create_tenant("acme", now=time.time())
    assert tenant_path(data_dir, record.id).is_file()
    keys = await hub.services.lifecycle.datakeys.list_keys(record.id)
    assert [k.version for k in keys] == [1]
    assert _control_counts(data_dir) == (1, 1, 1, 1)
    with sqlite3.connect(tenant_path(data_dir, record.id)) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert {"_ht_tables", "_ht_secrets", "_ht_audit_log"} <= names


# data_key fails last, inside the control transaction (after the tenant row, its admin key
# and its audit entries); schema and populate fail while the database file is being made.
@pytest.mark.parametrize("failing_step", ["data_key", "schema", "populate"])
async def test_failure_midway_leaves_nothing(
    hub: Any, monkeypatch: pytest.MonkeyPatch, failing_step: str
) -> None:
    data_dir = Path(hub.config.data_dir)

    class Boom(Exception):
        pass

    async def fail(*args: Any, **kwargs: Any) -> Any:
        raise Boom

    def fail_sync(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half_done (x)")
        raise Boom

    populate = None
    if failing_step == "data_key":
        monkeypatch.setattr(DataKeyStore, "create_tenant_key", fail)
    elif failing_step == "schema":
        monkeypatch.setattr(audit_log, "ensure_schema", fail)
    else:
        populate = fail_sync
    with pytest.raises(Boom):
        await hub.services.lifecycle.create_tenant("acme", now=time.time(), populate=populate)
    assert _control_counts(data_dir) == (0, 0, 0, 0)
    tenants_dir = data_dir / "tenants"
    assert not tenants_dir.exists() or not any(tenants_dir.iterdir())


async def test_cli_tenant_create_provisions(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert (await cli(data_dir, "keyring", "generate")).returncode == 0
    created = await cli_json(data_dir, "tenant", "create", "Acme")
    tenant = created["tenant"]["id"]
    assert tenant_path(data_dir, tenant).is_file()
    assert _control_counts(data_dir) == (1, 1, 1, 1)


async def test_a_key_file_readable_by_others_refuses_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    key_file = data_dir / "master.keys"
    generate_key_file(key_file)
    key_file.chmod(0o644)
    server = HypertabServer(Config(data_dir=data_dir, port=0))
    with pytest.raises(InsecureKeyFileError) as refused:
        await server.start()
    assert "chmod 600" in str(refused.value)
    await server.stop()

    served = await cli(data_dir, "serve", "--port", "0")
    assert served.returncode == 1
    assert "chmod 600" in served.stderr and "Traceback" not in served.stderr


async def test_serve_demo_generates_a_private_key_file(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    proc = await asyncio.create_subprocess_exec(
        *hypertab_argv(), "serve", "--demo", "--port", "0", "--data-dir", str(data_dir),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=clean_env(),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line.startswith(b"hypertab listening on ")
    finally:
        proc.terminate()
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    key_file = data_dir / "master.keys"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert b"generated master key" in err
    assert key_file.read_text().split('"key": "')[1].split('"')[0].encode() not in err
    with sqlite3.connect(data_dir / "control.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM _ht_data_keys").fetchone() == (1,)
