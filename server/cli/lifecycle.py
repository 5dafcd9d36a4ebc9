"""``hypertab tenant export|import|delete|rotate-key``: the tenant data lifecycle.

These act on the data directory's files directly (``control.db``, ``tenants/<id>.db``) and
are safe while a server runs on it: the export copies the database with SQLite's backup
API, and a deletion reaches the running hub through its ``control.db`` watcher (the
tenant's sockets are closed with 4003 and its store is closed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from server.auth.principal import TenantId
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
    issued_json,
    now,
    print_json,
    print_secret_notice,
    resolve_tenant,
    stderr,
    tenant_json,
)
from server.control.plane import ControlPlane
from server.lifecycle.archive_errors import ArchiveError, ExportError
from server.lifecycle.provision import ensure_feature_schema, open_tenant_db
from server.lifecycle.rotation import rotate_tenant_key
from server.lifecycle.service import Lifecycle
from server.secrets.errors import SecretsError
from server.store.schema import tenant_path


@contextlib.asynccontextmanager
async def lifecycle_of(directory: Path) -> AsyncIterator[tuple[ControlPlane, Lifecycle]]:
    """The control plane and lifecycle service of ``directory``; errors become CliErrors."""
    async with control_plane(directory) as plane:
        try:
            lifecycle = await Lifecycle.open(directory, plane)
        except SecretsError as exc:
            raise CliError(str(exc)) from None
        try:
            yield plane, lifecycle
        except (SecretsError, ExportError, ArchiveError) as exc:
            raise CliError(str(exc)) from None
        finally:
            await lifecycle.close()


def register_tenant_actions(sub: Commands) -> None:
    """Add ``export``, ``import``, ``delete`` and ``rotate-key`` to the ``tenant`` group."""
    parent = data_dir_parent()

    export = sub.add_parser(
        "export",
        parents=[parent],
        help="export a tenant's data (secrets excluded); audited",
        description="Write a portable archive: manifest, a consistent SQLite copy (backup "
        "API, safe while the server runs; secrets emptied) and every table as JSON and CSV. "
        "OUT ending in .tar.gz makes one file, otherwise a new directory.",
    )
    export.add_argument("tenant", metavar="T", help="tenant id or name")
    export.add_argument("out", type=Path, metavar="OUT", help="directory or .tar.gz to create")
    add_json_flag(export)
    export.set_defaults(handler=export_command)

    imp = sub.add_parser(
        "import",
        parents=[parent],
        help="import an export archive as a new tenant",
        description="Create a new tenant (new id, new admin key, new data key) holding the "
        "archive's tables with the same ids, names, columns, rows and order keys.",
    )
    imp.add_argument("archive", type=Path, metavar="ARCHIVE", help="export directory or .tar.gz")
    imp.add_argument("--name", metavar="N", help="tenant name (default: the exported one)")
    add_json_flag(imp)
    imp.set_defaults(handler=import_command, creates_data_dir=True)

    delete = sub.add_parser(
        "delete",
        parents=[parent],
        help="delete a tenant (keys, sockets, database, data keys) with a signed certificate",
        description="Revoke the tenant's keys and close its sockets, shred its data keys, "
        "delete its database files and write a deletion certificate signed with the "
        "server's Ed25519 key. Security audit entries are kept for the retention window.",
    )
    delete.add_argument("tenant", metavar="T", help="tenant id or name")
    delete.add_argument(
        "--certificate",
        type=Path,
        metavar="OUT",
        help="write the certificate here (default: DATA_DIR/certificates/<tenant>.json)",
    )
    delete.add_argument(
        "--yes", action="store_true", help="do not ask (needed when no terminal can answer)"
    )
    add_json_flag(delete)
    delete.set_defaults(handler=delete_command)

    rotate = sub.add_parser(
        "rotate-key",
        parents=[parent],
        help="rotate a tenant's data key and re-encrypt its secrets",
    )
    rotate.add_argument("tenant", metavar="T", help="tenant id or name")
    add_json_flag(rotate)
    rotate.set_defaults(handler=rotate_command)


def export_command(args: argparse.Namespace) -> int:
    """``tenant export T OUT``."""

    from server.lifecycle.export import export_tenant  # tarfile: not in every command

    async def run() -> int:
        directory = data_dir(args)
        async with lifecycle_of(directory) as (plane, _):
            record = await resolve_tenant(plane, args.tenant)
            manifest = await export_tenant(
                plane, directory, record, args.out, now=now(), actor=actor()
            )
        tables = manifest["tables"]
        if args.json:
            print_json({"tenant": tenant_json(record), "out": str(args.out), "tables": tables})
        else:
            print(f"exported tenant {record.id}: {len(tables)} table(s) to {args.out}")
        return EXIT_OK

    return asyncio.run(run())


def import_command(args: argparse.Namespace) -> int:
    """``tenant import ARCHIVE [--name N]``."""
    from server.lifecycle.importer import import_tenant  # tarfile: not in every command

    async def run() -> int:
        async with lifecycle_of(data_dir(args)) as (_, lifecycle):
            at = now()
            record, issued, manifest = await import_tenant(
                lifecycle, args.archive, name=args.name, now=at, actor=actor()
            )
        if args.json:
            print_json(
                {
                    "tenant": tenant_json(record),
                    "key": issued_json(issued, at),
                    "tables": manifest["tables"],
                }
            )
        else:
            print(f"imported {len(manifest['tables'])} table(s) as tenant {record.id}")
            print_secret_notice(issued)
        return EXIT_OK

    return asyncio.run(run())


def delete_command(args: argparse.Namespace) -> int:
    """``tenant delete T [--certificate OUT] [--yes]``: asks first unless ``--yes``."""

    async def run() -> int:
        async with lifecycle_of(data_dir(args)) as (plane, lifecycle):
            record = await resolve_tenant(plane, args.tenant)
            if not args.yes:
                confirm_deletion(record.id, record.name)
            result = await lifecycle.delete_tenant(
                TenantId(record.id), now=now(), actor=actor(), certificate_out=args.certificate
            )
        payload = result.certificate["payload"]
        if args.json:
            print_json(
                {
                    "tenant": tenant_json(result.tenant),
                    "certificate": str(result.path),
                    "certificate_id": payload["certificate_id"],
                    "items": len(payload["items"]),
                }
            )
        else:
            print(f"deleted tenant {record.id}; certificate: {result.path}")
            stderr("verify with: hypertab certificate verify " + str(result.path))
        return EXIT_OK

    return asyncio.run(run())


def confirm_deletion(tenant: str, name: str) -> None:
    """Ask on the terminal to type the tenant's name; refuse when no terminal can answer."""
    if not sys.stdin.isatty():
        raise UsageError(
            f"refusing to delete tenant {tenant} without confirmation: no terminal to ask; "
            "pass --yes to delete it"
        )
    prompt = (
        f"delete tenant {tenant} ({name!r}): its database, keys and secrets, for good.\n"
        f"type its name to confirm: "
    )
    try:
        answer = input(prompt)
    except EOFError:
        answer = ""
    if answer.strip() != name:
        raise CliError(f"not confirmed; tenant {tenant} was not deleted")


def rotate_command(args: argparse.Namespace) -> int:
    """``tenant rotate-key T``."""

    async def run() -> int:
        directory = data_dir(args)
        async with lifecycle_of(directory) as (plane, lifecycle):
            record = await resolve_tenant(plane, args.tenant)
            tenant = TenantId(record.id)
            datakeys = await lifecycle.keys_for(tenant, now=now())
            conn = await open_tenant_db(tenant_path(directory, tenant))
            try:
                await ensure_feature_schema(conn)
                result = await rotate_tenant_key(datakeys, conn, tenant, now=now())
            finally:
                await conn.close()
        if args.json:
            print_json(
                {
                    "tenant": record.id,
                    "key_version": result.version,
                    "reencrypted": result.reencrypted,
                    "destroyed_versions": result.destroyed,
                }
            )
        else:
            print(
                f"tenant {record.id}: data key version {result.version}; "
                f"{result.reencrypted} secret(s) re-encrypted; "
                f"{len(result.destroyed)} old version(s) shredded"
            )
        return EXIT_OK

    return asyncio.run(run())
