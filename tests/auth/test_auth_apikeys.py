"""API key format, checksum, hashing and state checks: pure, no event loop."""

from __future__ import annotations

import traceback

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.auth import apikeys
from server.auth.apikeys import KeyRecord
from server.auth.errors import AuthConfigError, AuthError, AuthFailure
from server.auth.principal import CredentialKind, KeyId, Plan, Scope, TenantId

PEPPER = b"p" * 32


def _issue(env: str = "live") -> tuple[KeyId, str, bytes]:
    return apikeys.issue(env, PEPPER)


def _refused(token: str | None, reason: AuthFailure, env: str = "live") -> AuthError:
    with pytest.raises(AuthError) as info:
        apikeys.parse_key(token, environment=env)
    err = info.value
    assert err.reason is reason
    if token:
        text = str(err) + repr(err) + "".join(traceback.format_exception(err))
        assert token not in text
        assert token[-49:-6] not in text  # the secret part
    return err


def test_issued_key_has_documented_shape() -> None:
    key_id, key, _ = _issue()
    assert key.startswith(f"ht_live_{key_id}_")
    assert len(key) == len("ht_live_") + 16 + 1 + 43 + 6
    parsed = apikeys.parse_key(key, environment="live")
    assert parsed.key_id == key_id
    assert len(parsed.secret) == 43


def test_secrets_are_fresh_and_carry_256_bits() -> None:
    secrets = {apikeys.new_secret() for _ in range(200)}
    assert len(secrets) == 200
    assert 62**apikeys.SECRET_LENGTH >= 2**256
    assert all(len(s) == 43 for s in secrets)


def test_missing_credential_refused() -> None:
    _refused(None, AuthFailure.MISSING)
    _refused("", AuthFailure.MISSING)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda k: "xx" + k[2:],  # wrong product prefix
        lambda k: k.replace("ht_live_", "ht_prod_"),  # unknown environment
        lambda k: k.replace("ht_live_", "ht_live"),  # separator lost
        lambda k: k[:-1],  # truncated
        lambda k: k + "A",  # extended
        lambda k: k + "\n",
        lambda k: k.upper(),
        lambda k: "x" * 10_000,
    ],
)
def test_malformed_keys_refused(mangle: object) -> None:
    _, key, _ = _issue()
    assert callable(mangle)
    _refused(mangle(key), AuthFailure.MALFORMED)


def test_mistyped_key_fails_checksum_before_any_lookup() -> None:
    _, key, _ = _issue()
    i = len(key) - 20
    typo = key[:i] + ("a" if key[i] != "a" else "b") + key[i + 1 :]
    err = _refused(typo, AuthFailure.BAD_CHECKSUM)
    assert err.credential_id is None  # nothing from an unchecked key reaches the audit


@given(position=st.integers(min_value=8, max_value=8 + 16 + 1 + 43 - 1), data=st.data())
def test_any_single_substitution_is_caught(position: int, data: st.DataObject) -> None:
    key = apikeys.format_key("live", KeyId("abcdefghij012345"), "Z" * 43)
    if key[position] == "_":
        return
    pool = "abcdefghijklmnopqrstuvwxyz0123456789" if position < 24 else apikeys.BASE62
    replacement = data.draw(st.sampled_from([c for c in pool if c != key[position]]))
    typo = key[:position] + replacement + key[position + 1 :]
    with pytest.raises(AuthError) as info:
        apikeys.parse_key(typo, environment="live")
    assert info.value.reason is AuthFailure.BAD_CHECKSUM


def test_test_key_refused_by_live_server_and_reverse() -> None:
    _, test_key, _ = _issue("test")
    _, live_key, _ = _issue("live")
    _refused(test_key, AuthFailure.WRONG_ENVIRONMENT, env="live")
    _refused(live_key, AuthFailure.WRONG_ENVIRONMENT, env="test")
    # Rewriting the prefix to match breaks the checksum instead.
    _refused(test_key.replace("ht_test_", "ht_live_"), AuthFailure.BAD_CHECKSUM, env="live")


def test_only_the_peppered_hash_matches() -> None:
    _, key, stored = _issue()
    secret = apikeys.parse_key(key, environment="live").secret
    assert stored != secret.encode()
    assert len(stored) == 32
    assert apikeys.secret_matches(PEPPER, secret, stored)
    assert not apikeys.secret_matches(b"q" * 32, secret, stored)
    assert not apikeys.secret_matches(PEPPER, apikeys.new_secret(), stored)


def test_the_keyed_hasher_hashes_as_hash_secret() -> None:
    _, key, stored = _issue()
    secret = apikeys.parse_key(key, environment="live").secret
    hasher = apikeys.SecretHasher(PEPPER)
    for _ in range(3):  # each call starts from the keyed state, not the last message
        assert hasher.hash(secret) == stored == apikeys.hash_secret(PEPPER, secret)
    assert hasher.matches(secret, stored)
    assert not hasher.matches(apikeys.new_secret(), stored)
    assert not apikeys.SecretHasher(b"q" * 32).matches(secret, stored)
    assert "p" * 8 not in repr(hasher)
    with pytest.raises(AuthConfigError):
        apikeys.SecretHasher(b"short")


@given(st.text(alphabet=apikeys.BASE62, max_size=80))
def test_checksum_is_the_crc_in_six_base62_symbols(body: str) -> None:
    import zlib

    assert apikeys.checksum(body) == apikeys._base62(zlib.crc32(body.encode()), 6)


def test_short_pepper_and_unknown_environment_refused_at_config() -> None:
    with pytest.raises(AuthConfigError):
        apikeys.check_pepper(b"x" * 31)
    with pytest.raises(AuthConfigError):
        apikeys.check_environment("prod")


def _record(**changes: object) -> KeyRecord:
    base: dict[str, object] = {
        "id": KeyId("abcdefghij012345"),
        "tenant": TenantId("tenant0000000001"),
        "name": "ci",
        "environment": "live",
        "scopes": frozenset({Scope.TABLES_READ}),
        "tables": frozenset({"t1"}),
        "created_by": "test",
        "created_at": 100.0,
    }
    base.update(changes)
    return KeyRecord(**base)  # type: ignore[arg-type]


def test_revoked_and_expired_records_refused() -> None:
    with pytest.raises(AuthError) as info:
        apikeys.check_usable(_record(revoked_at=150.0), now=200.0)
    assert info.value.reason is AuthFailure.REVOKED
    with pytest.raises(AuthError) as info:
        apikeys.check_usable(_record(expires_at=200.0), now=200.0)
    assert info.value.reason is AuthFailure.EXPIRED
    apikeys.check_usable(_record(expires_at=200.0), now=199.9)


def test_principal_carries_scopes_tables_and_expiry() -> None:
    p = apikeys.principal_for(_record(expires_at=500.0), Plan.PRO)
    assert p.kind is CredentialKind.API_KEY
    assert p.credential_id == "abcdefghij012345"
    assert p.can(Scope.TABLES_READ) and not p.can(Scope.TABLES_WRITE)
    assert p.may_touch("t1") and not p.may_touch("t2")
    assert p.plan is Plan.PRO and p.expires_at == 500.0


def test_reprs_never_show_the_secret() -> None:
    key_id, key, _ = _issue()
    parsed = apikeys.parse_key(key, environment="live")
    issued = apikeys.IssuedKey(record=_record(id=key_id), secret=key)
    for text in (repr(parsed), repr(issued), str(issued)):
        assert parsed.secret not in text


def test_unknown_scope_refused() -> None:
    with pytest.raises(ValueError):
        apikeys.parse_scopes(["tables:read", "root"])
    with pytest.raises(ValueError):
        apikeys.parse_scopes([])
    assert apikeys.parse_scopes(["tables:read", Scope.AUDIT_READ]) == {
        Scope.TABLES_READ,
        Scope.AUDIT_READ,
    }
