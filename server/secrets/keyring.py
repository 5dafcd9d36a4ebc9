"""Master keys: loading them from the environment or a key file, and rotating them.

Sources (exactly one):

* ``HYPERTAB_MASTER_KEYS="id1:BASE64,id2:BASE64"``: comma-separated ``id:key`` entries,
  key = standard base64 of 32 random bytes; the **last** entry is the current key.
* a JSON key file (``HYPERTAB_MASTER_KEY_FILE`` or an explicit path), mode 0600 or
  stricter, written by :func:`generate_key_file` / :func:`add_master_key`::

      {"format": "hypertab-master-keys/1",
       "keys": [{"id": "mk_1a2b3c4d", "key": "<base64>", "created_at": 1700000000}, ...]}

  again the last key is the current one.

Key bytes never reach a log line, ``repr``, or an exception message; errors name keys by id.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from server.secrets.envelope import KEY_ID_PATTERN, KEY_SIZE, SymmetricKey, new_key_material
from server.secrets.errors import KeyInUseError, KeyringError, UnknownKeyError
from server.secrets.files import read_private_file, write_private_file

ENV_MASTER_KEYS = "HYPERTAB_MASTER_KEYS"
"""Environment variable holding master keys inline."""

ENV_MASTER_KEY_FILE = "HYPERTAB_MASTER_KEY_FILE"
"""Environment variable naming a master key file."""

KEY_FILE_FORMAT = "hypertab-master-keys/1"

MasterKey = SymmetricKey
"""A master key is a :class:`SymmetricKey` whose id names it in ciphertext headers."""


class Keyring:
    """An ordered, non-empty set of master keys; the last one is current.

    Old keys stay in the ring only to unwrap data keys that still name them; everything new
    is wrapped with :attr:`current`.
    """

    __slots__ = ("_by_id", "_keys")

    def __init__(self, keys: Sequence[SymmetricKey]) -> None:
        if not keys:
            raise KeyringError("a keyring needs at least one master key")
        by_id: dict[str, SymmetricKey] = {}
        for key in keys:
            if key.key_id in by_id:
                raise KeyringError(f"duplicate master key id {key.key_id!r}")
            by_id[key.key_id] = key
        self._keys = tuple(keys)
        self._by_id = by_id

    @property
    def current(self) -> SymmetricKey:
        """The key that wraps every new or re-wrapped data key."""
        return self._keys[-1]

    @property
    def ids(self) -> tuple[str, ...]:
        """Key ids, oldest first."""
        return tuple(k.key_id for k in self._keys)

    def get(self, key_id: str) -> SymmetricKey:
        """The key with this id; :class:`UnknownKeyError` if the ring does not hold it."""
        try:
            return self._by_id[key_id]
        except KeyError:
            raise UnknownKeyError(f"master key {key_id!r} is not in the keyring") from None

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._by_id

    def __iter__(self) -> Iterator[SymmetricKey]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"Keyring(ids={self.ids!r}, current={self.current.key_id!r})"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("Keyring cannot be pickled")


def new_key_id() -> str:
    """A short random master key id such as ``mk_1a2b3c4d``.

    Random rather than sequential so that a regenerated key file can never reuse the id of
    a lost key and make old ciphertexts look as if they belonged to the new key.
    """
    return f"mk_{secrets.token_hex(4)}"


def _decode_key(key_id: str, encoded: str, source: str) -> SymmetricKey:
    if not KEY_ID_PATTERN.fullmatch(key_id):
        raise KeyringError(f"{source}: invalid master key id (allowed: [A-Za-z0-9_.-]{{1,64}})")
    try:
        raw = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyringError(f"{source}: master key {key_id!r} is not valid base64") from None
    if len(raw) != KEY_SIZE:
        raise KeyringError(f"{source}: master key {key_id!r} must decode to {KEY_SIZE} bytes")
    return SymmetricKey(key_id, raw)


def parse_env_keys(value: str) -> Keyring:
    """Parse the ``HYPERTAB_MASTER_KEYS`` format: ``id1:BASE64,id2:BASE64`` (last = current)."""
    keys: list[SymmetricKey] = []
    for index, entry in enumerate(value.split(",")):
        entry = entry.strip()
        if not entry:
            continue
        key_id, sep, encoded = entry.partition(":")
        if not sep:
            raise KeyringError(f"{ENV_MASTER_KEYS}: entry {index + 1} is not of the form id:key")
        keys.append(_decode_key(key_id.strip(), encoded, ENV_MASTER_KEYS))
    if not keys:
        raise KeyringError(f"{ENV_MASTER_KEYS} is set but holds no keys")
    return Keyring(keys)


def _read_key_file(path: Path) -> list[dict[str, Any]]:
    data = read_private_file(path)
    source = f"key file {str(path)!r}"
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise KeyringError(f"{source} is not valid JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != KEY_FILE_FORMAT:
        raise KeyringError(f"{source}: expected format {KEY_FILE_FORMAT!r}")
    entries = doc.get("keys")
    if not isinstance(entries, list) or not entries:
        raise KeyringError(f"{source}: 'keys' must be a non-empty list")
    for entry in entries:
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("id"), str)
            or not isinstance(entry.get("key"), str)
        ):
            raise KeyringError(f"{source}: every key needs string 'id' and 'key'")
    return entries


def load_key_file(path: Path | str) -> Keyring:
    """Load a keyring from a JSON key file; refuses files open to group or others."""
    path = Path(path)
    source = f"key file {str(path)!r}"
    return Keyring([_decode_key(e["id"], e["key"], source) for e in _read_key_file(path)])


def load_keyring(
    environ: Mapping[str, str] | None = None, key_file: Path | str | None = None
) -> Keyring:
    """Load master keys from ``HYPERTAB_MASTER_KEYS`` or a key file.

    ``key_file`` defaults to ``HYPERTAB_MASTER_KEY_FILE``. Having both an inline variable and
    a key file is refused: silently preferring one would hide a misconfiguration.
    """
    env = os.environ if environ is None else environ
    inline = env.get(ENV_MASTER_KEYS)
    file_path = key_file if key_file is not None else env.get(ENV_MASTER_KEY_FILE)
    if inline and file_path:
        raise KeyringError(f"both {ENV_MASTER_KEYS} and a master key file are set; use one")
    if inline:
        return parse_env_keys(inline)
    if file_path:
        return load_key_file(file_path)
    raise KeyringError(
        f"no master keys: set {ENV_MASTER_KEYS} or {ENV_MASTER_KEY_FILE} (see docs/secrets.md)"
    )


def _entry(key: SymmetricKey, created_at: int) -> dict[str, Any]:
    return {
        "id": key.key_id,
        "key": base64.b64encode(key.material).decode("ascii"),
        "created_at": created_at,
    }


def _dump(entries: list[dict[str, Any]]) -> bytes:
    return (json.dumps({"format": KEY_FILE_FORMAT, "keys": entries}, indent=2) + "\n").encode()


def generate_key_file(path: Path | str) -> str:
    """Create a new key file (mode 0600, atomically) with one fresh key; return its id.

    Refuses (:class:`KeyringError`) if ``path`` already exists: overwriting a key file
    would make everything it protects unreadable.
    """
    path = Path(path)
    key = SymmetricKey(new_key_id(), new_key_material())
    try:
        write_private_file(path, _dump([_entry(key, int(time.time()))]), overwrite=False)
    except FileExistsError:
        raise KeyringError(f"key file {str(path)!r} already exists; not overwriting") from None
    return key.key_id


def add_master_key(path: Path | str) -> str:
    """Rotate: append a fresh key to the key file, making it current; return its id.

    Afterwards restart (or reload) the servers with the new file, run
    ``DataKeyStore.rewrap_all`` and only then remove the old key. Not safe against two
    concurrent writers of the same file; rotation is an operator action.
    """
    path = Path(path)
    entries = _read_key_file(path)
    existing = {e["id"] for e in entries}
    key_id = new_key_id()
    while key_id in existing:  # pragma: no cover - 2**32 ids
        key_id = new_key_id()
    key = SymmetricKey(key_id, new_key_material())
    entries.append(_entry(key, int(time.time())))
    write_private_file(path, _dump(entries), overwrite=True)
    return key_id


def remove_master_key(path: Path | str, key_id: str, in_use: Collection[str]) -> None:
    """Remove an old master key from the key file.

    ``in_use`` is the set of master key ids still wrapping data keys (from
    ``DataKeyStore.master_keys_in_use()``). Refuses with :class:`KeyInUseError` if
    ``key_id`` is in it, or if it is the current key (it would be in use by the next
    wrap); :class:`UnknownKeyError` if the file has no such key.
    """
    path = Path(path)
    entries = _read_key_file(path)
    ids = [e["id"] for e in entries]
    if key_id not in ids:
        raise UnknownKeyError(f"master key {key_id!r} is not in {str(path)!r}")
    if key_id == ids[-1]:
        raise KeyInUseError(f"master key {key_id!r} is the current key; rotate first")
    if key_id in in_use:
        raise KeyInUseError(
            f"master key {key_id!r} still wraps data keys; run rewrap_all before removing it"
        )
    write_private_file(path, _dump([e for e in entries if e["id"] != key_id]), overwrite=True)
