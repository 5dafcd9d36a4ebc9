"""AES-256-GCM envelope encryption: the pure core of secrets at rest.

How it works
------------
Two layers of 32-byte AES-256-GCM keys (an "envelope"):

* **master keys** come from the environment or a key file (:mod:`.keyring`); the last one is
  *current*. They only ever encrypt ("wrap") data keys.
* **data keys**, one current key per tenant plus retired versions, are random and are stored
  wrapped by a master key in the control database. They encrypt the tenant's secrets.

Every encryption uses a fresh random 96-bit nonce from :func:`os.urandom` and produces one
self-describing blob::

    0      1         2        2+L      14+L
    +------+---------+--------+--------+---------------------------+
    | 0x01 | L (u8)  | key id | nonce  | ciphertext || 16-byte tag |
    +------+---------+--------+--------+---------------------------+

The key id (ASCII, 1..64 bytes) says which key to decrypt with, so rotation needs no side
table. The associated data (AD) binds the blob to where it may be used::

    b"hypertab/secrets" || u8 format || lp(key id) || lp(tenant) || lp(purpose) || lp(name)

where ``lp(x)`` is a 4-byte big-endian length then the UTF-8 bytes; the lengths make the
encoding injective (no two field tuples give the same bytes). AD is not stored: the reader
rebuilds it from what it *expects* (its tenant, the secret name it asked for) plus the key
id read from the header. So a blob copied to another tenant or another name, a header whose
key id was edited, a flipped bit or a truncated blob all fail GCM authentication and raise
:class:`DecryptionError`: AES-GCM verifies the tag before it releases any plaintext.

Nothing here does I/O, reads a clock or logs; it needs only randomness.
"""

from __future__ import annotations

import enum
import hmac
import os
import re
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from server.auth.principal import TenantId
from server.secrets.errors import DecryptionError, SecretsUsageError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def _aesgcm(material: bytes) -> AESGCM:
    # cryptography (~8 MB of RSS) is imported at the first seal or open, not at start: a hub
    # whose tenants keep no secrets never loads it.
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(material)


FORMAT_V1 = 0x01
"""First byte of every ciphertext made by this module."""

KEY_SIZE = 32
"""AES-256: every master and data key is 32 bytes."""

NONCE_SIZE = 12
"""96-bit GCM nonces, the size GCM is specified for."""

TAG_SIZE = 16

MAX_KEY_ID_LEN = 64

KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
"""Key ids are short printable ASCII so they can sit in headers, JSON and env vars."""

_AD_LABEL = b"hypertab/secrets"

# Smallest well-formed blob: format, length, a 1-byte key id, nonce, empty body + tag.
_MIN_BLOB = 2 + 1 + NONCE_SIZE + TAG_SIZE


class Purpose(enum.StrEnum):
    """What a ciphertext is for; part of its associated data."""

    DATA_KEY = "data-key"
    SECRET = "secret"  # noqa: S105 - a label, not a password


class SymmetricKey:
    """A 32-byte AES-256-GCM key with an id. Its bytes never appear in ``repr``/``str``.

    Used for both master keys and data keys. Equality compares ids and bytes in constant
    time; the class is deliberately not hashable so keys do not end up as dict keys.
    """

    __slots__ = ("_material", "key_id")

    key_id: str
    _material: bytes

    def __init__(self, key_id: str, material: bytes) -> None:
        if not KEY_ID_PATTERN.fullmatch(key_id):
            raise SecretsUsageError(
                "key id must be 1-64 characters from [A-Za-z0-9_.-]",
            )
        if len(material) != KEY_SIZE:
            # Only the length goes into the message, never the bytes.
            raise SecretsUsageError(f"key {key_id!r} must be {KEY_SIZE} bytes")
        object.__setattr__(self, "key_id", key_id)
        object.__setattr__(self, "_material", bytes(material))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("SymmetricKey is immutable")

    @property
    def material(self) -> bytes:
        """The raw key bytes. Handle with care: never log or serialise them."""
        return self._material

    def __repr__(self) -> str:
        return f"SymmetricKey(key_id={self.key_id!r}, material=<redacted>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SymmetricKey):
            return NotImplemented
        return self.key_id == other.key_id and hmac.compare_digest(self._material, other._material)

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would write key bytes somewhere we do not control.
        raise TypeError("SymmetricKey cannot be pickled")


@dataclass(frozen=True, slots=True)
class DataKey:
    """One version of a tenant's data key (unwrapped). ``key.key_id`` is ``dk<version>``."""

    tenant: TenantId
    version: int
    key: SymmetricKey


def data_key_id(version: int) -> str:
    """The key id written into ciphertexts made with data key ``version``."""
    return f"dk{version}"


def new_key_material() -> bytes:
    """Fresh random bytes for a new master or data key."""
    return os.urandom(KEY_SIZE)


def new_data_key(tenant: TenantId, version: int) -> DataKey:
    """A fresh random data key for ``tenant``."""
    if version < 1:
        raise SecretsUsageError("data key versions start at 1")
    return DataKey(tenant, version, SymmetricKey(data_key_id(version), new_key_material()))


def associated_data(
    key_id: str, tenant: str, purpose: str, name: str, *, version: int = FORMAT_V1
) -> bytes:
    """The canonical associated data for one ciphertext (see the module docstring)."""
    parts = [_AD_LABEL, bytes([version])]
    for field in (key_id, tenant, purpose, name):
        raw = field.encode("utf-8")
        parts.append(struct.pack(">I", len(raw)))
        parts.append(raw)
    return b"".join(parts)


@dataclass(frozen=True, slots=True)
class Envelope:
    """A parsed ciphertext header plus the sealed body (ciphertext || tag)."""

    version: int
    key_id: str
    nonce: bytes
    sealed: bytes


def parse(blob: bytes) -> Envelope:
    """Split a ciphertext into its fields; :class:`DecryptionError` when malformed.

    Parsing authenticates nothing: the result only says which key to try.
    """
    if len(blob) < _MIN_BLOB:
        raise DecryptionError("ciphertext too short")
    if blob[0] != FORMAT_V1:
        raise DecryptionError(f"unknown ciphertext format {blob[0]}")
    id_len = blob[1]
    if not 1 <= id_len <= MAX_KEY_ID_LEN:
        raise DecryptionError("invalid key id length in ciphertext")
    body_start = 2 + id_len + NONCE_SIZE
    if len(blob) < body_start + TAG_SIZE:
        raise DecryptionError("ciphertext too short")
    try:
        key_id = blob[2 : 2 + id_len].decode("ascii")
    except UnicodeDecodeError:
        raise DecryptionError("invalid key id in ciphertext") from None
    if not KEY_ID_PATTERN.fullmatch(key_id):
        raise DecryptionError("invalid key id in ciphertext")
    return Envelope(FORMAT_V1, key_id, blob[2 + id_len : body_start], blob[body_start:])


def key_id_of(blob: bytes) -> str:
    """The id of the key a ciphertext says it was made with (unauthenticated)."""
    return parse(blob).key_id


def encrypt(key: SymmetricKey, plaintext: bytes, *, tenant: str, purpose: str, name: str) -> bytes:
    """Encrypt ``plaintext`` under ``key``, bound to ``tenant``/``purpose``/``name``."""
    nonce = os.urandom(NONCE_SIZE)
    key_id = key.key_id.encode("ascii")
    ad = associated_data(key.key_id, tenant, purpose, name)
    sealed = _aesgcm(key.material).encrypt(nonce, plaintext, ad)
    return b"".join((bytes([FORMAT_V1, len(key_id)]), key_id, nonce, sealed))


def decrypt(key: SymmetricKey, blob: bytes, *, tenant: str, purpose: str, name: str) -> bytes:
    """Authenticate and decrypt ``blob``; all or nothing.

    Raises :class:`DecryptionError` if the blob is malformed, names another key, or fails
    authentication for any reason (tampering, truncation, other tenant/purpose/name).
    """
    env = parse(blob)
    if env.key_id != key.key_id:
        raise DecryptionError(
            f"ciphertext was made with key {env.key_id!r}, not {key.key_id!r}",
        )
    ad = associated_data(env.key_id, tenant, purpose, name, version=env.version)
    from cryptography.exceptions import InvalidTag

    try:
        return _aesgcm(key.material).decrypt(env.nonce, env.sealed, ad)
    except InvalidTag:
        raise DecryptionError(
            "ciphertext failed authentication (tampered, truncated, or bound to another "
            "tenant, name or key)"
        ) from None


def wrap_data_key(master: SymmetricKey, data_key: DataKey) -> bytes:
    """Encrypt a data key under a master key, bound to its tenant and version."""
    return encrypt(
        master,
        data_key.key.material,
        tenant=data_key.tenant,
        purpose=Purpose.DATA_KEY,
        name=data_key.key.key_id,
    )


def unwrap_data_key(
    master: SymmetricKey, wrapped: bytes, *, tenant: TenantId, version: int
) -> DataKey:
    """Decrypt a wrapped data key; it must belong to ``tenant`` and ``version``."""
    kid = data_key_id(version)
    material = decrypt(master, wrapped, tenant=tenant, purpose=Purpose.DATA_KEY, name=kid)
    if len(material) != KEY_SIZE:  # pragma: no cover - authenticated, so only our own bug
        raise DecryptionError("wrapped data key has the wrong size")
    return DataKey(tenant, version, SymmetricKey(kid, material))


def secret_purpose(kind: str) -> str:
    """Purpose string for a secret of ``kind``: binding the kind stops kind swaps."""
    return f"{Purpose.SECRET}/{kind}"


def encrypt_secret(data_key: DataKey, *, name: str, kind: str, value: bytes) -> bytes:
    """Encrypt a secret value with the tenant's data key, bound to tenant, kind and name."""
    return encrypt(
        data_key.key, value, tenant=data_key.tenant, purpose=secret_purpose(kind), name=name
    )


def decrypt_secret(data_key: DataKey, blob: bytes, *, name: str, kind: str) -> bytes:
    """Decrypt a secret value; :class:`DecryptionError` unless every binding matches."""
    return decrypt(
        data_key.key, blob, tenant=data_key.tenant, purpose=secret_purpose(kind), name=name
    )
