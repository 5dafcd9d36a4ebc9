"""The tenant key store: what a backup adds to it, what deletion takes away, and what
nothing may bring back."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from server.auth.principal import TenantId
from server.backup import keystore
from server.backup.keystore import StoredKey
from server.secrets.envelope import SymmetricKey, new_data_key, new_key_material, wrap_data_key
from server.secrets.keyring import Keyring

OLD = SymmetricKey("mk_old", new_key_material())
NEW = SymmetricKey("mk_new", new_key_material())


def _stored(tenant: str, version: int, master: SymmetricKey, retired: float | None) -> StoredKey:
    wrapped = wrap_data_key(master, new_data_key(TenantId(tenant), version))
    return StoredKey(version, wrapped, master.key_id, 1.0, retired)


def test_sync_keeps_old_versions_drops_deleted_and_never_revives_them(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "tenant-keys.json"
    ring = Keyring([OLD])
    a1, b1 = _stored("tenanta1", 1, OLD, None), _stored("tenantb1", 1, OLD, None)
    store = keystore.sync(path, [("tenanta1", a1), ("tenantb1", b1)], {}, ring, now=5.0)
    assert [k.version for k in store.keys_of("tenanta1")] == [1]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700

    # A rotation destroyed version 1 in control.db: the store keeps it (older backups need
    # it), as retired, so a restore has exactly one current version.
    a2 = _stored("tenanta1", 2, OLD, None)
    store = keystore.sync(path, [("tenanta1", a2), ("tenantb1", b1)], {}, ring, now=6.0)
    assert [(k.version, k.retired_at) for k in store.keys_of("tenanta1")] == [(1, 6.0), (2, None)]

    # Deletion shreds B; a backup whose control snapshot predates the deletion must not
    # put B's keys back.
    keystore.shred(path, "tenantb1", now=7.0)
    store = keystore.sync(path, [("tenanta1", a2), ("tenantb1", b1)], {}, ring, now=8.0)
    assert store.keys_of("tenantb1") == [] and store.deleted == {"tenantb1": 7.0}
    assert b1.wrapped.hex() not in path.read_text()
    assert keystore.load(path).data_key("tenantb1", 1, ring) is None

    # After a master rotation every entry is re-wrapped under the new key.
    both = Keyring([OLD, NEW])
    assert keystore.rewrap(path, both) == 2
    assert keystore.master_keys_in_use(path) == {"mk_new"}
    data_key = keystore.load(path).data_key("tenanta1", 2, Keyring([NEW]))
    assert data_key is not None and data_key.version == 2
