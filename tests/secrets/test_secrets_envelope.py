"""The pure envelope core: binding, tamper detection, nonce freshness. No event loop."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.auth.principal import TenantId
from server.secrets.envelope import (
    FORMAT_V1,
    NONCE_SIZE,
    DataKey,
    Purpose,
    SymmetricKey,
    associated_data,
    decrypt,
    decrypt_secret,
    encrypt,
    encrypt_secret,
    key_id_of,
    new_data_key,
    new_key_material,
    parse,
    unwrap_data_key,
    wrap_data_key,
)
from server.secrets.errors import DecryptionError, SecretsError

T1 = TenantId("tenant-a")
T2 = TenantId("tenant-b")
VALUE = b"sk-live-0123456789abcdef"


@pytest.fixture
def dk1() -> DataKey:
    return new_data_key(T1, 1)


def test_round_trip(dk1: DataKey) -> None:
    blob = encrypt_secret(dk1, name="OPENAI_KEY", kind="ai_provider_key", value=VALUE)
    assert decrypt_secret(dk1, blob, name="OPENAI_KEY", kind="ai_provider_key") == VALUE
    assert VALUE not in blob


def test_format_names_key_and_version(dk1: DataKey) -> None:
    blob = encrypt_secret(dk1, name="A", kind="env_var", value=b"x")
    assert blob[0] == FORMAT_V1
    assert key_id_of(blob) == "dk1"
    env = parse(blob)
    assert len(env.nonce) == NONCE_SIZE
    assert len(blob) == 2 + len("dk1") + NONCE_SIZE + 1 + 16


def test_moved_to_other_tenant_fails(dk1: DataKey) -> None:
    blob = encrypt_secret(dk1, name="A", kind="env_var", value=VALUE)
    # Even with the very same key bytes, the tenant in the AD differs.
    same_bytes_other_tenant = DataKey(T2, 1, dk1.key)
    with pytest.raises(DecryptionError):
        decrypt_secret(same_bytes_other_tenant, blob, name="A", kind="env_var")


def test_moved_to_other_name_or_kind_fails(dk1: DataKey) -> None:
    blob = encrypt_secret(dk1, name="A", kind="env_var", value=VALUE)
    with pytest.raises(DecryptionError):
        decrypt_secret(dk1, blob, name="B", kind="env_var")
    with pytest.raises(DecryptionError):
        decrypt_secret(dk1, blob, name="A", kind="ai_provider_key")


def test_every_single_bit_flip_is_refused(dk1: DataKey) -> None:
    blob = encrypt_secret(dk1, name="A", kind="env_var", value=VALUE)
    for i in range(len(blob) * 8):
        tampered = bytearray(blob)
        tampered[i // 8] ^= 1 << (i % 8)
        with pytest.raises(DecryptionError):
            decrypt_secret(dk1, bytes(tampered), name="A", kind="env_var")


def test_every_truncation_is_refused(dk1: DataKey) -> None:
    blob = encrypt_secret(dk1, name="A", kind="env_var", value=VALUE)
    for n in range(len(blob)):
        with pytest.raises(DecryptionError):
            decrypt_secret(dk1, blob[:n], name="A", kind="env_var")
    with pytest.raises(DecryptionError):
        decrypt_secret(dk1, blob + b"\x00", name="A", kind="env_var")


def test_tampered_key_id_is_refused() -> None:
    material = new_key_material()
    k1 = SymmetricKey("mk1", material)
    k2 = SymmetricKey("mk2", material)  # same bytes, other id
    blob = encrypt(k1, VALUE, tenant=T1, purpose=Purpose.SECRET, name="A")
    relabelled = blob.replace(b"mk1", b"mk2", 1)
    assert key_id_of(relabelled) == "mk2"
    # The key id is in the AD: even the right key bytes under the new id do not open it.
    with pytest.raises(DecryptionError):
        decrypt(k2, relabelled, tenant=T1, purpose=Purpose.SECRET, name="A")
    # And a key that does not match the header is refused outright.
    with pytest.raises(DecryptionError):
        decrypt(k2, blob, tenant=T1, purpose=Purpose.SECRET, name="A")


def test_wrong_key_is_refused(dk1: DataKey) -> None:
    blob = encrypt_secret(dk1, name="A", kind="env_var", value=VALUE)
    with pytest.raises(DecryptionError):
        decrypt_secret(new_data_key(T1, 1), blob, name="A", kind="env_var")


def test_unknown_format_is_refused(dk1: DataKey) -> None:
    blob = bytearray(encrypt_secret(dk1, name="A", kind="env_var", value=VALUE))
    blob[0] = 2
    with pytest.raises(DecryptionError, match="format"):
        decrypt_secret(dk1, bytes(blob), name="A", kind="env_var")


def test_100k_encryptions_use_distinct_nonces(dk1: DataKey) -> None:
    nonces = {
        parse(encrypt_secret(dk1, name="A", kind="env_var", value=b"v")).nonce
        for _ in range(100_000)
    }
    assert len(nonces) == 100_000


def test_associated_data_is_injective() -> None:
    # Length prefixes: moving a character between fields changes the AD.
    a = associated_data("k", "ab", "c", "d")
    b = associated_data("k", "a", "bc", "d")
    assert a != b
    assert associated_data("k", "t", "p", "n") != associated_data("k2", "t", "p", "n")


def test_wrapped_data_key_is_bound_to_tenant_and_version() -> None:
    master = SymmetricKey("mk1", new_key_material())
    dk = new_data_key(T1, 3)
    wrapped = wrap_data_key(master, dk)
    assert unwrap_data_key(master, wrapped, tenant=T1, version=3).key == dk.key
    with pytest.raises(DecryptionError):
        unwrap_data_key(master, wrapped, tenant=T2, version=3)
    with pytest.raises(DecryptionError):
        unwrap_data_key(master, wrapped, tenant=T1, version=4)
    # A wrapped key is not a secret ciphertext and vice versa (purpose is bound).
    with pytest.raises(DecryptionError):
        decrypt(master, wrapped, tenant=T1, purpose=Purpose.SECRET, name="dk3")


def test_key_repr_never_shows_bytes() -> None:
    material = new_key_material()
    key = SymmetricKey("mk1", material)
    dk = new_data_key(T1, 1)
    for text in (repr(key), str(key), repr(dk), str(dk), f"{key}", f"{dk!r}"):
        assert "redacted" in text
        assert material.hex() not in text
        assert dk.key.material.hex() not in text
        assert repr(material) not in text
        assert repr(dk.key.material) not in text
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(key)


def test_key_errors_do_not_echo_material() -> None:
    bad = b"\x01" * 31
    with pytest.raises(SecretsError) as info:
        SymmetricKey("mk1", bad)
    assert bad.hex() not in str(info.value)
    assert repr(bad) not in str(info.value)


@settings(max_examples=200, deadline=None)
@given(
    value=st.binary(max_size=512),
    name=st.text(min_size=1, max_size=40),
    other_name=st.text(min_size=1, max_size=40),
    position=st.integers(min_value=0),
    bit=st.integers(min_value=0, max_value=7),
)
def test_property_bindings_and_flips(
    value: bytes, name: str, other_name: str, position: int, bit: int
) -> None:
    key = SymmetricKey("dk1", bytes(range(32)))
    blob = encrypt(key, value, tenant=T1, purpose="secret/env_var", name=name)
    assert decrypt(key, blob, tenant=T1, purpose="secret/env_var", name=name) == value
    if other_name != name:
        with pytest.raises(DecryptionError):
            decrypt(key, blob, tenant=T1, purpose="secret/env_var", name=other_name)
    tampered = bytearray(blob)
    tampered[position % len(blob)] ^= 1 << bit
    with pytest.raises(DecryptionError):
        decrypt(key, bytes(tampered), tenant=T1, purpose="secret/env_var", name=name)
