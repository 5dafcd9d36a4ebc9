"""Adding, listing and removing a tenant's webhooks (on a connection to its database).

Used by ``hypertab webhook …`` on a connection of its own (safe while a hub runs: SQLite
serialises the writers, and the group commit reads ``_ht_webhooks`` inside each
transaction, so a new webhook receives every change committed after it). Each change and
its ``webhook.added``/``webhook.removed`` audit entry commit together; the signing secret
is stored in the tenant's secret store (AES-256-GCM, bound to tenant and name) in the same
transaction and shown once.

``control.db``'s ``_ht_webhook_tenants`` lists the tenants that have webhooks, so a hub
knows which outboxes to drain after a restart without opening every tenant database.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiosqlite

from server.audit import log as audit_log
from server.audit.actions import Action
from server.audit.chain import AuditEntry
from server.auth.principal import TenantId
from server.delivery import signing
from server.delivery.destination import DestinationPolicy
from server.delivery.errors import DeliveryError, SendFailed
from server.delivery.sender import Sender
from server.secrets.store import DataKeySource, SecretKind, SecretStore
from server.store.asyncconn import AsyncConnection
from server.webhooks.payload import test_body

MAX_WEBHOOKS = 20
"""Webhooks per tenant at most (each one is a copy of every change in the outbox)."""

INDEX_DDL = "CREATE TABLE IF NOT EXISTS _ht_webhook_tenants (tenant_id TEXT PRIMARY KEY)"

_COLUMNS = (
    "id, tbl, url, created_at, created_by, attempts, next_at, last_error, delivered, failed,"
    " last_failed, last_delivered_at, disabled_at"
)


class WebhookError(Exception):
    """A webhook request that cannot be carried out (unknown id, too many, ...)."""


@dataclass(frozen=True, slots=True)
class Webhook:
    """A webhook and how its deliveries stand."""

    id: str
    table: str | None
    url: str
    created_at: float
    created_by: str
    attempts: int = 0
    next_at: float = 0.0
    last_error: str | None = None
    delivered: int = 0
    failed: int = 0
    last_failed: str | None = None
    last_delivered_at: float | None = None
    disabled_at: float | None = None
    """Set when a batch failed for good: no changes are queued until a test passes."""
    pending: int = 0
    """Changes waiting in the outbox."""


SIGNING_KIND = SecretKind.API_ACCOUNT_AUTH_HEADER
"""The kind a signing secret is stored as: it authenticates us to the receiver's account,
and the kind's rules (not empty, no line break) fit. The secrets table's CHECK constraint,
fixed in existing databases, allows no new kind."""


def secret_name(hook_id: str) -> str:
    """The name of a webhook's signing secret in the tenant's secret store."""
    return f"webhook.{hook_id}"


def new_webhook_id() -> str:
    """``hk_`` + 16 hex: server-made, never user text."""
    return f"hk_{secrets.token_hex(8)}"


def new_signing_secret() -> str:
    """``whsec_`` + 43 URL-safe characters (256 bits)."""
    return f"whsec_{secrets.token_urlsafe(32)}"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


@contextlib.asynccontextmanager
async def _transaction(conn: AsyncConnection) -> AsyncIterator[None]:
    await conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            await conn.rollback()
        raise
    await conn.commit()


def _webhook(row: Any, pending: int) -> Webhook:
    return Webhook(
        id=str(row[0]),
        table=None if row[1] is None else str(row[1]),
        url=str(row[2]),
        created_at=float(row[3]),
        created_by=str(row[4]),
        attempts=int(row[5]),
        next_at=float(row[6]),
        last_error=None if row[7] is None else str(row[7]),
        delivered=int(row[8]),
        failed=int(row[9]),
        last_failed=None if row[10] is None else str(row[10]),
        last_delivered_at=None if row[11] is None else float(row[11]),
        disabled_at=None if row[12] is None else float(row[12]),
        pending=pending,
    )


async def list_webhooks(conn: AsyncConnection) -> list[Webhook]:
    """Every webhook of the tenant, oldest first, with its pending count."""
    async with conn.execute("SELECT hook, COUNT(*) FROM _ht_webhook_outbox GROUP BY hook") as cur:
        pending = {str(r[0]): int(r[1]) for r in await cur.fetchall()}
    async with conn.execute(
        f"SELECT {_COLUMNS} FROM _ht_webhooks ORDER BY created_at, id"  # noqa: S608
    ) as cur:
        return [_webhook(r, pending.get(str(r[0]), 0)) for r in await cur.fetchall()]


async def add_webhook(
    conn: AsyncConnection,
    tenant: TenantId,
    keys: DataKeySource,
    url: str,
    table: str | None,
    *,
    now: float,
    actor: str,
    ip: str | None = None,
) -> tuple[Webhook, str]:
    """Add the webhook and its encrypted signing secret, audited; returns the webhook and
    its secret (shown once). Check the destination first (:func:`check_destination`): not
    here, where the caller may hold the tenant's writer paused."""
    if len(await list_webhooks(conn)) >= MAX_WEBHOOKS:
        raise WebhookError(f"a tenant has at most {MAX_WEBHOOKS} webhooks")
    hook = Webhook(new_webhook_id(), table, url, now, actor)
    secret = new_signing_secret()
    store = SecretStore(conn, tenant, keys)
    async with _transaction(conn):
        await conn.execute(
            "INSERT INTO _ht_webhooks (id, tbl, url, created_at, created_by)"
            " VALUES (?, ?, ?, ?, ?)",
            (hook.id, table, url, now, actor),
        )
        await store.set(secret_name(hook.id), SIGNING_KIND, secret, now=now, commit=False)
        entry = AuditEntry(
            now,
            actor,
            Action.WEBHOOK_ADDED,
            target=hook.id,
            ip=ip,
            details={"table": table, "destination": _origin(url)},  # a query may hold a token
        )
        await audit_log.append(conn, entry, commit=False)
    return hook, secret


async def check_destination(policy: DestinationPolicy, url: str) -> None:
    """Refuse a destination now (DestinationRefused): https only, no private address. It is
    checked again at every send."""
    await policy.resolve(url)


async def remove_webhook(
    conn: AsyncConnection, tenant: TenantId, keys: DataKeySource, hook_id: str, *,
    now: float, actor: str, ip: str | None = None,
) -> None:  # fmt: skip
    """Remove a webhook, its pending changes and its secret, audited."""
    store = SecretStore(conn, tenant, keys)
    async with _transaction(conn):
        cur = await conn.execute("DELETE FROM _ht_webhooks WHERE id = ?", (hook_id,))
        if cur.rowcount == 0:
            raise WebhookError(f"no webhook {hook_id!r}")
        await conn.execute("DELETE FROM _ht_webhook_outbox WHERE hook = ?", (hook_id,))
        await store.delete(secret_name(hook_id), commit=False)
        entry = AuditEntry(now, actor, Action.WEBHOOK_REMOVED, target=hook_id, ip=ip)
        await audit_log.append(conn, entry, commit=False)
    await store.scrub_files()


async def enable_webhook(
    conn: AsyncConnection, hook_id: str, *, now: float, actor: str, ip: str | None = None
) -> bool:
    """Enable a webhook disabled after a failure (its receiver passed a test); audited.
    Changes committed from now on are delivered; the receiver sees the gap before them."""
    async with _transaction(conn):
        cur = await conn.execute(
            "UPDATE _ht_webhooks SET disabled_at = NULL, last_error = NULL"
            " WHERE id = ? AND disabled_at IS NOT NULL",
            (hook_id,),
        )
        if cur.rowcount == 0:
            return False
        entry = AuditEntry(now, actor, Action.WEBHOOK_ENABLED, target=hook_id, ip=ip)
        await audit_log.append(conn, entry, commit=False)
    return True


async def signing_secret(
    conn: AsyncConnection, tenant: TenantId, keys: DataKeySource, hook_id: str
) -> bytes:
    """The webhook's signing secret, decrypted (the server's own use: not a secret.read)."""
    return (await SecretStore(conn, tenant, keys).reveal(secret_name(hook_id))).encode()


async def index_tenant(control: aiosqlite.Connection, tenant: str, *, has_webhooks: bool) -> None:
    """Keep ``_ht_webhook_tenants`` in step with the tenant's webhooks (own transaction)."""
    async with _transaction(control):
        await index_in_transaction(control, tenant, has_webhooks=has_webhooks)


async def index_in_transaction(
    control: aiosqlite.Connection, tenant: str, *, has_webhooks: bool
) -> None:
    """:func:`index_tenant` inside the caller's control transaction."""
    await control.execute(INDEX_DDL)
    if has_webhooks:
        await control.execute(
            "INSERT OR IGNORE INTO _ht_webhook_tenants (tenant_id) VALUES (?)", (tenant,)
        )
    else:
        await control.execute("DELETE FROM _ht_webhook_tenants WHERE tenant_id = ?", (tenant,))


async def send_test(
    sender: Sender, hook: Webhook, tenant: str, secret: bytes, now: float
) -> tuple[str, int | None, str | None]:
    """One signed ``type: test`` request: (its id, the receiver's status, the error)."""
    event_id = f"wh_test_{secrets.token_hex(8)}"
    body = test_body(hook.id, tenant, event_id, now)
    try:
        status = await sender.post(
            hook.url, body, signing.headers(event_id, secret, int(now), body)
        )
    except SendFailed as exc:
        return event_id, exc.status, str(exc)
    except DeliveryError as exc:
        return event_id, None, str(exc)
    return event_id, status, None


async def resolve_table(conn: AsyncConnection, ref: str) -> str:
    """A live table's id, by id or by its unique name."""
    async with conn.execute("SELECT id, name FROM _ht_tables WHERE dropped = 0") as cur:
        rows = [(str(r[0]), str(r[1])) for r in await cur.fetchall()]
    for table_id, _ in rows:
        if table_id == ref:
            return table_id
    named = [table_id for table_id, name in rows if name == ref]
    if len(named) == 1:
        return named[0]
    raise WebhookError(f"no table {ref!r}" if not named else f"several tables named {ref!r}")
