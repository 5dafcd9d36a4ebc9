"""Errors of the control plane's management API (the caller's fault, never a credential's).

Exception tree (one root for the control package)::

    ControlError
     ├── InvalidInput        a name, scope, table list or expiry is not acceptable
     ├── UnknownTenant       no such tenant, or it was deleted
     ├── UnknownKey          no such API key
     ├── KeyNotRotatable     the key is revoked or expired: rotating it would revive it
     └── WouldWiden          a key update asked for grants the key does not hold

Authentication failures are :class:`server.auth.errors.AuthError`, not part of this tree.
"""

from __future__ import annotations


class ControlError(Exception):
    """Root of the control plane's management errors."""


class InvalidInput(ControlError, ValueError):
    """An argument is not acceptable (name length, unknown scope, expiry in the past, ...)."""


class UnknownTenant(ControlError, LookupError):
    """No such tenant, or the tenant was deleted."""


class UnknownKey(ControlError, LookupError):
    """No such API key."""


class KeyNotRotatable(ControlError):
    """The key is revoked or expired; rotation would give a dead key a live successor."""


class WouldWiden(ControlError):
    """A key's grants can only be narrowed in place: a wider key is a new key."""
