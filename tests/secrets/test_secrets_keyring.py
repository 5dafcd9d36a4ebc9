"""Master keys: env and file loading, file permissions, rotation, redaction."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from server.secrets.errors import (
    InsecureKeyFileError,
    KeyInUseError,
    KeyringError,
    SecretsError,
    UnknownKeyError,
)
from server.secrets.keyring import (
    ENV_MASTER_KEY_FILE,
    ENV_MASTER_KEYS,
    add_master_key,
    generate_key_file,
    load_key_file,
    load_keyring,
    parse_env_keys,
    remove_master_key,
)

K1 = bytes(range(32))
K2 = bytes(range(32, 64))


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def leaks(text: str, raw: bytes) -> bool:
    """Whether ``text`` contains ``raw`` in any usual printable encoding."""
    forms = [
        b64(raw),
        base64.urlsafe_b64encode(raw).decode(),
        raw.hex(),
        raw.hex().upper(),
        repr(raw),
        raw.decode("latin-1"),
    ]
    return any(form in text for form in forms)


def test_env_format_last_key_is_current() -> None:
    ring = parse_env_keys(f"mk1:{b64(K1)}, mk2:{b64(K2)}")
    assert ring.ids == ("mk1", "mk2")
    assert ring.current.key_id == "mk2"
    assert ring.current.material == K2
    assert ring.get("mk1").material == K1
    with pytest.raises(UnknownKeyError):
        ring.get("mk3")


@pytest.mark.parametrize(
    "value",
    [
        "",
        "mk1",
        f"mk1:{b64(K1)[:-4]}",  # 29 bytes
        f"mk1:{b64(K1 + b'x')}",  # 33 bytes
        f"mk1:{b64(K1)}!",  # not base64
        f"m k:{b64(K1)}",  # bad id
        f"mk1:{b64(K1)},mk1:{b64(K2)}",  # duplicate id
    ],
)
def test_bad_env_values_are_refused_without_echo(value: str) -> None:
    with pytest.raises(KeyringError) as info:
        parse_env_keys(value)
    assert not leaks(str(info.value), K1)
    assert not leaks(repr(info.value), K1)
    assert b64(K1)[:20] not in str(info.value)
    assert info.value.__cause__ is None


def test_load_keyring_sources(tmp_path: Path) -> None:
    env = {ENV_MASTER_KEYS: f"mk1:{b64(K1)}"}
    assert load_keyring(env).current.key_id == "mk1"
    path = tmp_path / "keys.json"
    key_id = generate_key_file(path)
    assert load_keyring({ENV_MASTER_KEY_FILE: str(path)}).current.key_id == key_id
    assert load_keyring({}, key_file=path).current.key_id == key_id
    with pytest.raises(KeyringError, match="both"):
        load_keyring({**env, ENV_MASTER_KEY_FILE: str(path)})
    with pytest.raises(KeyringError, match="no master keys"):
        load_keyring({})


def test_generated_key_file_is_0600_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    key_id = generate_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ring = load_key_file(path)
    assert ring.ids == (key_id,)
    before = path.read_bytes()
    with pytest.raises(KeyringError, match="exists"):
        generate_key_file(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keys.json"]  # no temp files left


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o606, 0o620])
def test_key_file_open_to_group_or_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "keys.json"
    generate_key_file(path)
    raw = load_key_file(path).current.material
    os.chmod(path, mode)
    with pytest.raises(InsecureKeyFileError, match="chmod 600") as info:
        load_key_file(path)
    assert f"{mode:04o}" in str(info.value)
    assert not leaks(str(info.value), raw)
    with pytest.raises(InsecureKeyFileError):
        load_keyring({ENV_MASTER_KEY_FILE: str(path)})


def test_key_file_0400_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    generate_key_file(path)
    os.chmod(path, 0o400)
    assert len(load_key_file(path)) == 1


def test_malformed_key_file_errors_do_not_echo(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    doc = {"format": "hypertab-master-keys/1", "keys": [{"id": "mk1", "key": b64(K1)[:-2]}]}
    path.write_text(json.dumps(doc))
    os.chmod(path, 0o600)
    with pytest.raises(KeyringError) as info:
        load_key_file(path)
    assert b64(K1)[:-2] not in str(info.value)
    path.write_text("{not json " + b64(K1))
    with pytest.raises(KeyringError) as info:
        load_key_file(path)
    assert not leaks(str(info.value), K1)
    with pytest.raises(KeyringError, match="does not exist"):
        load_key_file(tmp_path / "missing.json")


def test_rotation_appends_current_key_and_removal_rules(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    first = generate_key_file(path)
    old_material = load_key_file(path).get(first).material
    second = add_master_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ring = load_key_file(path)
    assert ring.ids == (first, second)
    assert ring.current.key_id == second
    assert ring.get(first).material == old_material  # old key kept intact
    with pytest.raises(KeyInUseError):
        remove_master_key(path, first, in_use={first})
    with pytest.raises(KeyInUseError, match="current"):
        remove_master_key(path, second, in_use=set())
    with pytest.raises(UnknownKeyError):
        remove_master_key(path, "mk_nope", in_use=set())
    assert load_key_file(path).ids == (first, second)
    remove_master_key(path, first, in_use={second})
    assert load_key_file(path).ids == (second,)


def test_rotation_refuses_an_insecure_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    generate_key_file(path)
    os.chmod(path, 0o644)
    with pytest.raises(InsecureKeyFileError):
        add_master_key(path)


def test_keyring_repr_and_exceptions_hide_key_bytes(tmp_path: Path) -> None:
    ring = parse_env_keys(f"mk1:{b64(K1)},mk2:{b64(K2)}")
    texts = [repr(ring), str(ring), f"{ring}", repr(list(ring)), repr(ring.current)]
    with pytest.raises(SecretsError) as info:
        ring.get("absent")
    texts += [str(info.value), repr(info.value)]
    for text in texts:
        assert not leaks(text, K1)
        assert not leaks(text, K2)
    assert "mk1" in repr(ring)
