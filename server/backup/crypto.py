"""Backup encryption: the pure core (no clock, no SQLite; streams are passed in).

How it works
------------
Every file of a backup is encrypted under its own fresh 256-bit *file key*. The file key is
wrapped (:func:`wrap_file_key`, the :mod:`server.secrets.envelope` format) by a key
encryption key:

* a tenant's files: that tenant's **data key** (the key tenant deletion crypto-shreds), so
  once the tenant is deleted no backup of it can be decrypted;
* the server's own files (control plane copy, pepper, signing key, certificates): the
  current **master key**.

The wrap's associated data binds the scope (tenant id, or ``""`` for the server's part),
the backup id and the file name, so a wrapped key moved to another tenant, another backup
or another file fails authentication.

A file is sealed as a sequence of chunks of :data:`CHUNK` plaintext bytes (the last one
shorter, possibly empty)::

    nonce (12 random bytes) || AES-256-GCM(file key, chunk, AD) (chunk + 16-byte tag)

    AD = b"hypertab/backup" || lp(scope) || lp(backup id) || lp(name) || u64 index || u8 last

The index stops chunks from being reordered or dropped, the ``last`` flag stops a file
from being truncated at a chunk boundary. Opening streams the plaintext out chunk by chunk
and raises :class:`TamperedBackup` at the first chunk that does not authenticate; callers
write to a temporary file and only keep it once the whole file opened.

The manifest is authenticated by an HMAC-SHA256 under a *manifest key* that is wrapped by
the master key like any file key (:func:`manifest_mac`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import struct
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from server.secrets.envelope import KEY_SIZE, NONCE_SIZE, TAG_SIZE, SymmetricKey, decrypt, encrypt
from server.secrets.errors import DecryptionError

from .errors import TamperedBackup

CHUNK = 1 << 20
"""Plaintext bytes per sealed chunk."""

SEALED_CHUNK = NONCE_SIZE + CHUNK + TAG_SIZE

FILE_KEY_PURPOSE = "backup-file-key"
SERVER_SCOPE = ""
"""The scope of the server's own files (a tenant id is never empty)."""

_AD_LABEL = b"hypertab/backup"


class Source(Protocol):
    """Where sealed or plain bytes are read from (a binary file)."""

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes; ``b""`` at the end."""
        ...


class Sink(Protocol):
    """Where bytes are written to (a binary file, a hashing writer)."""

    def write(self, data: bytes, /) -> object:
        """Write all of ``data``."""
        ...


def new_file_key() -> bytes:
    """Fresh random bytes for one file key."""
    return os.urandom(KEY_SIZE)


def _lp(value: str) -> bytes:
    raw = value.encode("utf-8")
    return struct.pack(">I", len(raw)) + raw


def chunk_ad(scope: str, backup_id: str, name: str, index: int, last: bool) -> bytes:
    """The associated data of one chunk (see the module docstring)."""
    return b"".join(
        (_AD_LABEL, _lp(scope), _lp(backup_id), _lp(name), struct.pack(">QB", index, last))
    )


def _binding(backup_id: str, name: str) -> str:
    return f"{backup_id}/{name}"


def wrap_file_key(
    kek: SymmetricKey, file_key: bytes, *, scope: str, backup_id: str, name: str
) -> bytes:
    """Encrypt ``file_key`` under ``kek``, bound to scope, backup and file name."""
    return encrypt(
        kek, file_key, tenant=scope, purpose=FILE_KEY_PURPOSE, name=_binding(backup_id, name)
    )


def unwrap_file_key(
    kek: SymmetricKey, wrapped: bytes, *, scope: str, backup_id: str, name: str
) -> bytes:
    """Decrypt a wrapped file key; :class:`TamperedBackup` unless every binding matches."""
    try:
        key = decrypt(
            kek, wrapped, tenant=scope, purpose=FILE_KEY_PURPOSE, name=_binding(backup_id, name)
        )
    except DecryptionError:
        raise TamperedBackup(f"the key of {name!r} does not authenticate") from None
    if len(key) != KEY_SIZE:
        raise TamperedBackup(f"the key of {name!r} has the wrong size")
    return key


def _read_full(src: Source, size: int) -> bytes:
    parts: list[bytes] = []
    remaining = size
    while remaining:
        block = src.read(remaining)
        if not block:
            break
        parts.append(block)
        remaining -= len(block)
    return b"".join(parts)


def seal_stream(
    file_key: bytes, src: Source, dst: Sink, *, scope: str, backup_id: str, name: str
) -> int:
    """Encrypt everything ``src`` holds into ``dst``; returns the plaintext size."""
    aead = AESGCM(file_key)
    index = 0
    total = 0
    chunk = _read_full(src, CHUNK)
    while True:
        following = _read_full(src, CHUNK) if len(chunk) == CHUNK else b""
        last = not following
        nonce = os.urandom(NONCE_SIZE)
        ad = chunk_ad(scope, backup_id, name, index, last)
        dst.write(nonce + aead.encrypt(nonce, chunk, ad))
        total += len(chunk)
        if last:
            return total
        chunk = following
        index += 1


def open_stream(
    file_key: bytes, src: Source, dst: Sink, *, scope: str, backup_id: str, name: str
) -> int:
    """Decrypt a sealed file from ``src`` into ``dst``; returns the plaintext size.

    :class:`TamperedBackup` if any chunk fails authentication, the file is truncated or
    has bytes after its last chunk. Plaintext already written to ``dst`` must then be
    discarded by the caller.
    """
    aead = AESGCM(file_key)
    index = 0
    total = 0
    sealed = _read_full(src, SEALED_CHUNK)
    while True:
        if len(sealed) < NONCE_SIZE + TAG_SIZE:
            raise TamperedBackup(f"{name!r} is truncated")
        following = _read_full(src, SEALED_CHUNK) if len(sealed) == SEALED_CHUNK else b""
        last = not following
        ad = chunk_ad(scope, backup_id, name, index, last)
        try:
            plain = aead.decrypt(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], ad)
        except InvalidTag:
            raise TamperedBackup(
                f"{name!r} failed authentication at chunk {index} (GCM tag): the backup was "
                "modified, truncated or is bound to another tenant or backup"
            ) from None
        dst.write(plain)
        total += len(plain)
        if last:
            return total
        sealed = following
        index += 1


def canonical(body: dict[str, Any]) -> bytes:
    """The bytes a manifest's MAC covers: sorted keys, no whitespace, UTF-8."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def manifest_mac(manifest_key: bytes, body: dict[str, Any]) -> str:
    """HMAC-SHA256 (hex) of the manifest ``body`` (everything but the ``mac`` field)."""
    return hmac.new(manifest_key, canonical(body), hashlib.sha256).hexdigest()


def mac_matches(manifest_key: bytes, body: dict[str, Any], mac: str) -> bool:
    """Whether ``mac`` is the MAC of ``body``, compared in constant time."""
    return hmac.compare_digest(manifest_mac(manifest_key, body), mac)
