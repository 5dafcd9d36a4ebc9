"""A tenant's encrypted secrets, in the tenant's own database.

Table ``_ht_secrets`` (this module's only table)::

    name TEXT PRIMARY KEY, kind TEXT, ciphertext BLOB, key_version INTEGER,
    created_at REAL, updated_at REAL

Values are encrypted with the tenant's data key (:func:`~.envelope.encrypt_secret`), bound
to tenant, kind and name; only the ciphertext and the data key *version* are stored, never
plaintext or a plaintext hint. Data keys come from a :class:`DataKeySource` (in production
the :class:`~.datakeys.DataKeyStore` on the control database).

Mutating methods follow the ``commit`` contract of :mod:`.transactions`: pass
``commit=False`` to add an audit entry in the same transaction, then commit yourself.
Overwritten and deleted ciphertexts are zeroed in the database file
(``secure_delete``); call :meth:`SecretStore.scrub_files` after the commit to clear the WAL.
"""

from __future__ import annotations

import builtins
import enum
import hashlib
import re
from dataclasses import dataclass
from typing import Protocol

from server.auth.principal import TenantId
from server.secrets.envelope import DataKey, decrypt_secret, encrypt_secret
from server.secrets.errors import (
    DataKeyError,
    DecryptionError,
    InvalidSecretError,
    MissingDataKeyError,
    SecretNotFoundError,
    SecretsUsageError,
)
from server.secrets.masking import mask
from server.secrets.transactions import secure_delete, truncate_wal, write_transaction
from server.store.asyncconn import AsyncConnection

NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,127}")
"""Secret names: an identifier-like start, then letters, digits, ``_ . -``; 1-128 chars."""

MAX_VALUE_BYTES = 64 * 1024
"""Largest secret value, in UTF-8 bytes."""

_SCHEMA = """
    CREATE TABLE IF NOT EXISTS _ht_secrets (
        name        TEXT    PRIMARY KEY NOT NULL,
        kind        TEXT    NOT NULL
                    CHECK (kind IN ('ai_provider_key', 'api_account_auth_header', 'env_var')),
        ciphertext  BLOB    NOT NULL,
        key_version INTEGER NOT NULL,
        created_at  REAL    NOT NULL,
        updated_at  REAL    NOT NULL
    )
"""


class SecretKind(enum.StrEnum):
    """What a secret is; bound into its ciphertext so a row's kind cannot be swapped."""

    AI_PROVIDER_KEY = "ai_provider_key"
    API_ACCOUNT_AUTH_HEADER = "api_account_auth_header"
    ENV_VAR = "env_var"


class DataKeySource(Protocol):
    """Where a secret store gets the tenant's data keys (``DataKeyStore`` implements it)."""

    async def current_key(self, tenant: TenantId) -> DataKey:
        """The data key new ciphertexts are made with."""
        ...

    async def get_key(self, tenant: TenantId, version: int) -> DataKey:
        """The data key of a given version, to decrypt older ciphertexts."""
        ...


@dataclass(frozen=True, slots=True)
class SecretInfo:
    """A secret as listed: never the value, only a mask of at most its last 4 chars."""

    name: str
    kind: SecretKind
    masked: str
    key_version: int
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class SecretRecord:
    """A stored ciphertext's size and SHA-256, e.g. for a deletion certificate.

    The digest is of the ciphertext, never the plaintext: a hash of a short secret could be
    brute-forced from the certificate.
    """

    name: str
    kind: SecretKind
    size: int
    sha256: str


def validate_name(name: object) -> str:
    """Return ``name`` if it is a valid secret name, else :class:`InvalidSecretError`."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise InvalidSecretError(
            "secret name must match ^[A-Za-z_][A-Za-z0-9_.-]{0,127}$",
        )
    return name


def validate_kind(kind: object) -> SecretKind:
    """Return ``kind`` as a :class:`SecretKind`, else :class:`InvalidSecretError`."""
    if isinstance(kind, str) and kind in SecretKind.__members__.values():
        return SecretKind(kind)
    allowed = ", ".join(k.value for k in SecretKind)
    raise InvalidSecretError(f"secret kind must be one of: {allowed}")


def validate_value(kind: SecretKind, value: object) -> bytes:
    """Check a secret value and return its UTF-8 encoding.

    Messages describe the rule broken, never the value.
    """
    if not isinstance(value, str):
        raise InvalidSecretError("secret value must be a string")
    try:
        raw = value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidSecretError("secret value must be valid Unicode text") from None
    if len(raw) > MAX_VALUE_BYTES:
        raise InvalidSecretError(f"secret value exceeds {MAX_VALUE_BYTES} bytes")
    if "\x00" in value:
        raise InvalidSecretError("secret value must not contain NUL characters")
    if kind is not SecretKind.ENV_VAR:
        if not value:
            raise InvalidSecretError(f"a {kind.value} secret must not be empty")
        if "\r" in value or "\n" in value:
            # These values end up in HTTP headers: a newline would inject a header.
            raise InvalidSecretError(f"a {kind.value} secret must not contain line breaks")
    return raw


class SecretStore:
    """Set, list, reveal, delete and re-encrypt one tenant's secrets.

    ``conn`` is the tenant's own database; ``keys`` supplies its data keys.
    """

    def __init__(self, conn: AsyncConnection, tenant: TenantId, keys: DataKeySource) -> None:
        self._conn = conn
        self._tenant = tenant
        self._keys = keys

    @property
    def tenant(self) -> TenantId:
        """The tenant whose database this is."""
        return self._tenant

    async def ensure_schema(self) -> None:
        """Create ``_ht_secrets`` if missing (idempotent; commits)."""
        async with write_transaction(self._conn, commit=True):
            await self._conn.execute(_SCHEMA)

    def _check_key(self, data_key: DataKey) -> DataKey:
        if data_key.tenant != self._tenant:
            raise SecretsUsageError("data key belongs to another tenant")
        return data_key

    async def set(
        self, name: str, kind: SecretKind | str, value: str, *, now: float, commit: bool = True
    ) -> SecretInfo:
        """Create or replace a secret; returns its listing entry.

        Replacing keeps ``created_at`` and may change the kind.
        """
        name = validate_name(name)
        kind = validate_kind(kind)
        raw = validate_value(kind, value)
        data_key = self._check_key(await self._keys.current_key(self._tenant))
        blob = encrypt_secret(data_key, name=name, kind=kind, value=raw)
        async with write_transaction(self._conn, commit=commit), secure_delete(self._conn):
            await self._conn.execute(
                "INSERT INTO _ht_secrets (name, kind, ciphertext, key_version, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET kind = excluded.kind,"
                " ciphertext = excluded.ciphertext, key_version = excluded.key_version,"
                " updated_at = excluded.updated_at",
                (name, kind.value, blob, data_key.version, now, now),
            )
            async with self._conn.execute(
                "SELECT created_at FROM _ht_secrets WHERE name = ?", (name,)
            ) as cursor:
                row = await cursor.fetchone()
        created_at = float(row[0]) if row is not None else now
        return SecretInfo(name, kind, mask(value), data_key.version, created_at, now)

    async def _decrypt_row(self, name: str, kind: str, blob: bytes, version: int) -> str:
        if version < 1:  # data key versions start at 1: the row was written by no one of ours
            raise MissingDataKeyError(f"secret {name!r} names data key version {version}")
        try:
            key = await self._keys.get_key(self._tenant, version)
        except DataKeyError:
            raise MissingDataKeyError(
                f"secret {name!r} names data key version {version}, which does not exist"
            ) from None
        data_key = self._check_key(key)
        raw = decrypt_secret(data_key, blob, name=name, kind=kind)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:  # pragma: no cover - authenticated, so only our own bug
            raise DecryptionError(f"secret {name!r} is not valid UTF-8") from None

    async def list(self) -> builtins.list[SecretInfo]:
        """Every secret of the tenant, sorted by name, with masked values.

        Decrypts each value to mask it, so a tampered row raises :class:`DecryptionError`
        rather than being hidden.
        """
        async with self._conn.execute(
            "SELECT name, kind, ciphertext, key_version, created_at, updated_at"
            " FROM _ht_secrets ORDER BY name"
        ) as cursor:
            rows = await cursor.fetchall()
        result: builtins.list[SecretInfo] = []
        for name, kind, blob, version, created_at, updated_at in rows:
            value = await self._decrypt_row(str(name), str(kind), bytes(blob), int(version))
            result.append(
                SecretInfo(
                    str(name),
                    SecretKind(kind),
                    mask(value),
                    int(version),
                    float(created_at),
                    float(updated_at),
                )
            )
        return result

    async def reveal(self, name: str) -> str:
        """The plaintext value of ``name`` (audit this call). :class:`SecretNotFoundError`
        if absent, :class:`DecryptionError` if its ciphertext does not authenticate."""
        name = validate_name(name)
        async with self._conn.execute(
            "SELECT kind, ciphertext, key_version FROM _ht_secrets WHERE name = ?", (name,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise SecretNotFoundError(f"no secret named {name!r}")
        kind, blob, version = row
        return await self._decrypt_row(name, str(kind), bytes(blob), int(version))

    async def delete(self, name: str, *, commit: bool = True) -> bool:
        """Delete ``name``; ``True`` if it existed. Its ciphertext is zeroed on disk."""
        name = validate_name(name)
        async with write_transaction(self._conn, commit=commit), secure_delete(self._conn):
            cursor = await self._conn.execute("DELETE FROM _ht_secrets WHERE name = ?", (name,))
            deleted = cursor.rowcount > 0
            await cursor.close()
        return deleted

    async def reencrypt_all(self, new_key: DataKey, *, commit: bool = True) -> int:
        """Re-encrypt every secret not yet under ``new_key``; return how many changed.

        For tenant data key rotation: old versions are fetched from the key source, so
        they must still exist (retired, not destroyed). ``updated_at`` is kept: the value
        did not change.
        """
        self._check_key(new_key)
        async with write_transaction(self._conn, commit=commit), secure_delete(self._conn):
            async with self._conn.execute(
                "SELECT name, kind, ciphertext, key_version FROM _ht_secrets"
                " WHERE key_version != ?",
                (new_key.version,),
            ) as cursor:
                rows = builtins.list(await cursor.fetchall())
            for name, kind, blob, version in rows:
                old_key = self._check_key(await self._keys.get_key(self._tenant, int(version)))
                raw = decrypt_secret(old_key, bytes(blob), name=str(name), kind=str(kind))
                await self._conn.execute(
                    "UPDATE _ht_secrets SET ciphertext = ?, key_version = ? WHERE name = ?",
                    (
                        encrypt_secret(new_key, name=str(name), kind=str(kind), value=raw),
                        new_key.version,
                        name,
                    ),
                )
        return len(rows)

    async def key_versions_in_use(self) -> builtins.set[int]:
        """Data key versions that still encrypt at least one secret."""
        async with self._conn.execute("SELECT DISTINCT key_version FROM _ht_secrets") as cursor:
            return {int(row[0]) for row in await cursor.fetchall()}

    async def inventory(self) -> builtins.list[SecretRecord]:
        """Size and SHA-256 of every stored ciphertext (no decryption), sorted by name."""
        async with self._conn.execute(
            "SELECT name, kind, ciphertext FROM _ht_secrets ORDER BY name"
        ) as cursor:
            rows = await cursor.fetchall()
        return [
            SecretRecord(
                str(name), SecretKind(kind), len(blob), hashlib.sha256(bytes(blob)).hexdigest()
            )
            for name, kind, blob in rows
        ]

    async def scrub_files(self) -> bool:
        """Truncate the tenant database's WAL after a commit that overwrote ciphertexts.

        ``False`` if a reader blocked the checkpoint (retry later).
        """
        return await truncate_wal(self._conn)
