"""``hypertab audit export|verify|purge``: the audit logs of a data directory.

- ``export --tenant T --format jsonl|csv [--since TS] [--output PATH]``: the tenant's log
  (Pro plan and above; a free tenant gets a clear refusal, exit 1). The export is itself
  recorded (``export``, actor ``cli:<user>``) in the same transaction as the read.
- ``verify (--tenant T | --control)``: checks the hash chain; prints the first broken entry
  and exits 1 when it is broken. Verifying a tenant's log is recorded as ``admin.read``.
- ``purge (--tenant T | --control | --all) [--days N]``: deletes entries older than the
  retention window (``HYPERTAB_AUDIT_RETENTION_DAYS``, default 90); the chain still verifies.

These work while the server runs: every write is one short ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite

from server.audit import events
from server.audit.chain import AuditEntry
from server.audit.export import EXPORT_PLANS, Format
from server.audit.log import (
    append,
    ensure_schema,
    export_lines,
    head,
    purge_expired,
    verify_db,
)
from server.cli.alerts import record_chain_broken
from server.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    CliError,
    Commands,
    UsageError,
    actor,
    add_json_flag,
    control_plane,
    data_dir,
    data_dir_parent,
    now,
    print_json,
    resolve_tenant,
)
from server.control.plane import ControlPlane
from server.control.tenants import TenantRecord
from server.settings import load as load_settings
from server.store.schema import tenant_path


def register(commands: Commands) -> None:
    """Add the ``audit`` group."""
    group = commands.add_parser("audit", help="export, verify and purge the audit logs")
    sub = group.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    parent = data_dir_parent()

    exp = sub.add_parser(
        "export",
        parents=[parent],
        help="export a tenant's audit log (Pro plan and above)",
        description="Write a tenant's audit log as JSON Lines or CSV, with every entry's "
        "prev_hash and hash so the receiver can verify it. Recorded as an 'export' entry.",
    )
    exp.add_argument("--tenant", required=True, help="tenant id or unique name")
    exp.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    exp.add_argument("--since", help="only entries at or after: unix seconds or ISO 8601")
    exp.add_argument("--output", type=Path, help="write to this file (mode 0600), not stdout")
    exp.set_defaults(handler=export_command)

    ver = sub.add_parser(
        "verify",
        parents=[parent],
        help="check an audit log's hash chain",
        description="Check the hash chain of a tenant's or the control audit log. Exit 1 "
        "and the first broken entry's id when an entry was edited, deleted or reordered.",
    )
    which = ver.add_mutually_exclusive_group(required=True)
    which.add_argument("--tenant", help="tenant id or unique name")
    which.add_argument("--control", action="store_true", help="the control database's log")
    add_json_flag(ver)
    ver.set_defaults(handler=verify_command)

    pur = sub.add_parser(
        "purge",
        parents=[parent],
        help="delete audit entries past the retention window",
        description="Delete the entries older than the retention window (default "
        "$HYPERTAB_AUDIT_RETENTION_DAYS, else 90 days). The rest still verifies.",
    )
    scope = pur.add_mutually_exclusive_group(required=True)
    scope.add_argument("--tenant", help="tenant id or unique name")
    scope.add_argument("--control", action="store_true", help="the control database's log")
    scope.add_argument("--all", action="store_true", help="the control log and every tenant's")
    pur.add_argument("--days", type=float, help="retention in days (default: see above)")
    add_json_flag(pur)
    pur.set_defaults(handler=purge_command)


def parse_since(value: str | None) -> float | None:
    """Unix seconds, or an ISO 8601 time (UTC when it has no offset)."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--since {value!r}: give unix seconds or an ISO 8601 time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


@contextlib.asynccontextmanager
async def tenant_log(directory: Path, tenant: TenantRecord) -> AsyncIterator[aiosqlite.Connection]:
    """A connection to the tenant's database, audit tables ensured; always closed."""
    path = tenant_path(directory, tenant.id)
    if not path.exists():
        raise CliError(f"tenant {tenant.id} has no database yet")
    conn = await aiosqlite.connect(path, isolation_level=None)
    try:
        await conn.execute("PRAGMA busy_timeout=5000")
        await ensure_schema(conn)
        yield conn
    finally:
        await conn.close()


async def _record(conn: aiosqlite.Connection, entry: AuditEntry) -> None:
    await append(conn, entry, commit=True)


def export_command(args: argparse.Namespace) -> int:
    """``audit export``."""
    since = parse_since(args.since)
    fmt: Format = args.format

    async def run() -> list[str]:
        directory = data_dir(args)
        async with control_plane(directory) as plane:
            tenant = await resolve_tenant(plane, args.tenant)
        if tenant.plan not in EXPORT_PLANS:
            raise CliError(
                f"audit export needs the Pro plan or above; tenant {tenant.id} is on "
                f"the {tenant.plan.value} plan"
            )
        async with tenant_log(directory, tenant) as conn:
            await conn.execute("BEGIN IMMEDIATE")
            entry = events.export(actor(), fmt, since, "cli", None, now())
            await append(conn, entry, commit=False)  # the read and its record, together
            lines = [line async for line in export_lines(conn, since, fmt)]
            await conn.commit()
        return lines

    lines = asyncio.run(run())
    if args.output is not None:
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            out.writelines(lines)
    else:
        sys.stdout.writelines(lines)
        sys.stdout.flush()
    return EXIT_OK


def verify_command(args: argparse.Namespace) -> int:
    """``audit verify``."""

    async def run() -> tuple[str, int | None, int]:
        directory = data_dir(args)
        async with control_plane(directory) as plane:
            if args.control:
                return "control", *await _verify_control(plane)
            tenant = await resolve_tenant(plane, args.tenant)
        async with tenant_log(directory, tenant) as conn:
            broken = await verify_db(conn)
            last = (await head(conn)).last_id
            details = {"check": "verify", "broken_at": broken}
            await _record(conn, events.admin_read(actor(), "audit_log", now(), details))
        return f"tenant {tenant.id}", broken, last

    name, broken, last = asyncio.run(run())
    if args.json:
        print_json({"log": name, "ok": broken is None, "broken_at": broken, "entries": last})
        return EXIT_OK if broken is None else EXIT_FAILURE
    if broken is not None:
        print(f"audit log of {name}: BROKEN at entry {broken}", flush=True)
        asyncio.run(record_chain_broken(data_dir(args), name, broken))  # raises an alert
        return EXIT_FAILURE
    print(f"audit log of {name}: ok ({last} entries chained)", flush=True)
    return EXIT_OK


async def _verify_control(plane: ControlPlane) -> tuple[int | None, int]:
    async with plane.transaction() as conn:  # a consistent view; nothing is written
        return await verify_db(conn), (await head(conn)).last_id


def purge_command(args: argparse.Namespace) -> int:
    """``audit purge``."""
    days: float = args.days if args.days is not None else load_settings().audit_retention_days
    if days <= 0:
        raise UsageError("--days must be positive")

    async def run() -> list[tuple[str, int]]:
        directory = data_dir(args)
        at = now()
        done: list[tuple[str, int]] = []
        async with control_plane(directory) as plane:
            if args.control or args.all:
                async with plane.transaction() as conn:
                    done.append(("control", await purge_expired(conn, at, days)))
            if args.all:
                tenants = await plane.list_tenants()
            elif args.tenant:
                tenants = [await resolve_tenant(plane, args.tenant)]
            else:
                tenants = []
        for tenant in tenants:
            if not tenant_path(directory, tenant.id).exists():
                continue
            async with tenant_log(directory, tenant) as conn:
                done.append((f"tenant {tenant.id}", await purge_expired(conn, at, days)))
        return done

    done = asyncio.run(run())
    if args.json:
        print_json({"days": days, "purged": [{"log": n, "entries": c} for n, c in done]})
    for name, count in [] if args.json else done:
        print(f"{name}: {count} entries older than {days:g} days purged", flush=True)
    return EXIT_OK
