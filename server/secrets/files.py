"""Reading and writing owner-only files (master key file, server signing key).

A private file is refused unless its mode grants nothing to group or others
(``mode & 0o077 == 0``, as OpenSSH does for private keys). The check runs on the open file
descriptor, so the file checked is the file read. Writes go to a temporary file created
``0600`` in the same directory, are fsynced, and are then moved into place, so a reader
sees the old content or the new, never half a key, and the key never exists with a wider
mode even for an instant.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from server.secrets.errors import InsecureKeyFileError, KeyringError

PRIVATE_MODE = 0o600
MAX_PRIVATE_FILE = 1 << 20


def read_private_file(path: Path) -> bytes:
    """Read an owner-only file; :class:`InsecureKeyFileError` if group/others have access."""
    try:
        # O_NONBLOCK: a FIFO planted at the path must not hang start-up.
        flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise KeyringError(f"key file {str(path)!r} does not exist") from None
    except OSError as exc:
        raise KeyringError(f"cannot open key file {str(path)!r}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise KeyringError(f"key file {str(path)!r} is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise InsecureKeyFileError(
                f"key file {str(path)!r} has mode {mode:04o}: group and others must have "
                f"no access; run `chmod 600 {path}`"
            )
        data = handle.read(MAX_PRIVATE_FILE + 1)
    if len(data) > MAX_PRIVATE_FILE:
        raise KeyringError(f"key file {str(path)!r} is too large")
    return data


def write_private_file(path: Path, data: bytes, *, overwrite: bool) -> None:
    """Atomically write ``data`` to ``path`` with mode 0600.

    With ``overwrite=False`` an existing file is never replaced (:class:`FileExistsError`):
    creating a key must not silently destroy the key that protects existing data.
    """
    directory = path.parent
    tmp = directory / f".{path.name}.{os.getpid()}.{os.urandom(6).hex()}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(tmp, flags, PRIVATE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            # The umask can only narrow 0600; set it explicitly anyway so the mode on
            # disk is exactly the one we promise.
            os.fchmod(handle.fileno(), PRIVATE_MODE)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            # link() fails if ``path`` exists: an atomic create-if-absent.
            os.link(tmp, path)
            os.unlink(tmp)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    # Make the rename durable; not every platform lets a directory be opened.
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platform dependent
        return
    try:
        os.fsync(dir_fd)
    except OSError:  # pragma: no cover - platform dependent
        pass
    finally:
        os.close(dir_fd)
