"""What a backup is made of: its file names, the manifest, and the data directory's files.

Layout of a backup directory (0700, every file 0600)::

    manifest.json                 format, id, time, tenants (table versions), file digests, MAC
    server/control.db.enc         control.db copy, ``_ht_data_keys`` emptied (master key)
    server/files/<path>.enc       pepper, signing key, certificates, ... (master key)
    tenants/<tenant id>.db.enc    one tenant database copy (that tenant's data key)

Names inside a backup are generated here (``tenants/<id>.db`` from a checked tenant id,
``server/files/<path>`` from the data directory's own files), and every name read back from
a manifest is checked against :func:`check_name` before it reaches a path.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from server.lifecycle.keysource import DEFAULT_KEY_FILE
from server.private import PRIVATE_FILE, SQLITE_SIDE_FILES

from .errors import BackupFormatError
from .keystore import DEFAULT_NAME as KEY_STORE_NAME

FORMAT = "hypertab-backup/1"
MANIFEST = "manifest.json"
CONTROL_NAME = "server/control.db"
SERVER_FILES = "server/files/"
TENANTS = "tenants/"
SUFFIX = ".enc"
CONTROL_DB = "control.db"
SCRATCH = ".backup-scratch"
"""Directory in the data dir for plaintext copies while they are encrypted (never in the
backup directory: plaintext must not reach the backup medium)."""

SQLITE_HEADER = b"SQLite format 3\x00"

_NAME_RE = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
_TENANT_NAME_RE = re.compile(r"^tenants/([a-z0-9]{8,40})\.db$")

KEY_MATERIAL_FILES = frozenset({DEFAULT_KEY_FILE, KEY_STORE_NAME, KEY_STORE_NAME + ".lock"})
"""Files of the data directory never copied into a backup: the master key file must be kept
apart from the backups, and so must the tenant key store."""


def check_name(name: str) -> str:
    """A backup file name from a manifest: relative, no ``..``, plain characters only."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or ".." in name.split("/"):
        raise BackupFormatError(f"invalid file name in the manifest: {name!r}")
    return name


def tenant_of(name: str) -> str:
    """The tenant id in a tenant file name (``tenants/<id>.db``)."""
    match = _TENANT_NAME_RE.fullmatch(name)
    if match is None:
        raise BackupFormatError(f"invalid tenant file name in the manifest: {name!r}")
    return match.group(1)


def tenant_name(tenant: str) -> str:
    """The backup file name of a tenant's database."""
    name = f"{TENANTS}{tenant}.db"
    tenant_of(name)
    return name


def stored_path(root: Path, name: str) -> Path:
    """Where the sealed file ``name`` sits inside the backup directory ``root``."""
    return root.joinpath(*PurePosixPath(check_name(name) + SUFFIX).parts)


def server_file_target(data_dir: Path, name: str) -> Path:
    """Where a ``server/files/...`` file goes back to in a data directory."""
    if not name.startswith(SERVER_FILES):
        raise BackupFormatError(f"not a server file: {name!r}")
    return data_dir.joinpath(*PurePosixPath(name[len(SERVER_FILES) :]).parts)


def is_sqlite(path: Path) -> bool:
    """Whether ``path`` starts with the SQLite header (then it is copied with the backup
    API, never byte by byte: a WAL database's file alone is not consistent)."""
    with path.open("rb") as handle:
        return handle.read(len(SQLITE_HEADER)) == SQLITE_HEADER


def _is_control_or_keys(name: str) -> bool:
    return name.startswith(CONTROL_DB) or name in KEY_MATERIAL_FILES


def data_dir_files(data_dir: Path, skip: set[Path]) -> Iterator[tuple[str, Path]]:
    """``(backup name, path)`` of every regular file of the data directory that belongs in
    the server part: everything but ``control.db``, ``tenants/``, SQLite side files, lock
    files, key material, scratch and hidden (temporary) files, and ``skip`` (resolved
    paths)."""
    for directory, dirs, files in os.walk(data_dir):
        here = Path(directory)
        rel_dir = here.relative_to(data_dir)
        dirs[:] = sorted(
            d for d in dirs if not d.startswith(".") and not (rel_dir == Path() and d == "tenants")
        )
        for name in sorted(files):
            path = here / name
            rel = (rel_dir / name).as_posix()
            if (
                name.startswith(".")
                or (
                    rel_dir == Path()
                    and (name.startswith(CONTROL_DB) or name in KEY_MATERIAL_FILES)
                )
                or name.endswith(SQLITE_SIDE_FILES)
                or name.endswith(".lock")  # flock files (hub.lock): state of live processes
                or path.resolve() in skip
                or not stat.S_ISREG(path.lstat().st_mode)
                or not _NAME_RE.fullmatch(rel)
            ):
                continue
            yield SERVER_FILES + rel, path


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def open_private(path: Path) -> Any:
    """A new file opened for binary writing with mode 0600 (never replaces one)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    os.fchmod(fd, PRIVATE_FILE)
    return os.fdopen(fd, "wb")


def read_manifest(root: Path) -> dict[str, Any]:
    """The parsed manifest; :class:`BackupFormatError` when it is not a backup of ours."""
    path = root / MANIFEST
    if not path.is_file():
        raise BackupFormatError(f"{str(root)!r} is not a backup (no {MANIFEST})")
    try:
        doc = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError):
        raise BackupFormatError(f"{MANIFEST} is not valid JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise BackupFormatError(f"{MANIFEST}: expected format {FORMAT!r}")
    return doc
