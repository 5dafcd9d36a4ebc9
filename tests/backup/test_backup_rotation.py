"""Master key rotation keeps the tenant key store usable: it is re-wrapped with the data
keys, so the old master key can be removed and a newer backup still restores."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from server.backup import keystore
from server.cli import main


@pytest.fixture(autouse=True)
def _no_hypertab_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("HYPERTAB_"):
            monkeypatch.delenv(name)


def _run(capsys: pytest.CaptureFixture[str], data_dir: Path, *args: str) -> dict[str, object]:
    code = main([*args, "--data-dir", str(data_dir), "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    result: dict[str, object] = json.loads(out.out)
    return result


def test_rotation_rewraps_the_key_store_and_old_key_removal_is_safe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    assert main(["keyring", "generate", "--data-dir", str(data)]) == 0
    capsys.readouterr()
    old = json.loads((data / "master.keys").read_text())["keys"][0]["id"]
    _run(capsys, data, "tenant", "create", "acme")
    _run(capsys, data, "backup", str(tmp_path / "before"))
    assert keystore.master_keys_in_use(data / "tenant-keys.json") == {old}

    rotated = _run(capsys, data, "keyring", "rotate")
    assert keystore.master_keys_in_use(data / "tenant-keys.json") == {rotated["key_id"]}
    _run(capsys, data, "keyring", "remove", old)
    made = _run(capsys, data, "backup", str(tmp_path / "after"))

    fresh = tmp_path / "fresh"
    fresh.mkdir(mode=0o700)
    for name in ("master.keys", "tenant-keys.json"):
        (fresh / name).write_bytes((data / name).read_bytes())
        os.chmod(fresh / name, 0o600)
    restored = _run(capsys, fresh, "restore", str(tmp_path / "after"))
    assert restored["tenants"] == made["tenants"]
    # The backup taken under the removed key needs that key: refused, with the key named.
    assert main(["backup", "verify", str(tmp_path / "before"), "--data-dir", str(data)]) == 1
    assert old in capsys.readouterr().err
