"""What ``hypertab restore`` and ``backup verify`` refuse: a tampered backup (digest, MAC,
GCM tag), a non-empty data directory, a key store from another server, an unsafe store."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from backup_helpers import bring_keys, loose_modes, run_cli

from server.backup.crypto import SERVER_SCOPE, manifest_mac, unwrap_file_key
from server.secrets import load_key_file


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """A data directory with one tenant and a backup of it: (data dir, backup, tenant)."""
    root = tmp_path_factory.mktemp("made")
    data_dir = root / "data"
    assert run_cli(data_dir, "keyring", "generate").returncode == 0
    created = run_cli(data_dir, "tenant", "create", "acme", "--json")
    assert created.returncode == 0, created.stderr
    tenant = json.loads(created.stdout)["tenant"]["id"]
    made = run_cli(data_dir, "backup", str(root / "bk"))
    assert made.returncode == 0, made.stderr
    return data_dir, root / "bk", tenant


def _copy(backup: Path, to: Path) -> Path:
    for path in backup.rglob("*"):
        target = to / path.relative_to(backup)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    return to


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _restore_fails(data_dir: Path, backup: Path, target: Path, expect: str) -> None:
    bring_keys(data_dir, target)
    before = sorted(p.name for p in target.iterdir())
    result = run_cli(target, "restore", str(backup))
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert expect in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in target.iterdir()) == before  # nothing written


def test_backup_files_are_private_and_it_verifies(made: tuple[Path, Path, str]) -> None:
    data_dir, backup, tenant = made
    assert loose_modes(backup) == []
    assert not list(data_dir.glob(".backup-scratch*"))
    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest["format"] == "hypertab-backup/1"
    assert [t["id"] for t in manifest["tenants"]] == [tenant]
    assert "acme" not in (backup / "manifest.json").read_text()  # no tenant names in clear
    result = run_cli(data_dir, "backup", "verify", str(backup))
    assert result.returncode == 0, result.stderr
    assert f"tenant {tenant}: ok" in result.stdout


def test_flipped_byte_is_refused_by_digest_then_by_gcm_tag(
    made: tuple[Path, Path, str], tmp_path: Path
) -> None:
    data_dir, original, tenant = made
    backup = _copy(original, tmp_path / "bk")
    sealed = backup / "tenants" / f"{tenant}.db.enc"
    _flip(sealed, 100)
    verified = run_cli(data_dir, "backup", "verify", str(backup))
    assert verified.returncode == 1 and f"tenant {tenant}: damaged" in verified.stdout
    _restore_fails(data_dir, backup, tmp_path / "r1", "does not match its digest")

    # Whoever also fixes the digest breaks the manifest's MAC.
    manifest_path = backup / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["tenants"][0]["file"]["sha256"] = hashlib.sha256(sealed.read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    _restore_fails(data_dir, backup, tmp_path / "r2", "MAC")


def test_master_key_holder_who_re_signs_the_manifest_still_fails_the_gcm_tag(
    made: tuple[Path, Path, str], tmp_path: Path
) -> None:
    data_dir, original, tenant = made
    backup = _copy(original, tmp_path / "bk")
    sealed = backup / "tenants" / f"{tenant}.db.enc"
    _flip(sealed, 100)
    ring = load_key_file(data_dir / "master.keys")
    doc = json.loads((backup / "manifest.json").read_text())
    doc["tenants"][0]["file"]["sha256"] = hashlib.sha256(sealed.read_bytes()).hexdigest()
    body = {k: v for k, v in doc.items() if k != "mac"}
    manifest_key = unwrap_file_key(
        ring.get(doc["master_key_id"]), base64.b64decode(doc["manifest_key"]),
        scope=SERVER_SCOPE, backup_id=doc["backup_id"], name="manifest.json",
    )  # fmt: skip
    doc["mac"] = manifest_mac(manifest_key, body)
    (backup / "manifest.json").write_text(json.dumps(doc))
    _restore_fails(data_dir, backup, tmp_path / "r", "GCM tag")


def test_restore_into_a_non_empty_data_dir_is_refused(
    made: tuple[Path, Path, str], tmp_path: Path
) -> None:
    data_dir, backup, _ = made
    target = tmp_path / "busy"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    _restore_fails(data_dir, backup, target, "not empty")
    assert (target / "notes.txt").read_text() == "mine"
    # The live data directory itself is refused too, and so is a backup into it.
    result = run_cli(data_dir, "restore", str(backup))
    assert result.returncode == 1 and "not empty" in result.stderr
    result = run_cli(data_dir, "backup", str(data_dir / "bk"))
    assert result.returncode == 1 and "outside the data directory" in result.stderr
    assert not (data_dir / "bk").exists()


def test_a_key_store_of_another_server_is_refused(
    made: tuple[Path, Path, str], tmp_path: Path
) -> None:
    data_dir, backup, _ = made
    target = tmp_path / "r"
    bring_keys(data_dir, target)
    (target / "tenant-keys.json").write_text(
        json.dumps({"format": "hypertab-tenant-keys/1", "tenants": {}, "deleted": {}})
    )
    os.chmod(target / "tenant-keys.json", 0o600)
    result = run_cli(target, "restore", str(backup))
    assert result.returncode == 1 and "is it the store of this server" in result.stderr
    assert not (target / "control.db").exists()
    os.chmod(target / "tenant-keys.json", 0o644)
    result = run_cli(target, "restore", str(backup))
    assert result.returncode == 1 and "group and others" in result.stderr


def test_restore_without_the_backup_master_key_is_refused(
    made: tuple[Path, Path, str], tmp_path: Path
) -> None:
    data_dir, backup, _ = made
    target = tmp_path / "r"
    assert run_cli(target, "keyring", "generate").returncode == 0
    shutil.copy2(data_dir / "tenant-keys.json", target / "tenant-keys.json")
    result = run_cli(target, "restore", str(backup))
    assert result.returncode == 1 and "which the keyring does not hold" in result.stderr
    assert sorted(p.name for p in target.iterdir()) == ["master.keys", "tenant-keys.json"]
