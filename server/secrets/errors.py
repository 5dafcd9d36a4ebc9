"""Exceptions of the secrets package: one root, :class:`SecretsError`.

::

    SecretsError
    ├── KeyringError              master keys missing, malformed, or stored unsafely
    │   ├── InsecureKeyFileError  key file readable/writable by group or others
    │   ├── UnknownKeyError       a ciphertext names a master key the keyring lacks
    │   └── KeyInUseError         refused to remove a key that still protects data
    ├── DecryptionError           ciphertext tampered, truncated, or bound elsewhere
    │   └── MissingDataKeyError   a secret names a data key version that does not exist
    │                             (also a DataKeyError)
    ├── InvalidSecretError        bad secret name, kind or value (caller's fault)
    ├── SecretNotFoundError       no secret by that name in this tenant
    ├── DataKeyError              a tenant data key is missing or already exists
    └── SecretsUsageError         local misuse of the API (e.g. commit inside a transaction)

No message ever contains key material or a secret value: messages name keys by id and
secrets by name only, and exceptions raised while handling key bytes are re-raised
``from None`` so that a traceback cannot carry them either.
"""

from __future__ import annotations


class SecretsError(Exception):
    """Root of every error raised by :mod:`server.secrets`."""


class KeyringError(SecretsError):
    """Master keys could not be loaded or changed."""


class InsecureKeyFileError(KeyringError):
    """A key file (or signing key file) is accessible to group or others."""


class UnknownKeyError(KeyringError):
    """A ciphertext was made with a key this keyring does not hold."""


class KeyInUseError(KeyringError):
    """Removing this key would make stored data unreadable."""


class DecryptionError(SecretsError):
    """A ciphertext did not authenticate: nothing of its plaintext is returned."""


class InvalidSecretError(SecretsError, ValueError):
    """A secret's name, kind or value breaks the rules (client input, reject with 4xx)."""


class SecretNotFoundError(SecretsError, KeyError):
    """No secret of that name exists in the tenant."""

    def __str__(self) -> str:
        # KeyError.__str__ repr()s its argument; keep the plain message.
        return str(self.args[0]) if self.args else ""


class DataKeyError(SecretsError):
    """A tenant data key is missing (never created, or shredded) or already exists."""


class MissingDataKeyError(DecryptionError, DataKeyError):
    """A stored secret names a data key version the tenant does not have (0, never created,
    or destroyed): its value can never be decrypted, so retrying cannot help."""


class SecretsUsageError(SecretsError):
    """The API was used in a way its contract forbids (a bug in the caller)."""
