"""``hypertab keyring generate|list|rotate|remove``: the master keys.

Key material is never printed: commands show key ids, the key file path and counts. The key
file is ``$HYPERTAB_KEY_FILE``, else ``DATA_DIR/master.keys`` (``--key-file`` overrides).
Running hubs re-read a changed key file, so ``rotate`` needs no restart.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from server.cli.common import (
    EXIT_OK,
    CliError,
    Commands,
    actor,
    add_json_flag,
    data_dir,
    data_dir_parent,
    print_json,
)
from server.lifecycle.controldb import open_control_connection, shred_only_keyring
from server.lifecycle.keysource import key_file_path
from server.lifecycle.rotation import remove_master_key, rotate_master_key
from server.secrets.datakeys import DataKeyStore
from server.secrets.errors import SecretsError
from server.secrets.keyring import ENV_MASTER_KEYS, generate_key_file, load_key_file


def register(commands: Commands) -> None:
    """Add the ``keyring`` group."""
    group = commands.add_parser("keyring", help="generate, rotate and remove master keys")
    sub = group.add_subparsers(dest="keyring_command", metavar="ACTION", required=True)
    parent = data_dir_parent()
    parent.add_argument(
        "--key-file",
        type=Path,
        metavar="PATH",
        help="master key file (default: $HYPERTAB_KEY_FILE, else DATA_DIR/master.keys)",
    )

    gen = sub.add_parser("generate", parents=[parent], help="create a new key file (0600)")
    add_json_flag(gen)
    gen.set_defaults(handler=generate_command, creates_data_dir=True)

    listing = sub.add_parser("list", parents=[parent], help="key ids, current key, usage")
    add_json_flag(listing)
    listing.set_defaults(handler=list_command)

    rotate = sub.add_parser(
        "rotate",
        parents=[parent],
        help="add a master key and re-wrap every tenant data key under it",
        description="Appends a new master key (now current) and re-wraps every tenant data "
        "key under it; secrets are not touched. Then `keyring remove OLD_ID` may drop the "
        "old key.",
    )
    add_json_flag(rotate)
    rotate.set_defaults(handler=rotate_command)

    remove = sub.add_parser(
        "remove", parents=[parent], help="remove an old master key (refused while in use)"
    )
    remove.add_argument("key_id", metavar="KEY_ID")
    add_json_flag(remove)
    remove.set_defaults(handler=remove_command)


def _key_file(args: argparse.Namespace) -> Path:
    explicit: Path | None = args.key_file
    return explicit if explicit is not None else key_file_path(data_dir(args))


def _refuse_inline(args: argparse.Namespace) -> None:
    if os.environ.get(ENV_MASTER_KEYS) and args.key_file is None:
        raise CliError(
            f"{ENV_MASTER_KEYS} is set, so there is no key file to change: append a new "
            "id:key entry to it (last = current) and restart (see docs/secrets.md)"
        )


def generate_command(args: argparse.Namespace) -> int:
    """``keyring generate``."""
    path = _key_file(args)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        key_id = generate_key_file(path)
    except SecretsError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print_json({"key_file": str(path), "key_id": key_id})
    else:
        print(f"master key {key_id} written to {path} (mode 0600); back it up offline")
    return EXIT_OK


async def _in_use(directory: Path) -> set[str]:
    if not (directory / "control.db").exists():
        return set()
    conn = await open_control_connection(directory / "control.db")
    try:
        store = DataKeyStore(conn, shred_only_keyring())
        await store.ensure_schema()
        return await store.master_keys_in_use()
    finally:
        await conn.close()


def list_command(args: argparse.Namespace) -> int:
    """``keyring list``."""
    _refuse_inline(args)
    path = _key_file(args)
    try:
        ring = load_key_file(path)
    except SecretsError as exc:
        raise CliError(str(exc)) from None
    in_use = asyncio.run(_in_use(data_dir(args)))
    keys = [{"id": k, "current": k == ring.current.key_id, "in_use": k in in_use} for k in ring.ids]
    if args.json:
        print_json({"key_file": str(path), "keys": keys})
    else:
        for key in keys:
            flags = [f for f in ("current", "in_use") if key[f]]
            print(f"{key['id']}  {' '.join(flags)}".rstrip())
    return EXIT_OK


def rotate_command(args: argparse.Namespace) -> int:
    """``keyring rotate``."""
    _refuse_inline(args)
    path = _key_file(args)
    directory = data_dir(args)

    async def run() -> tuple[str, int]:
        directory.mkdir(parents=True, exist_ok=True)
        conn = await open_control_connection(directory / "control.db")
        try:
            await DataKeyStore(conn, shred_only_keyring()).ensure_schema()
            result = await rotate_master_key(path, conn, actor=actor())
        finally:
            await conn.close()
        return result.key_id, result.rewrapped

    try:
        key_id, count = asyncio.run(run())
    except SecretsError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print_json({"key_file": str(path), "key_id": key_id, "rewrapped": count})
    else:
        print(f"master key {key_id} is now current; {count} data key(s) re-wrapped")
    return EXIT_OK


def remove_command(args: argparse.Namespace) -> int:
    """``keyring remove KEY_ID``."""
    _refuse_inline(args)
    path = _key_file(args)
    directory = data_dir(args)

    async def run() -> None:
        conn = await open_control_connection(directory / "control.db")
        try:
            store = DataKeyStore(conn, shred_only_keyring())
            await store.ensure_schema()
            await remove_master_key(path, args.key_id, conn, load_key_file(path))
        finally:
            await conn.close()

    try:
        asyncio.run(run())
    except SecretsError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print_json({"key_file": str(path), "removed": args.key_id})
    else:
        print(f"master key {args.key_id} removed from {path}")
    return EXIT_OK
