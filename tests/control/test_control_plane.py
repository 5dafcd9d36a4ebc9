"""ControlPlane on real SQLite files: tenants, keys, authentication, revocation."""

from __future__ import annotations

import sqlite3
import traceback
from collections.abc import AsyncIterator
from pathlib import Path

import jwt as pyjwt
import pytest

from server.auth import apikeys
from server.auth.errors import AuthConfigError
from server.auth.ids import is_tenant_id
from server.auth.jwt import JwtConfig, JwtVerifier
from server.auth.principal import ALL_SCOPES, CredentialKind, KeyId, Plan, Scope, TenantId
from server.auth.revocation import MemoryRevocationBus, RevocationEvent, RevocationKind
from server.control.errors import InvalidInput, KeyNotRotatable, UnknownKey, UnknownTenant
from server.control.plane import LAST_USED_INTERVAL, AuthError, AuthFailure, ControlPlane

PEPPER = b"pepper-" + b"x" * 32
JWT_SECRET = b"j" * 40
NOW = 1_800_000_000.0


class Recorder:
    def __init__(self) -> None:
        self.events: list[RevocationEvent] = []

    def __call__(self, event: RevocationEvent) -> None:
        self.events.append(event)


@pytest.fixture
async def bus() -> MemoryRevocationBus:
    return MemoryRevocationBus()


@pytest.fixture
async def plane(tmp_path: Path, bus: MemoryRevocationBus) -> AsyncIterator[ControlPlane]:
    p = await ControlPlane.open(
        tmp_path,
        pepper=PEPPER,
        bus=bus,
        jwt=JwtVerifier(JwtConfig(secret=JWT_SECRET)),
    )
    yield p
    await p.close()


async def refused(plane: ControlPlane, token: str | None, reason: AuthFailure) -> AuthError:
    with pytest.raises(AuthError) as info:
        await plane.authenticate(token, now=NOW)
    err = info.value
    assert err.reason is reason, err.reason
    if token:
        text = str(err) + repr(err) + "".join(traceback.format_exception(err))
        assert token not in text
    return err


def user_token(tenant: str, **changes: object) -> str:
    claims: dict[str, object] = {
        "sub": "u1",
        "aud": "authenticated",
        "iat": int(NOW),
        "exp": int(NOW) + 600,
        "app_metadata": {"tenant": tenant},
    }
    claims.update(changes)
    return pyjwt.encode(claims, JWT_SECRET, algorithm="HS256")


# -- tenants -------------------------------------------------------------------------------


async def test_create_tenant_gives_working_admin_key(plane: ControlPlane) -> None:
    tenant, admin = await plane.create_tenant("Acme Inc", Plan.PRO, now=NOW)
    assert is_tenant_id(tenant.id) and len(tenant.id) == 16
    assert (tenant.name, tenant.plan, tenant.created_at, tenant.deleted_at) == (
        "Acme Inc",
        Plan.PRO,
        NOW,
        None,
    )
    principal = await plane.authenticate_api_key(admin.secret, now=NOW)
    assert principal.tenant == tenant.id and principal.scopes == ALL_SCOPES
    assert principal.plan is Plan.PRO and principal.kind is CredentialKind.API_KEY
    assert principal.credential_id == admin.record.id
    assert await plane.get_tenant(tenant.id) == tenant
    assert await plane.list_tenants() == [tenant]
    assert await plane.get_tenant(TenantId("nosuchtenant0000")) is None


@pytest.mark.parametrize("name", ["", "   ", "x" * 101, "evil\x00name", "bidi\u202eflip", 42])
async def test_bad_tenant_names_refused(plane: ControlPlane, name: object) -> None:
    with pytest.raises(InvalidInput):
        await plane.create_tenant(name, now=NOW)  # type: ignore[arg-type]
    assert await plane.list_tenants() == []


async def test_tenant_ids_are_random_not_derived_from_names(plane: ControlPlane) -> None:
    a, _ = await plane.create_tenant("../../etc/passwd", now=NOW)
    b, _ = await plane.create_tenant("../../etc/passwd", now=NOW)
    assert a.id != b.id and "/" not in a.id and "." not in a.id


async def test_data_survives_reopen(tmp_path: Path) -> None:
    first = await ControlPlane.open(tmp_path, pepper=PEPPER, watch=False)
    tenant, admin = await first.create_tenant("Acme", now=NOW)
    await first.close()
    await first.close()  # idempotent
    second = await ControlPlane.open(tmp_path, pepper=PEPPER, watch=False)
    try:
        assert (await second.authenticate_api_key(admin.secret, now=NOW)).tenant == tenant.id
        assert second.path == tmp_path / "control.db"
        journal = await (await second.db.conn.execute("PRAGMA journal_mode")).fetchone()
        assert journal is not None and journal[0] == "wal"
    finally:
        await second.close()


async def test_wrong_pepper_cannot_authenticate(tmp_path: Path) -> None:
    first = await ControlPlane.open(tmp_path, pepper=PEPPER, watch=False)
    _, admin = await first.create_tenant("Acme", now=NOW)
    await first.close()
    other = await ControlPlane.open(tmp_path, pepper=b"o" * 32, watch=False)
    try:
        await refused(other, admin.secret, AuthFailure.UNKNOWN)
    finally:
        await other.close()


async def test_bad_config_refused(tmp_path: Path) -> None:
    with pytest.raises(AuthConfigError):
        await ControlPlane.open(tmp_path, pepper=b"short")
    with pytest.raises(AuthConfigError):
        await ControlPlane.open(tmp_path, pepper=PEPPER, environment="prod")


# -- keys ------------------------------------------------------------------------------------


async def test_create_list_key_round_trip(plane: ControlPlane) -> None:
    tenant, admin = await plane.create_tenant("Acme", now=NOW)
    issued = await plane.create_key(
        tenant.id,
        "reader",
        ["tables:read"],
        tables=["t_1", "t_2"],
        expires_at=NOW + 3600,
        created_by=f"key:{admin.record.id}",
        now=NOW + 1,
    )
    keys = await plane.list_keys(tenant.id)
    assert [k.id for k in keys] == [admin.record.id, issued.record.id]
    assert keys[1] == issued.record
    assert not hasattr(keys[1], "secret_hash")
    assert issued.secret not in repr(keys) and issued.secret not in repr(issued)
    p = await plane.authenticate_api_key(issued.secret, now=NOW + 2)
    assert p.scopes == {Scope.TABLES_READ}
    assert p.tables == {"t_1", "t_2"} and p.may_touch("t_1") and not p.may_touch("t_3")
    assert p.expires_at == NOW + 3600


async def test_create_key_validation(plane: ControlPlane) -> None:
    tenant, _ = await plane.create_tenant("Acme", now=NOW)
    with pytest.raises(InvalidInput):
        await plane.create_key(tenant.id, "k", ["root"], created_by="t", now=NOW)
    with pytest.raises(InvalidInput):
        await plane.create_key(tenant.id, "k", [], created_by="t", now=NOW)
    with pytest.raises(InvalidInput):
        await plane.create_key(
            tenant.id, "k", [Scope.TABLES_READ], expires_at=NOW, created_by="t", now=NOW
        )
    with pytest.raises(InvalidInput):
        await plane.create_key(
            tenant.id, "k", [Scope.TABLES_READ], tables="t_1", created_by="t", now=NOW
        )
    with pytest.raises(UnknownTenant):
        await plane.create_key(
            TenantId("nosuchtenant0000"), "k", [Scope.TABLES_READ], created_by="t", now=NOW
        )


async def test_refusals_before_the_database(plane: ControlPlane) -> None:
    _, admin = await plane.create_tenant("Acme", now=NOW)
    key = admin.secret
    await refused(plane, None, AuthFailure.MISSING)
    await refused(plane, "", AuthFailure.MISSING)
    await refused(
        plane, key[:-3] + ("aaa" if key[-3:] != "aaa" else "bbb"), AuthFailure.BAD_CHECKSUM
    )
    await refused(plane, "ht_prod_" + key[8:], AuthFailure.MALFORMED)
    test_key = apikeys.format_key("test", admin.record.id, key[25:68])
    await refused(plane, test_key, AuthFailure.WRONG_ENVIRONMENT)


async def test_unknown_key_and_wrong_secret_refused_alike(plane: ControlPlane) -> None:
    _, admin = await plane.create_tenant("Acme", now=NOW)
    _, unknown, _ = apikeys.issue("live", PEPPER)
    await refused(plane, unknown, AuthFailure.UNKNOWN)
    forged = apikeys.format_key("live", admin.record.id, apikeys.new_secret())
    err = await refused(plane, forged, AuthFailure.UNKNOWN)
    assert err.credential_id == admin.record.id  # for the audit log; not a secret


async def test_revoke_refuses_key_and_publishes(
    plane: ControlPlane, bus: MemoryRevocationBus
) -> None:
    tenant, admin = await plane.create_tenant("Acme", now=NOW)
    events = Recorder()
    await bus.subscribe(events)
    record = await plane.revoke_key(admin.record.id, now=NOW + 5)
    assert record.revoked_at == NOW + 5
    await refused(plane, admin.secret, AuthFailure.REVOKED)
    assert events.events == [
        RevocationEvent(
            kind=RevocationKind.CREDENTIAL,
            tenant=tenant.id,
            credential_id=admin.record.id,
            reason="revoked",
            at=NOW + 5,
        )
    ]
    again = await plane.revoke_key(admin.record.id, now=NOW + 9)
    assert again.revoked_at == NOW + 5  # idempotent: the first revocation time stays
    with pytest.raises(UnknownKey):
        await plane.revoke_key(KeyId("nosuchkey0000000"), now=NOW)


async def test_rotate_gives_new_working_key_and_kills_old(
    plane: ControlPlane, bus: MemoryRevocationBus
) -> None:
    tenant, admin = await plane.create_tenant("Acme", now=NOW)
    old = await plane.create_key(
        tenant.id, "ci", ["tables:read"], tables=["t_9"], created_by="t", now=NOW
    )
    events = Recorder()
    await bus.subscribe(events)
    new = await plane.rotate_key(old.record.id, now=NOW + 10)
    assert new.secret != old.secret and new.record.id != old.record.id
    p = await plane.authenticate_api_key(new.secret, now=NOW + 11)
    assert p.scopes == {Scope.TABLES_READ} and p.tables == {"t_9"} and p.tenant == tenant.id
    await refused(plane, old.secret, AuthFailure.REVOKED)
    stored_old = await plane.get_key(old.record.id)
    assert stored_old is not None and stored_old.replaced_by == new.record.id
    assert [(e.credential_id, e.reason) for e in events.events] == [(old.record.id, "rotated")]
    with pytest.raises(KeyNotRotatable):
        await plane.rotate_key(old.record.id, now=NOW + 12)
    assert admin.record.id in {k.id for k in await plane.list_keys(tenant.id)}


async def test_expired_key_refused(plane: ControlPlane) -> None:
    tenant, _ = await plane.create_tenant("Acme", now=NOW)
    key = await plane.create_key(
        tenant.id, "tmp", ["tables:read"], expires_at=NOW + 60, created_by="t", now=NOW
    )
    assert await plane.authenticate_api_key(key.secret, now=NOW + 59)
    with pytest.raises(AuthError) as info:
        await plane.authenticate_api_key(key.secret, now=NOW + 60)
    assert info.value.reason is AuthFailure.EXPIRED
    with pytest.raises(KeyNotRotatable):
        await plane.rotate_key(key.record.id, now=NOW + 61)


def _database_bytes(data_dir: Path) -> bytes:
    """Every byte of control.db and its WAL/SHM side files."""
    return b"".join(p.read_bytes() for p in data_dir.iterdir() if p.name.startswith("control.db"))


async def test_only_the_hash_is_stored(tmp_path: Path) -> None:
    plane = await ControlPlane.open(tmp_path, pepper=PEPPER, watch=False)
    tenant, admin = await plane.create_tenant("Acme", now=NOW)
    extra = await plane.create_key(tenant.id, "k", ["tables:read"], created_by="t", now=NOW)
    await plane.close()
    raw = _database_bytes(tmp_path)
    for issued in (admin, extra):
        secret_part = apikeys.parse_key(issued.secret, environment="live").secret
        assert issued.secret.encode() not in raw
        assert secret_part.encode() not in raw
        assert issued.record.id.encode() in raw  # the id is stored, as a lookup key
    assert PEPPER not in raw
    with sqlite3.connect(tmp_path / "control.db") as db:
        (stored,) = db.execute(
            "SELECT secret_hash FROM api_keys WHERE id = ?", (admin.record.id,)
        ).fetchone()
    secret_part = apikeys.parse_key(admin.secret, environment="live").secret
    assert stored == apikeys.hash_secret(PEPPER, secret_part)


async def test_last_used_is_throttled(plane: ControlPlane) -> None:
    _, admin = await plane.create_tenant("Acme", now=NOW)
    key_id = admin.record.id

    async def last_used() -> float | None:
        await plane.drain()
        record = await plane.get_key(key_id)
        assert record is not None
        return record.last_used_at

    assert await last_used() is None
    await plane.authenticate_api_key(admin.secret, now=NOW)
    assert await last_used() == NOW
    for step in range(1, 20):
        await plane.authenticate_api_key(admin.secret, now=NOW + step)
    assert await last_used() == NOW  # no write inside the interval
    later = NOW + LAST_USED_INTERVAL + 1
    await plane.authenticate_api_key(admin.secret, now=later)
    assert await last_used() == later


# -- tenant deletion, JWT, liveness -----------------------------------------------------------


async def test_deleted_tenant_refuses_keys_and_tokens(
    plane: ControlPlane, bus: MemoryRevocationBus
) -> None:
    tenant, admin = await plane.create_tenant("Acme", now=NOW)
    token = user_token(tenant.id)
    p = await plane.authenticate(token, now=NOW)
    assert p.kind is CredentialKind.JWT and p.credential_id == f"jwt:{tenant.id}:u1"
    events = Recorder()
    await bus.subscribe(events)
    deleted = await plane.delete_tenant(tenant.id, now=NOW + 1)
    assert deleted.deleted_at == NOW + 1
    assert [(e.kind, e.tenant) for e in events.events] == [(RevocationKind.TENANT, tenant.id)]
    await refused(plane, admin.secret, AuthFailure.REVOKED)
    await refused(plane, token, AuthFailure.TENANT_DELETED)
    assert await plane.list_tenants() == []
    with pytest.raises(UnknownTenant):
        await plane.create_key(tenant.id, "k", ["tables:read"], created_by="t", now=NOW + 2)


async def test_token_for_unknown_tenant_refused(plane: ControlPlane) -> None:
    await refused(plane, user_token("nosuchtenant0000"), AuthFailure.UNKNOWN_TENANT)


async def test_jwt_failures_surface_through_the_plane(plane: ControlPlane) -> None:
    tenant, _ = await plane.create_tenant("Acme", now=NOW)
    await refused(plane, user_token(tenant.id, role="anon"), AuthFailure.FORBIDDEN_ROLE)
    await refused(plane, user_token(tenant.id, aud="x"), AuthFailure.BAD_AUDIENCE)
    bad = pyjwt.encode({"sub": "u1"}, b"w" * 40, algorithm="HS256")
    await refused(plane, bad, AuthFailure.BAD_SIGNATURE)


async def test_jwt_unsupported_without_verifier(tmp_path: Path) -> None:
    plane = await ControlPlane.open(tmp_path, pepper=PEPPER, watch=False)
    try:
        await refused(plane, user_token("tenant0000000001"), AuthFailure.UNSUPPORTED)
    finally:
        await plane.close()


async def test_credential_liveness_for_periodic_recheck(plane: ControlPlane) -> None:
    tenant, admin = await plane.create_tenant("Acme", now=NOW)
    other, _ = await plane.create_tenant("Other", now=NOW)
    tmp = await plane.create_key(
        tenant.id, "tmp", ["tables:read"], expires_at=NOW + 60, created_by="t", now=NOW
    )
    jwt_id = f"jwt:{tenant.id}:u1"
    other_jwt = f"jwt:{other.id}:u1"
    assert await plane.credential_is_live(admin.record.id, now=NOW)
    assert await plane.credential_is_live(jwt_id, now=NOW)
    assert not await plane.credential_is_live(tmp.record.id, now=NOW + 60)
    assert not await plane.credential_is_live("garbage", now=NOW)
    assert not await plane.credential_is_live("jwt:nosuchtenant0000:u1", now=NOW)
    await plane.revoke_key(admin.record.id, now=NOW + 1)
    assert not await plane.credential_is_live(admin.record.id, now=NOW + 1)
    await plane.delete_tenant(tenant.id, now=NOW + 2)
    dead = await plane.dead_credentials(
        [admin.record.id, tmp.record.id, jwt_id, other_jwt], now=NOW + 3
    )
    assert dead == {admin.record.id, tmp.record.id, jwt_id}


async def test_set_plan(plane: ControlPlane) -> None:
    tenant, admin = await plane.create_tenant("Acme", now=NOW)
    assert (await plane.set_plan(tenant.id, Plan.ENTERPRISE)).plan is Plan.ENTERPRISE
    assert (await plane.authenticate(admin.secret, now=NOW)).plan is Plan.ENTERPRISE


async def test_other_modules_tables_are_left_alone(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "control.db") as db:
        db.execute("CREATE TABLE _ht_feature_table (id INTEGER PRIMARY KEY, x TEXT)")
        db.execute("INSERT INTO _ht_feature_table (x) VALUES ('kept')")
    plane = await ControlPlane.open(tmp_path, pepper=PEPPER, watch=False)
    try:
        tenant, _ = await plane.create_tenant("Acme", now=NOW)
        async with plane.transaction() as conn:
            await conn.execute("INSERT INTO _ht_feature_table (x) VALUES (?)", (tenant.id,))
    finally:
        await plane.close()
    with sqlite3.connect(tmp_path / "control.db") as db:
        rows = db.execute("SELECT x FROM _ht_feature_table ORDER BY id").fetchall()
    assert rows == [("kept",), (tenant.id,)]
