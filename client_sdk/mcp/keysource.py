"""Where the MCP server's API key comes from: the environment or a 0600 file, never argv.

``HYPERTAB_API_KEY`` holds the key itself; ``HYPERTAB_API_KEY_FILE`` (or ``--key-file``)
names a file holding it (first line; surrounding whitespace ignored). A key file readable
or writable by group or others, or owned by another user, is refused: a key is a secret.

With a file, :meth:`KeySource.watch` polls it and hands a changed key to the client
(``Client.set_api_key``): after ``hypertab key rotate`` the operator writes the new key into
the file, the hub has already closed the old key's connection (4003), and the client
reconnects with the new key at once, resuming its tables, without a restart.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

ENV_KEY = "HYPERTAB_API_KEY"
ENV_KEY_FILE = "HYPERTAB_API_KEY_FILE"
MAX_KEY_FILE_BYTES = 4096


class KeySourceError(Exception):
    """No usable key: missing, empty, or a key file with unsafe permissions."""


@dataclass(frozen=True, slots=True)
class KeySource:
    """The key, from ``HYPERTAB_API_KEY`` or a key file."""

    key: str | None = None
    path: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str], key_file: str | None = None) -> KeySource:
        """``key_file`` (a path from the command line) wins over the environment."""
        path = key_file or env.get(ENV_KEY_FILE)
        if path:
            return cls(path=Path(path).expanduser())
        key = (env.get(ENV_KEY) or "").strip()
        if not key:
            raise KeySourceError(f"set {ENV_KEY} or {ENV_KEY_FILE} (a file with mode 0600)")
        return cls(key=key)

    def read(self) -> str:
        """The current key (reads the file each time)."""
        if self.path is None:
            assert self.key is not None
            return self.key
        return read_key_file(self.path)

    async def watch(self, on_change: Callable[[str], None], *, interval: float = 0.2) -> None:
        """Poll the key file forever; call ``on_change(key)`` when its key changes."""
        if self.path is None:
            return
        current = self.read()
        while True:
            await asyncio.sleep(interval)
            try:
                key = await asyncio.to_thread(read_key_file, self.path)
            except (OSError, KeySourceError) as exc:
                log.warning("key file unreadable, keeping the current key (%s)", exc)
                continue
            if key != current:
                current = key
                log.info("key file changed: reconnecting with the new key")
                on_change(key)


def read_key_file(path: Path) -> str:
    """The key in ``path``; ``KeySourceError`` if it is unsafe or empty."""
    try:
        with path.open("rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise KeySourceError(f"{path} is not a regular file")
            if info.st_mode & 0o077:
                raise KeySourceError(f"{path} must be readable by its owner only (chmod 600)")
            if hasattr(os, "getuid") and info.st_uid != os.getuid():
                raise KeySourceError(f"{path} is owned by another user")
            data = handle.read(MAX_KEY_FILE_BYTES + 1)
    except FileNotFoundError:
        raise KeySourceError(f"no key file {path}") from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeySourceError(f"{path} is too large to hold an API key")
    lines = data.decode("utf-8", "replace").strip().splitlines()
    key = lines[0].strip() if lines else ""
    if not key:
        raise KeySourceError(f"{path} holds no key")
    return key
