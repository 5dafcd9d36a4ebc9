"""Exceptions of the backup package: one root, :class:`BackupError`.

::

    BackupError
    ├── BackupFormatError      not a backup, unknown format, missing or extra files
    ├── TamperedBackup         a digest, MAC or GCM tag did not check: the backup was changed
    ├── TenantShredded         the tenant's data key is gone (deleted): its part is unreadable
    ├── KeyStoreError          the tenant key store is missing, unsafe or does not match
    └── RestoreTargetError     the data directory to restore into is not empty

No message contains key material or plaintext: files are named by their place in the
backup, keys by id.
"""

from __future__ import annotations


class BackupError(Exception):
    """Root of every error raised by :mod:`server.backup`."""


class BackupFormatError(BackupError):
    """The directory is not a backup this version can read."""


class TamperedBackup(BackupError):
    """Something in the backup does not authenticate: it was modified or truncated."""


class TenantShredded(BackupError):
    """The tenant's data key was crypto-shredded (the tenant was deleted)."""


class KeyStoreError(BackupError):
    """The tenant key store cannot be used."""


class RestoreTargetError(BackupError):
    """Refused to restore into this data directory."""
