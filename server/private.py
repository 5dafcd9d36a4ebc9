"""Owner-only files: every file that holds tenant data or key material is mode 0600.

SQLite creates a database's ``-wal``, ``-shm`` and ``-journal`` files with the mode of the
database file itself, so creating the database 0600 *before* SQLite opens it is enough for
all of them; an existing set of files (made by an older version, or by hand) is tightened
when it is opened. Directories holding such files are 0700.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def private_directory(path: Path) -> None:
    """Create ``path`` (and parents) if missing; a directory made here is 0700."""
    if not path.is_dir():
        path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)


def tighten(path: Path) -> None:
    """Make an existing regular file 0600 (a missing one is left alone)."""
    with contextlib.suppress(FileNotFoundError):
        info = path.lstat()
        if stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) != PRIVATE_FILE:
            os.chmod(path, PRIVATE_FILE)


def private_database(path: Path) -> None:
    """Before SQLite opens ``path``: create it empty with mode 0600 if missing, else make it
    and its side files (-wal, -shm, -journal) 0600.

    An existing file is never opened here, only chmod-ed: closing any descriptor of a file
    drops every POSIX lock this process holds on it, including those of SQLite connections
    already open on it (the classic way to corrupt a database). O_EXCL keeps this to files
    that did not exist, which no connection can have open.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, PRIVATE_FILE)
    except FileExistsError:
        pass
    else:
        os.close(fd)
    for file in (path, *(path.with_name(path.name + s) for s in SQLITE_SIDE_FILES)):
        tighten(file)


def private_tree(root: Path) -> None:
    """Make every file under ``root`` 0600 and every directory 0700 (``root`` included)."""
    for directory, dirs, files in os.walk(root):
        os.chmod(directory, PRIVATE_DIR)
        for name in files:
            tighten(Path(directory) / name)
        for name in dirs:
            os.chmod(Path(directory) / name, PRIVATE_DIR)
