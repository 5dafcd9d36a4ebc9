"""``hypertab tenant create|list|origins``: tenants in the data directory's ``control.db``."""

from __future__ import annotations

import argparse
import asyncio

from server.audit.events import record_control_event
from server.auth.principal import Plan, TenantId
from server.cli.common import (
    EXIT_OK,
    Commands,
    actor,
    add_json_flag,
    control_plane,
    data_dir,
    data_dir_parent,
    iso,
    issued_json,
    now,
    print_json,
    print_secret_notice,
    resolve_tenant,
    table,
    tenant_json,
)
from server.cli.lifecycle import lifecycle_of, register_tenant_actions
from server.cli.origins import register_origins
from server.control.audit_entries import tenant_plan_changed


def register(commands: Commands) -> None:
    """Add the ``tenant`` group."""
    group = commands.add_parser("tenant", help="create and list tenants")
    sub = group.add_subparsers(dest="tenant_command", metavar="ACTION", required=True)
    parent = data_dir_parent()

    create = sub.add_parser(
        "create",
        parents=[parent],
        help="create a tenant and its first (admin) API key",
        description="Create a tenant with its own database and print its first API key, "
        "which has every scope. The key is shown once: only its hash is stored.",
    )
    create.add_argument("name", help="display name (1-100 characters)")
    create.add_argument(
        "--plan", choices=[p.value for p in Plan], default=Plan.FREE.value, help="default: free"
    )
    add_json_flag(create)
    create.set_defaults(handler=create_tenant, creates_data_dir=True)

    listing = sub.add_parser("list", parents=[parent], help="list live tenants")
    add_json_flag(listing)
    listing.set_defaults(handler=list_tenants)

    plan = sub.add_parser(
        "plan",
        parents=[parent],
        help="change a tenant's plan (rate limits, features); audited",
        description="Set a tenant's plan. Its rate limits change at the next check of each "
        "key's window, on a running server too. Recorded as tenant.plan_changed.",
    )
    plan.add_argument("tenant", metavar="T", help="tenant id or name")
    plan.add_argument(
        "plan",
        metavar="PLAN",
        choices=[p.value for p in Plan],
        help="one of: " + ", ".join(p.value for p in Plan),
    )
    add_json_flag(plan)
    plan.set_defaults(handler=set_plan)

    register_origins(sub, parent)
    register_tenant_actions(sub)  # export, import, delete, rotate-key (server/cli/lifecycle.py)


def create_tenant(args: argparse.Namespace) -> int:
    """``tenant create NAME``."""

    async def run() -> int:
        async with lifecycle_of(data_dir(args)) as (_, lifecycle):
            at = now()  # provisioning: database, data key, admin key, audit, all or nothing
            tenant, issued = await lifecycle.create_tenant(
                args.name, Plan(args.plan), now=at, actor=actor()
            )
        if args.json:
            print_json({"tenant": tenant_json(tenant), "key": issued_json(issued, at)})
        else:
            print(f"tenant {tenant.id} ({tenant.name!r}, plan {tenant.plan.value})")
            print_secret_notice(issued)
        return EXIT_OK

    return asyncio.run(run())


def list_tenants(args: argparse.Namespace) -> int:
    """``tenant list``."""

    async def run() -> int:
        async with control_plane(data_dir(args)) as plane:
            tenants = await plane.list_tenants()
        if args.json:
            print_json({"tenants": [tenant_json(t) for t in tenants]})
        elif not tenants:
            print("no tenants")
        else:
            rows = [[t.id, t.name, t.plan.value, iso(t.created_at) or ""] for t in tenants]
            print(table(rows, ["ID", "NAME", "PLAN", "CREATED"]))
        return EXIT_OK

    return asyncio.run(run())


def set_plan(args: argparse.Namespace) -> int:
    """``tenant plan T PLAN``."""

    async def run() -> int:
        async with control_plane(data_dir(args)) as plane:
            before = await resolve_tenant(plane, args.tenant)
            record = await plane.set_plan(TenantId(before.id), Plan(args.plan))
            await record_control_event(
                plane,
                tenant_plan_changed(
                    record.id, before.plan.value, record.plan.value, actor(), now()
                ),
            )
        if args.json:
            print_json({"tenant": tenant_json(record), "previous_plan": before.plan.value})
        else:
            print(f"tenant {record.id}: plan {before.plan.value} -> {record.plan.value}")
        return EXIT_OK

    return asyncio.run(run())
