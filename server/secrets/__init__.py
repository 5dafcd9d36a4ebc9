"""Secrets at rest: AES-256-GCM envelope encryption with per-tenant data keys.

* :mod:`.envelope` - the pure core: ciphertext format, associated data, wrap/unwrap.
* :mod:`.keyring` - master keys from ``HYPERTAB_MASTER_KEYS`` or a 0600 key file; rotation.
* :mod:`.datakeys` - tenants' data keys, wrapped, in the control database.
* :mod:`.store` - a tenant's encrypted secrets, in the tenant database.
* :mod:`.errors` - the exception tree, rooted at :class:`SecretsError`.

See ``docs/secrets.md`` for the format, the key hierarchy and rotation procedures.
"""

from __future__ import annotations

from server.secrets.datakeys import DataKeyRecord, DataKeyStore
from server.secrets.envelope import DataKey, SymmetricKey
from server.secrets.errors import (
    DataKeyError,
    DecryptionError,
    InsecureKeyFileError,
    InvalidSecretError,
    KeyInUseError,
    KeyringError,
    MissingDataKeyError,
    SecretNotFoundError,
    SecretsError,
    SecretsUsageError,
    UnknownKeyError,
)
from server.secrets.keyring import (
    Keyring,
    add_master_key,
    generate_key_file,
    load_key_file,
    load_keyring,
    remove_master_key,
)
from server.secrets.store import SecretInfo, SecretKind, SecretRecord, SecretStore

__all__ = [
    "DataKey",
    "DataKeyError",
    "DataKeyRecord",
    "DataKeyStore",
    "DecryptionError",
    "InsecureKeyFileError",
    "InvalidSecretError",
    "KeyInUseError",
    "Keyring",
    "KeyringError",
    "MissingDataKeyError",
    "SecretInfo",
    "SecretKind",
    "SecretNotFoundError",
    "SecretRecord",
    "SecretStore",
    "SecretsError",
    "SecretsUsageError",
    "SymmetricKey",
    "UnknownKeyError",
    "add_master_key",
    "generate_key_file",
    "load_key_file",
    "load_keyring",
    "remove_master_key",
]
