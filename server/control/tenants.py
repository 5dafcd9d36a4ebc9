"""Tenants as ``control.db`` stores them (records, reads) and the validation of
human-entered names. What changes a tenant (signup, plan, deletion, containment) is
:mod:`server.control.tenancy`."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

import aiosqlite

from server.auth.ids import is_tenant_id
from server.auth.principal import Plan, TenantId
from server.control.errors import InvalidInput

MAX_NAME_LENGTH = 100


@dataclass(frozen=True, slots=True)
class TenantRecord:
    """A tenant as stored. ``deleted_at`` is set once the tenant is deleted (Unix time)."""

    id: TenantId
    name: str
    plan: Plan
    created_at: float
    deleted_at: float | None = None
    region: str = ""

    @property
    def active(self) -> bool:
        """Not deleted."""
        return self.deleted_at is None


def clean_name(value: object, *, what: str = "name", max_length: int = MAX_NAME_LENGTH) -> str:
    """A display name, NFC-normalised and stripped: 1..max_length chars, no control chars.

    Names are shown in admin UIs and logs, so control, format and unassigned characters
    (which can hide or reorder text) are refused rather than silently removed.
    """
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string")
    name = unicodedata.normalize("NFC", value).strip()
    if not 1 <= len(name) <= max_length:
        raise InvalidInput(f"{what} must be 1 to {max_length} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise InvalidInput(f"{what} must not contain control or invisible characters")
    return name


_COLUMNS = "id, name, plan, created_at, deleted_at, region"


def tenant_record(row: Any) -> TenantRecord:
    """A ``tenants`` row (the columns of :data:`_COLUMNS`, in order) as a record."""
    return TenantRecord(
        id=TenantId(row[0]),
        name=row[1],
        plan=Plan(row[2]),
        created_at=row[3],
        deleted_at=row[4],
        region=row[5],
    )


async def read_tenant(conn: aiosqlite.Connection, tenant: TenantId) -> TenantRecord | None:
    """The tenant, deleted or not; ``None`` when it never existed."""
    if not is_tenant_id(tenant):
        return None
    async with conn.execute(
        f"SELECT {_COLUMNS} FROM tenants WHERE id = ?",  # noqa: S608 (constant)
        (tenant,),
    ) as cur:
        row = await cur.fetchone()
    return tenant_record(row) if row is not None else None


async def read_tenants(
    conn: aiosqlite.Connection, *, include_deleted: bool = False
) -> list[TenantRecord]:
    """Tenants by creation time (deleted ones only on request)."""
    sql = f"SELECT {_COLUMNS} FROM tenants"  # noqa: S608 (constant)
    if not include_deleted:
        sql += " WHERE deleted_at IS NULL"
    async with conn.execute(sql + " ORDER BY created_at, id") as cur:
        rows = await cur.fetchall()
    return [tenant_record(row) for row in rows]
