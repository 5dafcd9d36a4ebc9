"""The pure core of backup encryption: chunked AES-256-GCM and bound file keys."""

from __future__ import annotations

import io
import os

import pytest

from server.backup.crypto import (
    CHUNK,
    SEALED_CHUNK,
    new_file_key,
    open_stream,
    seal_stream,
    unwrap_file_key,
    wrap_file_key,
)
from server.backup.errors import TamperedBackup
from server.secrets.envelope import SymmetricKey, new_key_material

BIND = {"scope": "tenant1abc", "backup_id": "bk_1", "name": "tenants/tenant1abc.db"}


def _seal(data: bytes, key: bytes) -> bytes:
    out = io.BytesIO()
    assert seal_stream(key, io.BytesIO(data), out, **BIND) == len(data)
    return out.getvalue()


def _open(sealed: bytes, key: bytes, **bind: str) -> bytes:
    out = io.BytesIO()
    open_stream(key, io.BytesIO(sealed), out, **{**BIND, **bind})
    return out.getvalue()


@pytest.mark.parametrize("size", [0, 1, CHUNK, CHUNK + 1, 2 * CHUNK + 7])
def test_round_trip_at_chunk_edges(size: int) -> None:
    key = new_file_key()
    data = os.urandom(size)
    sealed = _seal(data, key)
    assert size < 64 or data[:64] not in sealed
    assert _open(sealed, key) == data


def test_any_change_fails_the_gcm_tag() -> None:
    key = new_file_key()
    data = os.urandom(2 * CHUNK + 10)
    sealed = _seal(data, key)
    first, second = sealed[:SEALED_CHUNK], sealed[SEALED_CHUNK : 2 * SEALED_CHUNK]
    flipped = bytearray(sealed)
    flipped[SEALED_CHUNK + 500] ^= 1
    cases = {
        "flipped bit": bytes(flipped),
        "truncated at a chunk boundary": sealed[: 2 * SEALED_CHUNK],
        "truncated inside a chunk": sealed[:-1],
        "chunks reordered": second + first + sealed[2 * SEALED_CHUNK :],
        "bytes appended": sealed + b"\0" * 40,
    }
    for case, tampered in cases.items():
        with pytest.raises(TamperedBackup, match=r"GCM tag|truncated"):
            _open(tampered, key)
        assert case
    for other in ({"scope": "tenant2xyz"}, {"backup_id": "bk_2"}, {"name": "tenants/x.db"}):
        with pytest.raises(TamperedBackup, match="GCM tag"):
            _open(sealed, key, **other)
    with pytest.raises(TamperedBackup):
        _open(sealed, new_file_key())


def test_file_keys_are_bound_to_scope_backup_and_name() -> None:
    kek = SymmetricKey("dk1", new_key_material())
    file_key = new_file_key()
    wrapped = wrap_file_key(kek, file_key, **BIND)
    assert unwrap_file_key(kek, wrapped, **BIND) == file_key
    assert file_key not in wrapped
    for other in ({"scope": "tenant2xyz"}, {"backup_id": "bk_2"}, {"name": "server/control.db"}):
        with pytest.raises(TamperedBackup):
            unwrap_file_key(kek, wrapped, **{**BIND, **other})
    with pytest.raises(TamperedBackup):
        unwrap_file_key(SymmetricKey("dk1", new_key_material()), wrapped, **BIND)
