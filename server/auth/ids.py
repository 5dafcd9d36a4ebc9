"""Server-generated identifiers for tenants and API keys.

Both are random strings over ``[a-z0-9]``: safe as file names (a tenant id becomes the name
of the tenant's database file), safe in URLs and logs, and never derived from user text.
"""

from __future__ import annotations

import re
import secrets

from server.auth.principal import KeyId, TenantId

_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"

#: Length of generated ids: 16 symbols of 36 is ~82 bits, so collisions never happen in
#: practice and ids cannot be enumerated.
ID_LENGTH = 16

TENANT_ID_RE = re.compile(r"[a-z0-9]{12,32}")
KEY_ID_RE = re.compile(r"[a-z0-9]{16}")


def _random_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(ID_LENGTH))


def new_tenant_id() -> TenantId:
    """A fresh random tenant id."""
    return TenantId(_random_id())


def new_key_id() -> KeyId:
    """A fresh random API key id (the public, lookup part of a key)."""
    return KeyId(_random_id())


def is_tenant_id(value: object) -> bool:
    """Whether ``value`` has the shape of a tenant id (it may still not exist)."""
    return isinstance(value, str) and TENANT_ID_RE.fullmatch(value) is not None


def is_key_id(value: object) -> bool:
    """Whether ``value`` has the shape of an API key id (it may still not exist)."""
    return isinstance(value, str) and KEY_ID_RE.fullmatch(value) is not None
