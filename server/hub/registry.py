"""Live connections by credential and by tenant, so that revocation can close them at once.

Also enforces the cap on live connections per principal.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


class Closable(Protocol):
    """What the registry needs of a connection."""

    @property
    def credential_id(self) -> str:
        """The credential the connection was opened with."""

    @property
    def tenant(self) -> str:
        """The connection's tenant."""

    def close_now(self, code: int, reason: str) -> None:
        """Close the connection with ``code`` without waiting."""


class Registry:
    """Connections indexed by credential id and tenant."""

    def __init__(self, max_per_credential: int = 1000) -> None:
        self.max_per_credential = max_per_credential
        self._by_credential: dict[str, dict[Closable, None]] = {}
        self._by_tenant: dict[str, dict[Closable, None]] = {}

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_tenant.values())

    def full(self, credential_id: str) -> bool:
        """Whether the credential is at its connection cap."""
        return len(self._by_credential.get(credential_id, ())) >= self.max_per_credential

    def add(self, conn: Closable) -> None:
        """Register a connection."""
        self._by_credential.setdefault(conn.credential_id, {})[conn] = None
        self._by_tenant.setdefault(conn.tenant, {})[conn] = None

    def remove(self, conn: Closable) -> None:
        """Forget a connection (idempotent)."""
        for index, key in (
            (self._by_credential, conn.credential_id),
            (self._by_tenant, conn.tenant),
        ):
            group = index.get(key)
            if group is not None:
                group.pop(conn, None)
                if not group:
                    del index[key]

    def all(self) -> list[Closable]:
        """Every registered connection."""
        return [c for group in self._by_tenant.values() for c in group]

    def of_credential(self, credential_id: str) -> list[Closable]:
        """Connections opened with a credential."""
        return list(self._by_credential.get(credential_id, ()))

    def of_tenant(self, tenant: str) -> list[Closable]:
        """Connections of a tenant."""
        return list(self._by_tenant.get(tenant, ()))

    def close(self, conns: Iterable[Closable], code: int, reason: str) -> int:
        """Close connections now; returns how many."""
        count = 0
        for conn in conns:
            self.remove(conn)
            conn.close_now(code, reason)
            count += 1
        return count
