"""Where a server or a CLI command gets its master keys, and noticing when they change.

Exactly one source, in this order:

1. ``HYPERTAB_MASTER_KEYS`` (inline ``id:base64`` entries, last = current);
2. a key file: ``HYPERTAB_KEY_FILE`` (or the older ``HYPERTAB_MASTER_KEY_FILE``), else
   ``<data_dir>/master.keys``.

An inline variable together with an explicitly named key file is refused (ambiguous). When
nothing is configured and the default key file does not exist, there is no keyring: the
server still serves tables, but secrets are unavailable and tenants get their data key
later (:meth:`KeySource.keyring` returns ``None``). A key file that exists but is readable
by group or others, or is malformed, is always an error: the caller refuses to start.

:class:`KeySource` re-reads the key file when its identity (inode, size, mtime) changes, so
a running server picks up ``hypertab keyring rotate`` run by another process without a
restart: otherwise it could not unwrap data keys rewrapped under the new master key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from server.secrets.errors import KeyringError
from server.secrets.keyring import (
    ENV_MASTER_KEY_FILE,
    ENV_MASTER_KEYS,
    Keyring,
    generate_key_file,
    load_key_file,
    parse_env_keys,
)

ENV_KEY_FILE = "HYPERTAB_KEY_FILE"
"""Names the master key file (default ``<data_dir>/master.keys``)."""

DEFAULT_KEY_FILE = "master.keys"


def key_file_path(data_dir: Path, environ: Mapping[str, str] | None = None) -> Path:
    """The key file this data directory uses (whether or not it exists)."""
    env = os.environ if environ is None else environ
    named = env.get(ENV_KEY_FILE) or env.get(ENV_MASTER_KEY_FILE)
    return Path(named) if named else data_dir / DEFAULT_KEY_FILE


def _explicit_file(environ: Mapping[str, str]) -> bool:
    return bool(environ.get(ENV_KEY_FILE) or environ.get(ENV_MASTER_KEY_FILE))


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns)


class KeySource:
    """The configured master keys of one data directory, reloaded when the file changes."""

    def __init__(self, data_dir: Path, environ: Mapping[str, str] | None = None) -> None:
        env = dict(os.environ if environ is None else environ)
        self._inline = env.get(ENV_MASTER_KEYS) or None
        if self._inline and _explicit_file(env):
            raise KeyringError(f"both {ENV_MASTER_KEYS} and a master key file are set; use one")
        self.path: Path | None = None if self._inline else key_file_path(data_dir, env)
        self._required = bool(self._inline) or _explicit_file(env)
        self._identity: tuple[int, int, int] | None = None
        self._keyring: Keyring | None = None

    @property
    def inline(self) -> bool:
        """Whether the keys come from ``HYPERTAB_MASTER_KEYS`` (not rotatable in place)."""
        return self._inline is not None

    def keyring(self) -> Keyring | None:
        """The current keyring (re-read if the file changed); ``None`` when none is set up.

        Raises :class:`KeyringError` (or :class:`InsecureKeyFileError`) for a bad source.
        """
        if self._inline is not None:
            if self._keyring is None:
                self._keyring = parse_env_keys(self._inline)
            return self._keyring
        assert self.path is not None
        identity = _identity(self.path)
        if identity is None:
            if self._required:
                raise KeyringError(f"key file {str(self.path)!r} does not exist")
            self._keyring = None
            self._identity = None
            return None
        if identity != self._identity or self._keyring is None:
            self._keyring = load_key_file(self.path)
            self._identity = identity
        return self._keyring

    def require(self) -> Keyring:
        """The keyring, or :class:`KeyringError` saying how to create one."""
        ring = self.keyring()
        if ring is None:
            raise KeyringError(
                f"no master keys: run `hypertab keyring generate` (creates {self.path}) "
                f"or set {ENV_MASTER_KEYS}"
            )
        return ring


def ensure_local_key_file(data_dir: Path, environ: Mapping[str, str] | None = None) -> str | None:
    """For development (``hypertab serve --demo``, ``make serve``): create the key file on
    first run. Returns the new key's id, or ``None`` when keys are already configured."""
    env = os.environ if environ is None else environ
    if env.get(ENV_MASTER_KEYS):
        return None
    path = key_file_path(data_dir, env)
    if path.exists():
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    return generate_key_file(path)
