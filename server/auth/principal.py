"""Who is on the other end of a connection, once their credential has been verified."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NewType

TenantId = NewType("TenantId", str)
KeyId = NewType("KeyId", str)


class Scope(enum.StrEnum):
    """What a credential may do. A connection is checked against these for every message."""

    TABLES_READ = "tables:read"
    TABLES_WRITE = "tables:write"
    SCHEMA_WRITE = "schema:write"
    SECRETS_READ = "secrets:read"
    SECRETS_WRITE = "secrets:write"
    AUDIT_READ = "audit:read"
    KEYS_ADMIN = "keys:admin"


ALL_SCOPES: frozenset[Scope] = frozenset(Scope)


class Plan(enum.StrEnum):
    """A tenant's plan; sets rate limits and feature access."""

    FREE = "free"
    PRO = "pro"
    TEAM = "team"
    ENTERPRISE = "enterprise"


class CredentialKind(enum.StrEnum):
    """How the principal authenticated."""

    API_KEY = "api_key"
    JWT = "jwt"


@dataclass(frozen=True, slots=True)
class Principal:
    """A verified identity: produced only by the authenticators, never from client input.

    ``credential_id`` identifies the credential for revocation (an API key id, or a JWT's
    subject prefixed with ``jwt:``). ``tables`` is ``None`` when every table is allowed.
    ``expires_at`` is a Unix time, or ``None`` for a credential without expiry. ``rate`` is
    the credential's own per-minute limit (``None``: the plan's alone).
    """

    tenant: TenantId
    subject: str
    kind: CredentialKind
    credential_id: str
    scopes: frozenset[Scope]
    plan: Plan
    tables: frozenset[str] | None = None
    expires_at: float | None = None
    rate: int | None = None
    """The credential's own ops-per-minute limit, when tighter than the plan's (agent keys)."""

    def can(self, scope: Scope) -> bool:
        """Whether this principal holds ``scope``."""
        return scope in self.scopes

    def may_touch(self, table_id: str) -> bool:
        """Whether the table allowlist (if any) includes ``table_id``."""
        return self.tables is None or table_id in self.tables
