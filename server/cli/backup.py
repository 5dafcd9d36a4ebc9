"""``hypertab backup DIR``, ``hypertab backup verify DIR``, ``hypertab restore DIR``.

``backup`` is safe while ``hypertab serve`` writes to the same data directory (SQLite's
online backup API, one read snapshot per database). ``restore`` only writes into an empty
data directory. All three need the master keys (``HYPERTAB_MASTER_KEYS`` or the key file)
and the tenant key store (``--key-store``, ``HYPERTAB_TENANT_KEY_STORE``, else
``tenant-keys.json`` next to the master key file). See docs/operations.md.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from server.backup import keystore
from server.backup.errors import BackupError
from server.backup.restore import restore_backup
from server.backup.take import ensure_tenant_keys, take_backup
from server.backup.verify import verify_backup
from server.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    CliError,
    Commands,
    UsageError,
    add_json_flag,
    data_dir,
    data_dir_parent,
    environment,
    iso,
    now,
    print_json,
)
from server.lifecycle.keysource import KeySource, key_file_path
from server.secrets.errors import SecretsError
from server.secrets.keyring import Keyring


def register(commands: Commands) -> None:
    """Add ``backup`` (with ``backup verify``) and ``restore``."""
    parent = data_dir_parent()
    parent.add_argument(
        "--key-store",
        type=Path,
        metavar="FILE",
        help="the tenant key store (default: $HYPERTAB_TENANT_KEY_STORE, else "
        "tenant-keys.json next to the master key file)",
    )
    backup = commands.add_parser(
        "backup",
        parents=[parent],
        help="take an encrypted online backup of the whole server, or verify one",
        usage="hypertab backup [-h] [--data-dir DIR] [--key-store FILE] [--json] [verify] DIR",
        description="`hypertab backup DIR` writes a consistent backup of the data directory "
        "(control plane, every tenant database, pepper, signing key, certificates) into the "
        "new or empty directory DIR while the server keeps writing. Each tenant's part is "
        "encrypted under that tenant's data key, the rest under the master key; neither key "
        "is in the backup. `hypertab backup verify DIR` checks every digest, the manifest "
        "MAC and that every part decrypts, without restoring anything (exit 1 if damaged).",
    )
    backup.add_argument(
        "words", nargs="+", metavar="[verify] DIR", help="backup directory (new or empty)"
    )
    add_json_flag(backup)
    # `backup verify` reads only the key files, so no data directory need exist; `backup`
    # itself checks for one (see backup_command).
    backup.set_defaults(handler=backup_command, creates_data_dir=True)

    restore = commands.add_parser(
        "restore",
        parents=[parent],
        help="restore a backup into an empty data directory",
        description="Restore the backup in DIR into an empty --data-dir (it may hold the "
        "master key file and the tenant key store): same tenant ids, API keys, table "
        "versions and audit chains. Tenants deleted after the backup are not restored.",
    )
    restore.add_argument("backup", type=Path, metavar="DIR", help="backup directory")
    add_json_flag(restore)
    restore.set_defaults(handler=restore_command, creates_data_dir=True)


def _keyring(directory: Path) -> Keyring:
    try:
        return KeySource(directory).require()
    except SecretsError as exc:
        raise CliError(str(exc)) from None


def _key_store(args: argparse.Namespace, directory: Path) -> Path:
    value: Path | None = args.key_store
    return value if value is not None else keystore.key_store_path(directory)


def backup_command(args: argparse.Namespace) -> int:
    """``backup DIR`` or ``backup verify DIR``."""
    words: list[str] = args.words
    if len(words) == 2 and words[0] == "verify":
        return _verify(args, Path(words[1]))
    if len(words) != 1:
        raise UsageError("usage: hypertab backup DIR | hypertab backup verify DIR")
    directory = data_dir(args)
    if not (directory / "control.db").is_file():
        raise UsageError(f"no Hypertab data directory at {directory} (it has no control.db)")
    out = Path(words[0])
    ring = _keyring(directory)
    started = now()
    try:
        asyncio.run(ensure_tenant_keys(directory / "control.db", ring, now=started))
        result = take_backup(
            directory, out, keyring=ring, key_store=_key_store(args, directory), now=started
        )
    except (BackupError, SecretsError) as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print_json(
            {
                "backup": str(out),
                "backup_id": result.backup_id,
                "created": iso(started),
                "tenants": result.tenants,
                "skipped": result.skipped,
            }
        )
    else:
        print(f"backup {result.backup_id}: {len(result.tenants)} tenant(s) in {out}")
    return EXIT_OK


def _verify(args: argparse.Namespace, root: Path) -> int:
    directory = data_dir(args)
    ring = _keyring(directory)
    try:
        store = keystore.load(_key_store(args, directory))
        report = verify_backup(root, ring, store)
    except (BackupError, SecretsError) as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print_json(
            {
                "backup_id": report.backup_id,
                "created": report.created,
                "ok": report.ok,
                "server": {"status": report.server, "detail": report.server_detail},
                "tenants": [
                    {"id": t.tenant, "status": t.status, "detail": t.detail} for t in report.tenants
                ],
            }
        )
    else:
        print(f"backup {report.backup_id} ({report.created}): server part {report.server}"
              + (f": {report.server_detail}" if report.server_detail else ""))  # fmt: skip
        for check in report.tenants:
            print(f"  tenant {check.tenant}: {check.status}"
                  + (f" ({check.detail})" if check.detail else ""))  # fmt: skip
    return EXIT_OK if report.ok else EXIT_FAILURE


def restore_command(args: argparse.Namespace) -> int:
    """``restore DIR``."""
    directory = data_dir(args)
    ring = _keyring(directory)
    store_path = _key_store(args, directory)
    keep = {key_file_path(directory), store_path, store_path.with_name(store_path.name + ".lock")}
    try:
        store = keystore.load(store_path)
        result = asyncio.run(
            restore_backup(
                args.backup, directory, keyring=ring, store=store, keep=keep,
                environment=environment(),
            )
        )  # fmt: skip
    except (BackupError, SecretsError) as exc:
        raise CliError(str(exc)) from None
    payload: dict[str, Any] = {
        "backup_id": result.backup_id,
        "data_dir": str(directory),
        "tenants": result.tenants,
        "deleted_since_backup": result.deleted_since,
    }
    if args.json:
        print_json(payload)
    else:
        print(f"restored backup {result.backup_id}: {len(result.tenants)} tenant(s) "
              f"into {directory}")  # fmt: skip
        for tenant in result.deleted_since:
            print(f"  tenant {tenant}: deleted after the backup, not restored")
    return EXIT_OK
