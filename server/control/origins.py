"""Per-tenant browser origin allowlists in ``control.db`` (table ``tenant_origins``).

A browser connection (one that sends ``Origin``) is accepted when its origin is on the
server-wide list (``HYPERTAB_ALLOWED_ORIGINS``) or on its tenant's list here. Entries are
stored normalised (:func:`server.auth.origins.normalize_origin`) and compared exactly.

There is no cache: the handshake reads the tenant's rows (one indexed read, and only for
requests that carry an ``Origin``), so a change made by the CLI in another process applies
to the very next handshake. Removing an origin does not close sockets already open.
"""

from __future__ import annotations

from collections.abc import Sequence

from server.auth.origins import InvalidOrigin, normalize_origin
from server.auth.principal import TenantId
from server.control.errors import InvalidInput, UnknownTenant
from server.control.plane import ControlPlane

MAX_ORIGINS_PER_TENANT = 100

SCHEMA = """
CREATE TABLE IF NOT EXISTS tenant_origins (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    origin      TEXT NOT NULL,
    created_at  REAL NOT NULL,
    PRIMARY KEY (tenant_id, origin)
) STRICT, WITHOUT ROWID
"""


def clean_origin(value: str) -> str:
    """The normalised origin, or :class:`InvalidInput` saying what is wrong with it."""
    try:
        return normalize_origin(value)
    except InvalidOrigin as exc:
        raise InvalidInput(f"invalid origin: {exc}") from None


class TenantOrigins:
    """The origin allowlists of every tenant. Create with :meth:`open`."""

    def __init__(self, plane: ControlPlane) -> None:
        """Use :meth:`open` (it creates the table)."""
        self._plane = plane

    @classmethod
    async def open(cls, plane: ControlPlane) -> TenantOrigins:
        """The allowlists on ``plane``'s ``control.db``, creating the table if needed."""
        async with plane.transaction() as conn:
            await conn.execute(SCHEMA)
        return cls(plane)

    async def of_tenant(self, tenant: TenantId) -> list[str]:
        """The tenant's allowed origins, sorted."""
        rows = await self._plane.fetchall(
            "SELECT origin FROM tenant_origins WHERE tenant_id = ? ORDER BY origin", (tenant,)
        )
        return [str(row[0]) for row in rows]

    async def allowed(self, tenant: TenantId, origin: str) -> bool:
        """Whether ``origin`` (a request header, compared exactly) is on the tenant's list."""
        rows = await self._plane.fetchall(
            "SELECT 1 FROM tenant_origins WHERE tenant_id = ? AND origin = ?", (tenant, origin)
        )
        return bool(rows)

    async def change(
        self,
        tenant: TenantId,
        *,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
        now: float,
    ) -> list[str]:
        """Add and remove origins of a live tenant in one transaction; the resulting list.

        Adding an origin already listed and removing one that is not are no-ops.
        """
        to_add = [clean_origin(o) for o in add]
        to_remove = [clean_origin(o) for o in remove]
        async with self._plane.transaction() as conn:
            async with conn.execute(
                "SELECT deleted_at FROM tenants WHERE id = ?", (tenant,)
            ) as cur:
                row = await cur.fetchone()
            if row is None or row[0] is not None:
                raise UnknownTenant(tenant)
            for origin in to_remove:
                await conn.execute(
                    "DELETE FROM tenant_origins WHERE tenant_id = ? AND origin = ?",
                    (tenant, origin),
                )
            for origin in to_add:
                await conn.execute(
                    "INSERT OR IGNORE INTO tenant_origins (tenant_id, origin, created_at)"
                    " VALUES (?, ?, ?)",
                    (tenant, origin, now),
                )
            async with conn.execute(
                "SELECT COUNT(*) FROM tenant_origins WHERE tenant_id = ?", (tenant,)
            ) as cur:
                count = await cur.fetchone()
            if count is not None and int(count[0]) > MAX_ORIGINS_PER_TENANT:
                raise InvalidInput(f"at most {MAX_ORIGINS_PER_TENANT} origins per tenant")
        return await self.of_tenant(tenant)
