"""``hypertab webhook add|list|remove|test``: a tenant's webhooks (docs/webhooks.md).

``add`` checks the destination (https only, except loopback; no private addresses unless
``delivery_allow_networks`` allows them, read as ``serve`` reads it: the settings file of
``--config`` or ``$HYPERTAB_CONFIG``, under ``HYPERTAB_*``), stores the webhook and its signing
secret (encrypted under the tenant's data key) and prints the secret once. A running hub
starts delivering within a second. ``test`` sends one signed ``type: test`` request now and
prints the receiver's answer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiosqlite

from server.auth.principal import TenantId
from server.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    CliError,
    Commands,
    actor,
    add_json_flag,
    config_parent,
    configured_environ,
    data_dir,
    data_dir_parent,
    iso,
    now,
    print_json,
    resolve_tenant,
    table,
)
from server.cli.lifecycle import lifecycle_of
from server.delivery.destination import DestinationPolicy
from server.delivery.errors import DestinationRefused
from server.delivery.retry import RetryPolicy
from server.delivery.sender import Sender
from server.lifecycle.controldb import open_control_connection
from server.lifecycle.provision import ensure_feature_schema, open_tenant_db
from server.secrets.store import DataKeySource
from server.store.schema import DDL, tenant_path
from server.webhooks.registry import (
    Webhook,
    WebhookError,
    add_webhook,
    check_destination,
    enable_webhook,
    index_tenant,
    list_webhooks,
    remove_webhook,
    resolve_table,
    send_test,
    signing_secret,
)


def register(commands: Commands) -> None:
    """Add the ``webhook`` group."""
    group = commands.add_parser("webhook", help="tenant webhooks: add, list, remove, test")
    sub = group.add_subparsers(dest="webhook_command", metavar="ACTION", required=True)
    parents = [data_dir_parent(), config_parent()]

    add = sub.add_parser(
        "add",
        parents=parents,
        help="POST every committed change of a table (or of all tables) to a URL",
    )
    add.add_argument("--tenant", required=True, metavar="T", help="tenant id or name")
    add.add_argument("--url", required=True, help="https://… (http:// to loopback only)")
    add.add_argument("--table", metavar="X", help="table id or name (default: every table)")
    add_json_flag(add)
    add.set_defaults(handler=add_command)

    listing = sub.add_parser("list", parents=parents, help="webhooks and their delivery state")
    listing.add_argument("--tenant", required=True, metavar="T", help="tenant id or name")
    add_json_flag(listing)
    listing.set_defaults(handler=list_command)

    remove = sub.add_parser("remove", parents=parents, help="remove a webhook")
    remove.add_argument("--tenant", required=True, metavar="T", help="tenant id or name")
    remove.add_argument("webhook_id", metavar="ID")
    add_json_flag(remove)
    remove.set_defaults(handler=remove_command)

    test = sub.add_parser(
        "test",
        parents=parents,
        help="send one signed test request now (a 2xx enables a webhook disabled by failures)",
    )
    test.add_argument("--tenant", required=True, metavar="T", help="tenant id or name")
    test.add_argument("webhook_id", metavar="ID")
    add_json_flag(test)
    test.set_defaults(handler=test_command)


def webhook_json(hook: Webhook) -> dict[str, Any]:
    """A webhook and its state as a JSON object (never its secret)."""
    return {
        "id": hook.id,
        "table": hook.table,
        "url": hook.url,
        "created_at": iso(hook.created_at),
        "created_by": hook.created_by,
        "pending": hook.pending,
        "delivered_batches": hook.delivered,
        "failed_batches": hook.failed,
        "attempts": hook.attempts,
        "last_error": hook.last_error,
        "last_failed": hook.last_failed,
        "last_delivered_at": iso(hook.last_delivered_at),
        "disabled_at": iso(hook.disabled_at),
    }


@contextlib.asynccontextmanager
async def _tenant_db(
    args: argparse.Namespace, *, keys: bool
) -> AsyncIterator[tuple[TenantId, aiosqlite.Connection, DataKeySource | None]]:
    directory = data_dir(args)
    async with lifecycle_of(directory) as (plane, lifecycle):
        record = await resolve_tenant(plane, args.tenant)
        tenant = TenantId(record.id)
        source = await lifecycle.keys_for(tenant, now=now()) if keys else None
        path = tenant_path(directory, tenant)
        if not path.is_file():
            raise CliError(f"tenant {tenant} has no database")
        conn = await open_tenant_db(path)
        try:
            await conn.executescript(DDL)  # the webhook tables of an older database
            await ensure_feature_schema(conn)
            yield tenant, conn, source
        except (WebhookError, DestinationRefused) as exc:
            raise CliError(str(exc)) from None
        finally:
            await conn.close()


async def _index(args: argparse.Namespace, tenant: str, conn: aiosqlite.Connection) -> None:
    control = await open_control_connection(data_dir(args) / "control.db")
    try:
        await index_tenant(control, tenant, has_webhooks=bool(await list_webhooks(conn)))
    finally:
        await control.close()


def add_command(args: argparse.Namespace) -> int:
    """``webhook add --tenant T --url URL [--table X]``."""
    policy = DestinationPolicy.from_env(allow_loopback=False, environ=configured_environ(args))

    async def run() -> tuple[Webhook, str]:
        async with _tenant_db(args, keys=True) as (tenant, conn, keys):
            assert keys is not None
            table_id = await resolve_table(conn, args.table) if args.table else None
            await check_destination(policy, args.url)
            hook, secret = await add_webhook(
                conn, tenant, keys, args.url, table_id, now=now(), actor=actor()
            )
            await _index(args, tenant, conn)
            return hook, secret

    hook, secret = asyncio.run(run())
    if args.json:
        print_json({"webhook": webhook_json(hook), "secret": secret})
    else:
        what = f"table {hook.table}" if hook.table else "every table"
        print(f"webhook {hook.id}: {what} -> {hook.url}")
        print("signing secret (shown once; verify Hypertab-Signature with it):")
        print(f"  {secret}", flush=True)
    return EXIT_OK


def list_command(args: argparse.Namespace) -> int:
    """``webhook list --tenant T``."""

    async def run() -> list[Webhook]:
        async with _tenant_db(args, keys=False) as (_, conn, _keys):
            return await list_webhooks(conn)

    hooks = asyncio.run(run())
    if args.json:
        print_json({"webhooks": [webhook_json(h) for h in hooks]})
    elif not hooks:
        print("no webhooks")
    else:
        rows = [
            [h.id, h.table or "*", h.url, "disabled" if h.disabled_at else "active",
             str(h.pending), str(h.delivered), str(h.failed), (h.last_error or "")[:50]]
            for h in hooks
        ]  # fmt: skip
        header = ["ID", "TABLE", "URL", "STATE", "PENDING", "SENT", "FAILED", "LAST ERROR"]
        print(table(rows, header))
    return EXIT_OK


def remove_command(args: argparse.Namespace) -> int:
    """``webhook remove --tenant T ID``."""

    async def run() -> None:
        async with _tenant_db(args, keys=True) as (tenant, conn, keys):
            assert keys is not None
            await remove_webhook(conn, tenant, keys, args.webhook_id, now=now(), actor=actor())
            await _index(args, tenant, conn)

    asyncio.run(run())
    if args.json:
        print_json({"removed": args.webhook_id})
    else:
        print(f"webhook {args.webhook_id} removed")
    return EXIT_OK


def test_command(args: argparse.Namespace) -> int:
    """``webhook test --tenant T ID``: one signed request, now."""
    environ = configured_environ(args)  # the delivery rules serve uses
    policy = DestinationPolicy.from_env(allow_loopback=False, environ=environ)
    retry = RetryPolicy.from_env(environ)

    async def run() -> tuple[str, int | None, str | None]:
        async with _tenant_db(args, keys=True) as (tenant, conn, keys):
            assert keys is not None
            hooks = {h.id: h for h in await list_webhooks(conn)}
            hook = hooks.get(args.webhook_id)
            if hook is None:
                raise CliError(f"no webhook {args.webhook_id!r}")
            secret = await signing_secret(conn, tenant, keys, hook.id)
            sender = Sender(policy, timeout=retry.timeout)
            try:
                result = await send_test(sender, hook, tenant, secret, now())
            finally:
                await sender.aclose()
            if result[2] is None and hook.disabled_at is not None:  # the receiver is back
                await enable_webhook(conn, hook.id, now=now(), actor=actor())
            return result

    event_id, status, error = asyncio.run(run())
    if args.json:
        print_json({"id": event_id, "status": status, "error": error})
    elif error is None:
        print(f"test {event_id}: receiver answered {status}")
    else:
        print(f"test {event_id}: {error}")
    return EXIT_OK if error is None else EXIT_FAILURE
