"""Handshake reads cached between handshakes: every change to control.db is seen at once.

``plane`` is the server's control plane; ``cli`` is a second ``ControlPlane`` on the same
``control.db`` (its own connection, no watcher, nothing published to ``plane``'s bus), as
``hypertab key revoke`` in another process is. Each test first authenticates through
``plane`` so the key (or tenant) is cached, changes it through ``cli`` or ``plane``, and
checks the very next authentication - no poll interval, no event.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import jwt as pyjwt
import pytest

from server.auth.jwt import JwtConfig, JwtVerifier
from server.auth.principal import Plan, Scope
from server.control.plane import AuthError, AuthFailure, ControlPlane

PEPPER = b"pepper-" + b"k" * 32
JWT_SECRET = b"s" * 40
NOW = 1_800_000_000.0


@pytest.fixture
async def plane(tmp_path: Path) -> AsyncIterator[ControlPlane]:
    p = await ControlPlane.open(
        tmp_path, pepper=PEPPER, jwt=JwtVerifier(JwtConfig(secret=JWT_SECRET)), watch=False
    )
    yield p
    await p.close()


@pytest.fixture
async def cli(tmp_path: Path, plane: ControlPlane) -> AsyncIterator[ControlPlane]:
    p = await ControlPlane.open(tmp_path, pepper=PEPPER, watch=False)
    yield p
    await p.close()


async def reason(plane: ControlPlane, token: str, *, now: float = NOW) -> AuthFailure:
    with pytest.raises(AuthError) as info:
        await plane.authenticate(token, now=now)
    return info.value.reason


async def test_key_revoked_by_another_connection_is_refused_at_the_next_handshake(
    plane: ControlPlane, cli: ControlPlane
) -> None:
    tenant, admin = await plane.create_tenant("acme", now=NOW)
    issued = await plane.create_key(tenant.id, "ci", [Scope.TABLES_READ], created_by="t", now=NOW)
    for _ in range(3):  # cached after the first
        principal = await plane.authenticate(issued.secret, now=NOW)
        assert principal.credential_id == issued.record.id
    await cli.revoke_key(issued.record.id, now=NOW)
    assert await reason(plane, issued.secret) is AuthFailure.REVOKED
    # the other key of the tenant still works (read again after the change)
    assert (await plane.authenticate(admin.secret, now=NOW)).tenant == tenant.id


async def test_key_revoked_in_process_is_refused_at_the_next_handshake(
    plane: ControlPlane,
) -> None:
    _, admin = await plane.create_tenant("acme", now=NOW)
    await plane.authenticate(admin.secret, now=NOW)
    await plane.revoke_key(admin.record.id, now=NOW)
    assert await reason(plane, admin.secret) is AuthFailure.REVOKED


async def test_narrowed_grants_and_plan_change_apply_to_the_next_handshake(
    plane: ControlPlane, cli: ControlPlane
) -> None:
    tenant, _ = await plane.create_tenant("acme", Plan.FREE, now=NOW)
    issued = await plane.create_key(
        tenant.id, "rw", [Scope.TABLES_READ, Scope.TABLES_WRITE], created_by="t", now=NOW
    )
    before = await plane.authenticate(issued.secret, now=NOW)
    assert Scope.TABLES_WRITE in before.scopes and before.plan is Plan.FREE
    await cli.update_key_scopes(issued.record.id, [Scope.TABLES_READ], now=NOW)
    await cli.set_plan(tenant.id, Plan.PRO)
    after = await plane.authenticate(issued.secret, now=NOW)
    assert after.scopes == frozenset({Scope.TABLES_READ})
    assert after.plan is Plan.PRO


async def test_cached_key_still_checks_the_secret_and_the_clock(plane: ControlPlane) -> None:
    tenant, _ = await plane.create_tenant("acme", now=NOW)
    issued = await plane.create_key(
        tenant.id, "short", [Scope.TABLES_READ], created_by="t", now=NOW, expires_at=NOW + 60
    )
    await plane.authenticate(issued.secret, now=NOW)
    # same key id, another secret (valid checksum): refused like an unknown key
    from server.auth import apikeys

    key_id = issued.record.id
    forged = apikeys.format_key("live", key_id, apikeys.new_secret())
    assert await reason(plane, forged) is AuthFailure.UNKNOWN
    assert (await plane.authenticate(issued.secret, now=NOW + 59)).credential_id == key_id
    assert await reason(plane, issued.secret, now=NOW + 60) is AuthFailure.EXPIRED


async def test_a_key_known_by_its_digest_admits_that_key_alone(plane: ControlPlane) -> None:
    from server.auth import apikeys

    tenant, _ = await plane.create_tenant("acme", now=NOW)
    issued = await plane.create_key(tenant.id, "ci", [Scope.TABLES_READ], created_by="t", now=NOW)
    for _ in range(3):  # verified, then known by its SHA-256 while control.db holds
        assert (await plane.authenticate(issued.secret, now=NOW)).credential_id
    key_id = issued.record.id
    forged = apikeys.format_key("live", key_id, apikeys.new_secret())
    assert await reason(plane, forged) is AuthFailure.UNKNOWN
    assert await reason(plane, issued.secret.replace("ht_live_", "ht_test_")) in (
        AuthFailure.BAD_CHECKSUM,
        AuthFailure.WRONG_ENVIRONMENT,
    )
    assert await reason(plane, issued.secret + "x") is AuthFailure.MALFORMED
    principal = await plane.authenticate(issued.secret, now=NOW)
    assert principal is await plane.authenticate(issued.secret, now=NOW)  # one, shared


async def test_deleted_tenant_refuses_cached_key_and_jwt(
    plane: ControlPlane, cli: ControlPlane
) -> None:
    tenant, admin = await plane.create_tenant("acme", now=NOW)
    token = pyjwt.encode(
        {
            "sub": "u1",
            "aud": "authenticated",
            "iat": int(NOW),
            "exp": int(NOW) + 600,
            "app_metadata": {"tenant": tenant.id},
        },
        JWT_SECRET,
        algorithm="HS256",
    )
    await plane.authenticate(admin.secret, now=NOW)
    assert (await plane.authenticate(token, now=NOW)).tenant == tenant.id
    await cli.delete_tenant(tenant.id, now=NOW)
    assert await reason(plane, admin.secret) in (AuthFailure.REVOKED, AuthFailure.TENANT_DELETED)
    assert await reason(plane, token) is AuthFailure.TENANT_DELETED


async def test_change_made_with_plain_sqlite_is_seen(plane: ControlPlane, tmp_path: Path) -> None:
    # Whatever writes the file - even a tool that knows nothing of the hub - is seen.
    _, admin = await plane.create_tenant("acme", now=NOW)
    await plane.authenticate(admin.secret, now=NOW)
    with sqlite3.connect(tmp_path / "control.db") as db:
        db.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", (NOW, admin.record.id))
    assert await reason(plane, admin.secret) is AuthFailure.REVOKED


async def test_jwt_cutoff_from_another_connection_refuses_the_next_handshake(
    plane: ControlPlane, cli: ControlPlane
) -> None:
    tenant, _ = await plane.create_tenant("acme", now=NOW)
    token = pyjwt.encode(
        {
            "sub": "u1",
            "aud": "authenticated",
            "iat": int(NOW),
            "exp": int(NOW) + 600,
            "app_metadata": {"tenant": tenant.id},
        },
        JWT_SECRET,
        algorithm="HS256",
    )
    for _ in range(2):  # tenant and (absent) cutoff cached after the first
        assert (await plane.authenticate(token, now=NOW)).tenant == tenant.id
    await cli.revoke_tenant_keys(tenant.id, now=NOW + 1, actor="t", reason="t", reissue_by=None)
    assert await reason(plane, token) is AuthFailure.REVOKED
