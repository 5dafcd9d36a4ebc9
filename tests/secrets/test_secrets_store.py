"""Data key store + secret store on real SQLite files (WAL) in tmp_path."""

from __future__ import annotations

import base64
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiosqlite
import pytest

from server.auth.principal import TenantId
from server.secrets.datakeys import DataKeyStore
from server.secrets.errors import (
    DataKeyError,
    DecryptionError,
    InvalidSecretError,
    KeyInUseError,
    SecretNotFoundError,
    SecretsUsageError,
)
from server.secrets.keyring import (
    Keyring,
    add_master_key,
    generate_key_file,
    load_key_file,
    remove_master_key,
)
from server.secrets.masking import HIDDEN
from server.secrets.store import MAX_VALUE_BYTES, SecretKind, SecretStore

A = TenantId("tenant-a")
B = TenantId("tenant-b")
OPENAI = "sk-proj-Zq8vN3xT0pLw7KdR2mYc9HfBaUe4abcd"
HEADER = "Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig-Q7r2"


async def open_db(path: Path) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path)
    await conn.execute("PRAGMA journal_mode=WAL")
    # Some SQLite builds default to secure_delete=ON; start from OFF so the tests show that
    # the stores zero deleted bytes themselves.
    await conn.execute("PRAGMA secure_delete = 0")
    return conn


@dataclass
class World:
    data: Path
    key_file: Path
    control: aiosqlite.Connection
    keys: DataKeyStore
    tenants: dict[TenantId, aiosqlite.Connection]
    stores: dict[TenantId, SecretStore]

    async def add_tenant(self, tenant: TenantId, now: float = 1000.0) -> SecretStore:
        await self.keys.create_tenant_key(tenant, now=now)
        conn = await open_db(self.data / f"{tenant}.db")
        store = SecretStore(conn, tenant, self.keys)
        await store.ensure_schema()
        self.tenants[tenant] = conn
        self.stores[tenant] = store
        return store

    async def fresh_keys(self, keyring: Keyring | None = None) -> DataKeyStore:
        """A new DataKeyStore (empty cache) over the same control db, like a restart."""
        self.keys = DataKeyStore(self.control, keyring or load_key_file(self.key_file))
        for tenant, conn in self.tenants.items():
            self.stores[tenant] = SecretStore(conn, tenant, self.keys)
        return self.keys


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    data = tmp_path / "data"
    data.mkdir()
    key_file = tmp_path / "master-keys.json"
    generate_key_file(key_file)
    control = await open_db(data / "control.db")
    keys = DataKeyStore(control, load_key_file(key_file))
    await keys.ensure_schema()
    w = World(data, key_file, control, keys, {}, {})
    try:
        yield w
    finally:
        for conn in w.tenants.values():
            await conn.close()
        await control.close()


async def test_set_list_reveal_delete(world: World) -> None:
    store = await world.add_tenant(A)
    info = await store.set("OPENAI_API_KEY", SecretKind.AI_PROVIDER_KEY, OPENAI, now=10.0)
    assert info.masked == "…abcd"
    assert info.created_at == info.updated_at == 10.0
    await store.set("TOKEN", "api_account_auth_header", HEADER, now=11.0)
    await store.set("DEBUG", "env_var", "1", now=12.0)
    listing = await store.list()
    assert [(s.name, s.kind, s.masked) for s in listing] == [
        ("DEBUG", SecretKind.ENV_VAR, HIDDEN),
        ("OPENAI_API_KEY", SecretKind.AI_PROVIDER_KEY, "…abcd"),
        ("TOKEN", SecretKind.API_ACCOUNT_AUTH_HEADER, "…Q7r2"),
    ]
    assert await store.reveal("OPENAI_API_KEY") == OPENAI
    assert await store.reveal("DEBUG") == "1"

    updated = await store.set("OPENAI_API_KEY", "ai_provider_key", OPENAI + "X", now=20.0)
    assert (updated.created_at, updated.updated_at) == (10.0, 20.0)
    assert await store.reveal("OPENAI_API_KEY") == OPENAI + "X"

    assert await store.delete("DEBUG") is True
    assert await store.delete("DEBUG") is False
    with pytest.raises(SecretNotFoundError):
        await store.reveal("DEBUG")
    assert [s.name for s in await store.list()] == ["OPENAI_API_KEY", "TOKEN"]


@pytest.mark.parametrize(
    ("name", "kind", "value"),
    [
        ("1BAD", "env_var", "x"),
        ("has space", "env_var", "x"),
        ("", "env_var", "x"),
        ("A" * 129, "env_var", "x"),
        ("OK", "password", "x"),
        ("OK", "env_var", "x" * (MAX_VALUE_BYTES + 1)),
        ("OK", "env_var", "a\x00b"),
        ("OK", "api_account_auth_header", "Bearer x\r\nX-Evil: 1"),
        ("OK", "ai_provider_key", ""),
    ],
)
async def test_invalid_input_is_refused(world: World, name: str, kind: str, value: str) -> None:
    store = await world.add_tenant(A)
    with pytest.raises(InvalidSecretError) as info:
        await store.set(name, kind, value, now=1.0)
    if len(value) > 3:
        assert value not in str(info.value)
    assert await store.list() == []


async def test_value_size_limit_is_inclusive(world: World) -> None:
    store = await world.add_tenant(A)
    big = "v" * MAX_VALUE_BYTES
    await store.set("BIG", "env_var", big, now=1.0)
    assert await store.reveal("BIG") == big
    assert await store.set("A" * 128, "env_var", "", now=1.0)


async def test_commit_false_joins_the_callers_transaction(world: World) -> None:
    store = await world.add_tenant(A)
    conn = world.tenants[A]
    await conn.execute("CREATE TABLE audit (action TEXT)")
    await conn.commit()

    await store.set("K", "env_var", "v1", now=1.0, commit=False)
    await conn.execute("INSERT INTO audit VALUES ('secret.set')")
    assert conn.in_transaction
    await conn.rollback()
    assert await store.list() == []

    await store.set("K", "env_var", "v2", now=1.0, commit=False)
    await conn.execute("INSERT INTO audit VALUES ('secret.set')")
    await conn.commit()
    assert await store.reveal("K") == "v2"

    # commit=True inside an open transaction would commit the caller's work: refused.
    await conn.execute("INSERT INTO audit VALUES ('pending')")
    with pytest.raises(SecretsUsageError):
        await store.set("K2", "env_var", "v", now=2.0)
    with pytest.raises(SecretsUsageError):
        await store.delete("K")
    await conn.rollback()
    assert await store.reveal("K") == "v2"


async def test_commit_true_rolls_back_on_error(world: World) -> None:
    await world.add_tenant(A)
    with pytest.raises(DataKeyError):
        await world.keys.create_tenant_key(A, now=1.0)
    assert not world.control.in_transaction
    assert [r.version for r in await world.keys.list_keys(A)] == [1]


async def test_ciphertext_moved_to_other_tenant_name_or_kind_fails(world: World) -> None:
    a = await world.add_tenant(A)
    b = await world.add_tenant(B)
    await a.set("SHARED", "ai_provider_key", OPENAI, now=1.0)
    await b.set("SHARED", "ai_provider_key", "sk-b-" + "y" * 30, now=1.0)
    async with world.tenants[A].execute(
        "SELECT ciphertext, key_version FROM _ht_secrets WHERE name = 'SHARED'"
    ) as cursor:
        row = await cursor.fetchone()
    assert row is not None
    blob, version = row

    # Into tenant B's database under the same name and version.
    await world.tenants[B].execute(
        "UPDATE _ht_secrets SET ciphertext = ?, key_version = ? WHERE name = 'SHARED'",
        (blob, version),
    )
    await world.tenants[B].commit()
    with pytest.raises(DecryptionError):
        await b.reveal("SHARED")
    with pytest.raises(DecryptionError):
        await b.list()

    # Under another name in the same tenant.
    await world.tenants[A].execute(
        "INSERT INTO _ht_secrets SELECT 'OTHER', kind, ciphertext, key_version, created_at,"
        " updated_at FROM _ht_secrets WHERE name = 'SHARED'"
    )
    # And with its kind relabelled.
    await world.tenants[A].execute("UPDATE _ht_secrets SET kind = 'env_var' WHERE name = 'SHARED'")
    await world.tenants[A].commit()
    for name in ("OTHER", "SHARED"):
        with pytest.raises(DecryptionError):
            await a.reveal(name)


async def test_tampered_ciphertext_in_db_never_yields_plaintext(world: World) -> None:
    store = await world.add_tenant(A)
    await store.set("K", "ai_provider_key", OPENAI, now=1.0)
    conn = world.tenants[A]
    async with conn.execute("SELECT ciphertext FROM _ht_secrets") as cursor:
        row = await cursor.fetchone()
    assert row is not None
    blob = bytes(row[0])
    for candidate in (blob[:-1], blob[: len(blob) // 2], bytes([blob[0]]) + b"\x00" + blob[2:]):
        await conn.execute("UPDATE _ht_secrets SET ciphertext = ?", (candidate,))
        await conn.commit()
        with pytest.raises(DecryptionError):
            await store.reveal("K")


async def test_master_rotation_rewrap_and_old_key_removal(world: World) -> None:
    a = await world.add_tenant(A)
    b = await world.add_tenant(B)
    await a.set("K", "ai_provider_key", OPENAI, now=1.0)
    await b.set("H", "api_account_auth_header", HEADER, now=1.0)
    old_id = world.keys.keyring.current.key_id
    assert await world.keys.master_keys_in_use() == {old_id}

    new_id = add_master_key(world.key_file)
    # Still in use until re-wrapped: removal refused, file untouched.
    with pytest.raises(KeyInUseError):
        remove_master_key(world.key_file, old_id, await world.keys.master_keys_in_use())
    assert load_key_file(world.key_file).ids == (old_id, new_id)

    assert await world.keys.rewrap_all(load_key_file(world.key_file)) == 2
    assert await world.keys.master_keys_in_use() == {new_id}
    assert await world.keys.rewrap_all() == 0  # idempotent
    remove_master_key(world.key_file, old_id, await world.keys.master_keys_in_use())

    # A restart with only the new master key reads every secret back.
    keys = await world.fresh_keys()
    assert keys.keyring.ids == (new_id,)
    assert await world.stores[A].reveal("K") == OPENAI
    assert await world.stores[B].reveal("H") == HEADER
    # New tenants get keys wrapped by the new master key.
    await world.add_tenant(TenantId("tenant-c"))
    assert await keys.master_keys_in_use() == {new_id}


async def test_tenant_data_key_rotation(world: World) -> None:
    store = await world.add_tenant(A)
    values = {f"S{i}": f"value-{i}-" + "z" * i for i in range(20)}
    for name, value in values.items():
        await store.set(name, "env_var", value, now=1.0)
    assert await store.key_versions_in_use() == {1}

    new_key = await world.keys.rotate_tenant_key(A, now=2.0)
    assert new_key.version == 2
    assert (await world.keys.current_key(A)).version == 2
    # Old secrets still readable before re-encryption; new ones use version 2.
    assert await store.reveal("S3") == values["S3"]
    await store.set("NEW", "env_var", "fresh", now=2.0)
    assert await store.key_versions_in_use() == {1, 2}

    # Destroying retired keys keeps any version still in use.
    kept = await world.keys.destroy_retired_keys(A, keep=await store.key_versions_in_use())
    assert kept == []
    assert await store.reencrypt_all(new_key) == 20
    assert await store.key_versions_in_use() == {2}
    destroyed = await world.keys.destroy_retired_keys(A, keep=await store.key_versions_in_use())
    assert [r.version for r in destroyed] == [1]
    assert [r.version for r in await world.keys.list_keys(A)] == [2]

    await world.fresh_keys()
    store = world.stores[A]
    for name, value in values.items():
        assert await store.reveal(name) == value
    assert await store.reveal("NEW") == "fresh"
    with pytest.raises(DataKeyError):
        await world.keys.get_key(A, 1)

    listing = await store.list()
    assert {s.name: s.updated_at for s in listing}["S0"] == 1.0  # value did not change


async def test_reencrypt_refuses_another_tenants_key(world: World) -> None:
    a = await world.add_tenant(A)
    await world.add_tenant(B)
    with pytest.raises(SecretsUsageError):
        await a.reencrypt_all(await world.keys.current_key(B))


async def test_deleted_tenant_keys_make_every_copy_unreadable(world: World) -> None:
    store = await world.add_tenant(A)
    await store.set("K", "ai_provider_key", OPENAI, now=1.0)
    await world.add_tenant(B)
    await world.stores[B].set("K", "env_var", "b-value", now=1.0)
    # Someone kept a copy of tenant A's database (backup, export, stolen disk).
    await world.tenants[A].execute("PRAGMA wal_checkpoint(TRUNCATE)")
    copy = world.data.parent / "copy-of-a.db"
    shutil.copyfile(world.data / f"{A}.db", copy)
    records = await world.keys.list_keys(A)
    assert len(records) == 1

    destroyed = await world.keys.delete_tenant_keys(A)
    assert [r.wrapped_sha256 for r in destroyed] == [r.wrapped_sha256 for r in records]
    assert await world.keys.scrub_files()
    with pytest.raises(DataKeyError):
        await world.keys.current_key(A)  # the cache was dropped too
    with pytest.raises(DataKeyError):
        await store.reveal("K")

    async with aiosqlite.connect(copy) as conn:
        for keys in (world.keys, await world.fresh_keys()):
            with pytest.raises(DataKeyError):
                await SecretStore(conn, A, keys).reveal("K")
    # Other tenants are untouched.
    assert await world.stores[B].reveal("K") == "b-value"


def grep_dir(directory: Path, needles: dict[str, bytes]) -> list[str]:
    hits = []
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            content = path.read_bytes()
            hits += [f"{label} in {path.name}" for label, n in needles.items() if n in content]
    return hits


def key_forms(label: str, raw: bytes) -> dict[str, bytes]:
    return {
        f"{label} raw": raw,
        f"{label} base64": base64.b64encode(raw),
        f"{label} base64url": base64.urlsafe_b64encode(raw).rstrip(b"="),
        f"{label} hex": raw.hex().encode(),
        f"{label} HEX": raw.hex().upper().encode(),
    }


async def test_no_plaintext_or_key_material_on_disk(world: World) -> None:
    store = await world.add_tenant(A)
    secret_values = {
        "OPENAI_API_KEY": OPENAI,
        "AUTH": HEADER,
        "DB_URL": "postgres://user:hunter2-very-secret@db.example/app",
    }
    for name, value in secret_values.items():
        await store.set(name, "env_var", value, now=1.0)
    await store.set("AUTH", "api_account_auth_header", HEADER, now=2.0)  # overwrite
    await store.set("GONE", "env_var", "deleted-secret-value-123", now=2.0)
    await store.delete("GONE")
    await world.keys.rotate_tenant_key(A, now=3.0)
    await store.reencrypt_all(await world.keys.current_key(A))

    # Positive control: a value stored in plaintext elsewhere IS found, so the grep works.
    canary = b"canary-plaintext-7f3e9a"
    await world.tenants[A].execute("CREATE TABLE other (v BLOB)")
    await world.tenants[A].execute("INSERT INTO other VALUES (?)", (canary,))
    await world.tenants[A].commit()
    assert grep_dir(world.data, {"canary": canary}) == [f"canary in {A}.db-wal"]

    needles: dict[str, bytes] = {name: value.encode() for name, value in secret_values.items()}
    needles["GONE"] = b"deleted-secret-value-123"
    for master in world.keys.keyring:
        needles.update(key_forms(f"master {master.key_id}", master.material))
    for version in (1, 2):
        dk = await world.keys.get_key(A, version)
        needles.update(key_forms(f"data key v{version}", dk.key.material))

    # While connections are open: the main files and the WAL files.
    assert any(p.name.endswith("-wal") for p in world.data.iterdir())
    assert grep_dir(world.data, needles) == []
    await world.tenants[A].close()
    await world.control.close()
    world.tenants.clear()
    # After close: everything checkpointed into the main files.
    assert grep_dir(world.data, needles) == []
    world.control = await open_db(world.data / "control.db")  # for fixture teardown


async def test_shredded_wrapped_keys_leave_no_bytes_in_control_files(world: World) -> None:
    await world.add_tenant(A)
    await world.add_tenant(B)
    await world.keys.rotate_tenant_key(A, now=2.0)
    wrapped: list[bytes] = []
    async with world.control.execute(
        "SELECT wrapped_key FROM _ht_data_keys WHERE tenant_id = ?", (A,)
    ) as cursor:
        wrapped = [bytes(r[0]) for r in await cursor.fetchall()]
    assert len(wrapped) == 2
    await world.keys.delete_tenant_keys(A)
    assert await world.keys.scrub_files()
    needles = {f"wrapped {i}": blob[-24:] for i, blob in enumerate(wrapped)}
    assert grep_dir(world.data, needles) == []
    assert await world.keys.current_key(B)
    # The connection's own setting is restored for its other users.
    async with world.control.execute("PRAGMA secure_delete") as cursor:
        assert await cursor.fetchone() == (0,)


async def test_cache_is_dropped_on_rotation(world: World) -> None:
    await world.add_tenant(A)
    first = await world.keys.current_key(A)
    assert await world.keys.current_key(A) is first  # cached
    second = await world.keys.rotate_tenant_key(A, now=2.0)
    assert (await world.keys.current_key(A)).version == second.version == 2


async def test_rolled_back_rotation_leaves_no_stale_key(world: World) -> None:
    await world.add_tenant(A)
    await world.keys.current_key(A)
    await world.keys.rotate_tenant_key(A, now=2.0, commit=False)
    assert (await world.keys.current_key(A)).version == 2  # visible in the transaction
    await world.control.rollback()
    assert (await world.keys.current_key(A)).version == 1
    with pytest.raises(DataKeyError):
        await world.keys.get_key(A, 2)
