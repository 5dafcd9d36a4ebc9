"""``hypertab tenant origins TENANT [--add URL] [--remove URL] [--json]``.

Shows, and with ``--add`` / ``--remove`` changes, the browser origins allowed to open
WebSockets for a tenant (on top of the server-wide ``HYPERTAB_ALLOWED_ORIGINS``). Changes
apply to the next handshake of a running server at once; open sockets are not closed.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from server.cli.common import (
    EXIT_OK,
    add_json_flag,
    control_plane,
    data_dir,
    now,
    print_json,
    resolve_tenant,
)
from server.control.origins import TenantOrigins


def register_origins(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Add ``tenant origins`` to the ``tenant`` group's subcommands ``sub``."""
    origins = sub.add_parser(
        "origins",
        parents=[parent],
        help="show or change a tenant's allowed browser origins",
        description="Show the browser origins (scheme://host[:port], matched exactly) "
        "allowed to connect for a tenant; --add and --remove change the list.",
    )
    origins.add_argument("tenant", metavar="TENANT", help="tenant id or name")
    origins.add_argument(
        "--add", action="append", default=[], metavar="URL", help="allow an origin (repeatable)"
    )
    origins.add_argument(
        "--remove", action="append", default=[], metavar="URL", help="disallow (repeatable)"
    )
    add_json_flag(origins)
    origins.set_defaults(handler=tenant_origins)


def tenant_origins(args: argparse.Namespace) -> int:
    """``tenant origins TENANT``."""

    async def run() -> int:
        async with control_plane(data_dir(args)) as plane:
            tenant = await resolve_tenant(plane, args.tenant)
            store = await TenantOrigins.open(plane)
            if args.add or args.remove:
                listed = await store.change(tenant.id, add=args.add, remove=args.remove, now=now())
            else:
                listed = await store.of_tenant(tenant.id)
        if args.json:
            print_json({"tenant": tenant.id, "origins": listed})
        elif not listed:
            print(f"tenant {tenant.id} allows no browser origins of its own")
        else:
            print("\n".join(listed))
        return EXIT_OK

    return asyncio.run(run())
