"""``hypertab secret set|list|reveal|delete``: a tenant's encrypted secrets.

Values are read from stdin (a prompt without echo on a terminal), never from the command
line, where shell history and ``ps`` would keep them. ``reveal`` prints the value and is
audited (``secret.read``) like a reveal over the WebSocket.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from server.audit import events
from server.auth.principal import TenantId
from server.cli.common import (
    EXIT_OK,
    CliError,
    Commands,
    UsageError,
    actor,
    add_json_flag,
    data_dir,
    data_dir_parent,
    iso,
    now,
    print_json,
    resolve_tenant,
    table,
)
from server.cli.lifecycle import lifecycle_of
from server.lifecycle import secret_ops
from server.lifecycle.provision import ensure_feature_schema, open_tenant_db
from server.secrets.errors import DecryptionError, InvalidSecretError, SecretNotFoundError
from server.secrets.store import MAX_VALUE_BYTES, SecretInfo, SecretKind
from server.store.schema import tenant_path


def register(commands: Commands) -> None:
    """Add the ``secret`` group."""
    group = commands.add_parser("secret", help="set, list, reveal and delete tenant secrets")
    sub = group.add_subparsers(dest="secret_command", metavar="ACTION", required=True)
    parent = data_dir_parent()

    def leaf(name: str, help_text: str) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, parents=[parent], help=help_text)
        parser.add_argument("--tenant", required=True, metavar="T", help="tenant id or name")
        return parser

    setter = leaf("set", "create or replace a secret; the value is read from stdin")
    setter.add_argument("name", metavar="NAME")
    setter.add_argument(
        "--kind", choices=[k.value for k in SecretKind], default=SecretKind.ENV_VAR.value
    )
    # Accepted only to refuse it without echoing it (argparse would print unknown args).
    setter.add_argument("value", nargs="*", help=argparse.SUPPRESS)
    add_json_flag(setter)
    setter.set_defaults(handler=set_command)

    listing = leaf("list", "list secrets: names, kinds, masked values")
    add_json_flag(listing)
    listing.set_defaults(handler=list_command)

    reveal = leaf("reveal", "print a secret's value (audited as secret.read)")
    reveal.add_argument("name", metavar="NAME")
    add_json_flag(reveal)
    reveal.set_defaults(handler=reveal_command)

    delete = leaf("delete", "delete a secret")
    delete.add_argument("name", metavar="NAME")
    add_json_flag(delete)
    delete.set_defaults(handler=delete_command)


def _read_value() -> str:
    if sys.stdin.isatty():
        return getpass.getpass("secret value (not echoed): ")
    data = sys.stdin.buffer.read(MAX_VALUE_BYTES * 4 + 2)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError("the value on stdin is not UTF-8") from None
    # One trailing newline comes from `echo` or a file; it is not part of the value.
    if text.endswith("\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith("\n") else text


async def _with_tenant_db(args: argparse.Namespace, op: str, value: str | None = None) -> object:
    directory = data_dir(args)
    async with lifecycle_of(directory) as (plane, lifecycle):
        record = await resolve_tenant(plane, args.tenant)
        tenant = TenantId(record.id)
        at = now()
        keys = await lifecycle.keys_for(tenant, now=at)
        conn = await open_tenant_db(tenant_path(directory, tenant))
        try:
            await ensure_feature_schema(conn)
            if op == "set":
                assert value is not None
                return await secret_ops.set_secret(
                    conn, tenant, keys, args.name, args.kind, value, now=at, actor=actor()
                )
            if op == "list":
                return await secret_ops.list_secrets(conn, tenant, keys)
            if op == "reveal":
                # An operator reading a tenant's secret: on the control log too, before the
                # value is read, which raises an admin_read alert (docs/alerts.md).
                entry = events.admin_read(
                    actor(), tenant, at, {"what": "secret_reveal", "secret": args.name}
                )
                await events.record_control_event(plane, entry)
                _, revealed = await secret_ops.reveal_secret(
                    conn, tenant, keys, args.name, now=at, actor=actor()
                )
                return revealed
            await secret_ops.delete_secret(conn, tenant, keys, args.name, now=at, actor=actor())
            return None
        except (InvalidSecretError, SecretNotFoundError) as exc:
            raise CliError(str(exc)) from None
        except DecryptionError:
            raise CliError(
                "the stored secret did not authenticate (tampered or moved); no value"
            ) from None
        finally:
            await conn.close()


def set_command(args: argparse.Namespace) -> int:
    """``secret set --tenant T NAME [--kind K]`` with the value on stdin."""
    if args.value:
        raise UsageError(
            "never pass a secret value on the command line (shell history, ps); "
            "pipe it on stdin: ... | hypertab secret set --tenant T NAME"
        )
    value = _read_value()
    if not value.strip():
        raise UsageError(
            "refusing an empty secret value (nothing on stdin?); pipe the value in: "
            "... | hypertab secret set --tenant T NAME"
        )
    info = asyncio.run(_with_tenant_db(args, "set", value))
    assert isinstance(info, SecretInfo)
    if args.json:
        print_json({"name": info.name, "kind": info.kind.value, "masked": info.masked})
    else:
        print(f"secret {info.name} stored ({info.kind.value}, {info.masked})")
    return EXIT_OK


def list_command(args: argparse.Namespace) -> int:
    """``secret list --tenant T``."""
    infos = asyncio.run(_with_tenant_db(args, "list"))
    assert isinstance(infos, list)
    if args.json:
        print_json(
            {
                "secrets": [
                    {
                        "name": i.name,
                        "kind": i.kind.value,
                        "masked": i.masked,
                        "key_version": i.key_version,
                        "created_at": iso(i.created_at),
                        "updated_at": iso(i.updated_at),
                    }
                    for i in infos
                ]
            }
        )
    elif not infos:
        print("no secrets")
    else:
        rows = [[i.name, i.kind.value, i.masked, iso(i.updated_at) or ""] for i in infos]
        print(table(rows, ["NAME", "KIND", "VALUE", "UPDATED"]))
    return EXIT_OK


def reveal_command(args: argparse.Namespace) -> int:
    """``secret reveal --tenant T NAME``: the value alone on stdout."""
    value = asyncio.run(_with_tenant_db(args, "reveal"))
    if args.json:
        print_json({"name": args.name, "value": value})
        return EXIT_OK
    sys.stdout.write(f"{value}\n")
    sys.stdout.flush()
    return EXIT_OK


def delete_command(args: argparse.Namespace) -> int:
    """``secret delete --tenant T NAME``."""
    asyncio.run(_with_tenant_db(args, "delete"))
    if args.json:
        print_json({"deleted": args.name})
    else:
        print(f"secret {args.name} deleted")
    return EXIT_OK
