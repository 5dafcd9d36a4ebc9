"""``hypertab key create|list|revoke|rotate|update``: API keys of a tenant.

Revocations, rotations and updates reach a running server through its ``control.db``
watcher: the old key's sockets are closed (or narrowed) within a fraction of a second, on
every node.
"""

from __future__ import annotations

import argparse
import asyncio

from server.auth.principal import ALL_SCOPES, KeyId, Scope
from server.cli.common import (
    EXIT_OK,
    CliError,
    Commands,
    UsageError,
    actor,
    add_json_flag,
    control_plane,
    data_dir,
    data_dir_parent,
    iso,
    issued_json,
    key_json,
    key_status,
    now,
    print_json,
    print_secret_notice,
    resolve_tenant,
    table,
)
from server.control.errors import KeyNotRotatable, WouldWiden

DEFAULT_SCOPES = (Scope.TABLES_READ, Scope.TABLES_WRITE)


def register(commands: Commands) -> None:
    """Add the ``key`` group."""
    group = commands.add_parser("key", help="create, list, revoke and rotate API keys")
    sub = group.add_subparsers(dest="key_command", metavar="ACTION", required=True)
    parent = data_dir_parent()

    create = sub.add_parser(
        "create",
        parents=[parent],
        help="create an API key (shown once)",
        description="Create an API key for a tenant and print it. It is shown once: only "
        "its hash is stored.",
    )
    create.add_argument("--tenant", required=True, metavar="T", help="tenant id or name")
    create.add_argument("--name", required=True, metavar="N", help="key name (for people)")
    create.add_argument(
        "--scope",
        action="append",
        choices=[s.value for s in Scope],
        metavar="S",
        help="grant a scope; repeat for several (default: tables:read tables:write); one of: "
        + ", ".join(s.value for s in Scope),
    )
    create.add_argument(
        "--table",
        action="append",
        metavar="X",
        help="restrict the key to this table id; repeat for several (default: all tables)",
    )
    create.add_argument(
        "--expires-in", type=float, metavar="SECONDS", help="expire after SECONDS (default: never)"
    )
    create.add_argument(
        "--rate",
        type=int,
        metavar="OPS",
        help="hold the key to OPS ops per minute when tighter than the plan (agent keys)",
    )
    add_json_flag(create)
    create.set_defaults(handler=create_key)

    listing = sub.add_parser(
        "list", parents=[parent], help="list a tenant's keys (ids and metadata, never secrets)"
    )
    listing.add_argument("--tenant", required=True, metavar="T", help="tenant id or name")
    add_json_flag(listing)
    listing.set_defaults(handler=list_keys)

    revoke = sub.add_parser(
        "revoke", parents=[parent], help="revoke a key; its open connections are closed"
    )
    revoke.add_argument("key_id", metavar="KEY_ID")
    add_json_flag(revoke)
    revoke.set_defaults(handler=revoke_key)

    rotate = sub.add_parser(
        "rotate",
        parents=[parent],
        help="replace a key by a new one with the same grants (old one revoked)",
    )
    rotate.add_argument("key_id", metavar="KEY_ID")
    add_json_flag(rotate)
    rotate.set_defaults(handler=rotate_key)

    update = sub.add_parser(
        "update",
        parents=[parent],
        help="narrow a key's scopes (never widen); its open connections narrow at once",
        description="Set a key's scopes to the ones given, which must all be scopes it "
        "already has: a key can be narrowed in place, never widened (create a new key for "
        "more). Open connections of the key lose the dropped scopes at once, on every node.",
    )
    update.add_argument("key_id", metavar="KEY_ID")
    update.add_argument(
        "--scope",
        action="append",
        required=True,
        choices=[s.value for s in Scope],
        metavar="S",
        help="a scope the key keeps; repeat for several; one of: "
        + ", ".join(s.value for s in Scope),
    )
    add_json_flag(update)
    update.set_defaults(handler=update_key)


def create_key(args: argparse.Namespace) -> int:
    """``key create``."""
    expires_in: float | None = args.expires_in
    if expires_in is not None and not expires_in > 0:
        raise UsageError("--expires-in must be a positive number of seconds")
    scopes = [Scope(s) for s in args.scope] if args.scope else list(DEFAULT_SCOPES)
    rate: int | None = args.rate
    if rate is not None and rate < 1:
        raise UsageError("--rate must be a positive number of ops per minute")

    async def run() -> int:
        async with control_plane(data_dir(args)) as plane:
            tenant = await resolve_tenant(plane, args.tenant)
            at = now()
            issued = await plane.create_key(
                tenant.id,
                args.name,
                scopes,
                tables=args.table,
                expires_at=at + expires_in if expires_in is not None else None,
                created_by=actor(),
                now=at,
                rate=rate,
            )
        if args.json:
            print_json({"key": issued_json(issued, at)})
        else:
            record = issued.record
            scope_text = " ".join(sorted(s.value for s in record.scopes))
            print(f"key {record.id} {record.name!r} for tenant {tenant.id} ({scope_text})")
            if record.expires_at is not None:
                print(f"expires {iso(record.expires_at)}")
            if record.rate is not None:
                print(f"rate {record.rate} ops/minute")
            print_secret_notice(issued)
        return EXIT_OK

    return asyncio.run(run())


def list_keys(args: argparse.Namespace) -> int:
    """``key list``."""

    async def run() -> int:
        async with control_plane(data_dir(args)) as plane:
            tenant = await resolve_tenant(plane, args.tenant)
            keys = await plane.list_keys(tenant.id)
        at = now()
        if args.json:
            print_json({"tenant": tenant.id, "keys": [key_json(k, at) for k in keys]})
        elif not keys:
            print(f"tenant {tenant.id} has no keys")
        else:
            rows = [
                [
                    k.id,
                    k.name,
                    key_status(k, at),
                    "all"
                    if k.scopes == ALL_SCOPES
                    else ",".join(sorted(s.value for s in k.scopes)),
                    iso(k.created_at) or "",
                    iso(k.last_used_at) or "-",
                ]
                for k in keys
            ]
            print(table(rows, ["ID", "NAME", "STATUS", "SCOPES", "CREATED", "LAST USED"]))
        return EXIT_OK

    return asyncio.run(run())


def revoke_key(args: argparse.Namespace) -> int:
    """``key revoke KEY_ID``: idempotent."""

    async def run() -> int:
        async with control_plane(data_dir(args)) as plane:
            before = await plane.get_key(KeyId(args.key_id))
            if before is None:
                raise CliError(f"no key {args.key_id!r}")
            at = now()
            record = await plane.revoke_key(before.id, now=at, actor=actor())
        already = before.revoked_at is not None
        if args.json:
            print_json({"key": key_json(record, at), "already_revoked": already})
        elif already:
            print(f"key {record.id} was already revoked ({iso(record.revoked_at)})")
        else:
            print(f"revoked key {record.id} {record.name!r} of tenant {record.tenant}")
        return EXIT_OK

    return asyncio.run(run())


def rotate_key(args: argparse.Namespace) -> int:
    """``key rotate KEY_ID``: a new key with the same grants; the old one is revoked."""

    async def run() -> int:
        async with control_plane(data_dir(args)) as plane:
            old = await plane.get_key(KeyId(args.key_id))
            if old is None:
                raise CliError(f"no key {args.key_id!r}")
            at = now()
            if not old.is_live(at):
                raise CliError(f"key {old.id} is {key_status(old, at)}: create a new key instead")
            issued = await plane.rotate_key(old.id, now=at, created_by=actor())
        if args.json:
            print_json({"key": issued_json(issued, at), "revoked": old.id})
        else:
            print(f"revoked key {old.id}; replaced by key {issued.record.id} {old.name!r}")
            print_secret_notice(issued)
        return EXIT_OK

    return asyncio.run(run())


def update_key(args: argparse.Namespace) -> int:
    """``key update KEY_ID --scope S...``: narrow a key's scopes."""

    async def run() -> int:
        async with control_plane(data_dir(args)) as plane:
            before = await plane.get_key(KeyId(args.key_id))
            if before is None:
                raise CliError(f"no key {args.key_id!r}")
            at = now()
            try:
                record = await plane.update_key_scopes(before.id, args.scope, now=at, actor=actor())
            except WouldWiden as exc:
                raise CliError(f"{exc}: a key can only be narrowed; create a new key") from None
            except KeyNotRotatable:
                raise CliError(f"key {before.id} is {key_status(before, at)}") from None
        if args.json:
            print_json({"key": key_json(record, at)})
        else:
            scope_text = " ".join(sorted(s.value for s in record.scopes))
            print(f"key {record.id} {record.name!r} now has: {scope_text}")
        return EXIT_OK

    return asyncio.run(run())
