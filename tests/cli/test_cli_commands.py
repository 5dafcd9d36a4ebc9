"""``hypertab tenant …`` and ``hypertab key …`` as a user runs them: real processes, real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from cli_helpers import KEY_RE, Run, cli_env, hypertab_command

from server.cli import COMMAND_MODULES, build_parser


def ok_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    return json.loads(lines[0])


def failed(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The one-line error of a failed command."""
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert not KEY_RE.search(result.stdout + result.stderr)
    return result.stderr.strip().splitlines()[-1]


def test_every_group_is_registered() -> None:
    parser = build_parser()
    assert parser.parse_args(["tenant", "list"]).command == "tenant"
    assert parser.parse_args(["key", "revoke", "k"]).key_id == "k"
    assert parser.parse_args(["serve", "--port", "0"]).port == 0
    for name in COMMAND_MODULES:
        assert name in parser.format_help()


def test_tenant_create_prints_id_and_first_key_once(hypertab: Run) -> None:
    result = hypertab("tenant", "create", "Acme Inc")
    assert result.returncode == 0, result.stderr
    keys = KEY_RE.findall(result.stdout)
    assert len(keys) == 1
    assert "Acme Inc" in result.stdout
    listing = hypertab("tenant", "list")
    assert listing.returncode == 0
    assert "Acme Inc" in listing.stdout
    assert not KEY_RE.search(listing.stdout)


def test_tenant_create_and_list_json(hypertab: Run) -> None:
    created = ok_json(hypertab("tenant", "create", "acme", "--plan", "team", "--json"))
    tenant, key = created["tenant"], created["key"]
    assert tenant["plan"] == "team"
    assert KEY_RE.fullmatch(key["secret"])
    assert key["tenant"] == tenant["id"]
    assert key["status"] == "live"
    assert "keys:admin" in key["scopes"]
    listed = ok_json(hypertab("tenant", "list", "--json"))
    assert [t["id"] for t in listed["tenants"]] == [tenant["id"]]
    assert not KEY_RE.search(json.dumps(listed))


def test_key_lifecycle_create_list_revoke_rotate(hypertab: Run) -> None:
    tenant = ok_json(hypertab("tenant", "create", "acme", "--json"))["tenant"]
    created = ok_json(
        hypertab(
            "key", "create", "--tenant", "acme", "--name", "bot",
            "--scope", "tables:read", "--table", "people", "--expires-in", "3600", "--json",
        )
    )["key"]  # fmt: skip
    assert created["scopes"] == ["tables:read"]
    assert created["tables"] == ["people"]
    assert created["expires_at"] is not None
    assert KEY_RE.fullmatch(created["secret"])

    default = ok_json(hypertab("key", "create", "--tenant", tenant["id"], "--name", "x", "--json"))
    assert default["key"]["scopes"] == ["tables:read", "tables:write"]

    listed = ok_json(hypertab("key", "list", "--tenant", tenant["id"], "--json"))
    assert [k["name"] for k in listed["keys"]] == ["admin", "bot", "x"]
    for key in listed["keys"]:
        assert "secret" not in key and not any("hash" in field for field in key)
    assert not KEY_RE.search(json.dumps(listed))

    table = hypertab("key", "list", "--tenant", "acme")
    assert table.returncode == 0 and "bot" in table.stdout and not KEY_RE.search(table.stdout)

    rotated = ok_json(hypertab("key", "rotate", created["id"], "--json"))
    new = rotated["key"]
    assert rotated["revoked"] == created["id"]
    assert new["id"] != created["id"] and new["secret"] != created["secret"]
    assert (new["name"], new["scopes"], new["tables"]) == ("bot", ["tables:read"], ["people"])
    by_id = {
        k["id"]: k for k in ok_json(hypertab("key", "list", "--tenant", "acme", "--json"))["keys"]
    }
    assert by_id[created["id"]]["status"] == "revoked"
    assert by_id[created["id"]]["replaced_by"] == new["id"]

    revoked = ok_json(hypertab("key", "revoke", new["id"], "--json"))
    assert revoked["key"]["status"] == "revoked" and revoked["already_revoked"] is False
    again = ok_json(hypertab("key", "revoke", new["id"], "--json"))
    assert again["already_revoked"] is True
    assert "secret" not in revoked["key"]

    # A revoked key cannot be rotated back to life.
    assert "revoked" in failed(hypertab("key", "rotate", new["id"]), 1)


def test_text_output_shows_only_the_new_key(hypertab: Run) -> None:
    hypertab("tenant", "create", "acme")
    first = hypertab("key", "create", "--tenant", "acme", "--name", "a")
    second = hypertab("key", "create", "--tenant", "acme", "--name", "b")
    (key_a,) = KEY_RE.findall(first.stdout)
    (key_b,) = KEY_RE.findall(second.stdout)
    assert key_a != key_b
    key_id = key_a.split("_")[2]
    rotated = hypertab("key", "rotate", key_id)
    assert rotated.returncode == 0
    (key_c,) = KEY_RE.findall(rotated.stdout)
    assert key_c not in (key_a, key_b)
    revoked = hypertab("key", "revoke", key_c.split("_")[2])
    assert revoked.returncode == 0 and not KEY_RE.search(revoked.stdout)


def test_failures_exit_1_with_one_line(hypertab: Run) -> None:
    hypertab("tenant", "create", "acme")  # a data directory, without the tenants asked for
    assert "no tenant 'ghost'" in failed(
        hypertab("key", "create", "--tenant", "ghost", "--name", "x"), 1
    )
    assert "no key" in failed(hypertab("key", "revoke", "abcdefghijklmnop"), 1)
    assert "no key" in failed(hypertab("key", "rotate", "nonsense"), 1)
    assert "no tenant" in failed(hypertab("key", "list", "--tenant", "ghost"), 1)


def test_usage_errors_exit_2(hypertab: Run) -> None:
    hypertab("tenant", "create", "acme")
    failed(hypertab(data=False), 2)
    failed(hypertab("tenant", "create", "acme", "--plan", "gold"), 2)
    failed(hypertab("key", "create", "--tenant", "acme", "--name", "x", "--scope", "root"), 2)
    failed(hypertab("key", "create", "--tenant", "acme"), 2)
    assert "--expires-in" in failed(
        hypertab("key", "create", "--tenant", "acme", "--name", "x", "--expires-in", "-5"), 2
    )
    assert "name" in failed(hypertab("tenant", "create", "   "), 2)


def test_data_dir_defaults_to_environment(tmp_path: Path, hypertab: Run) -> None:
    env_dir = tmp_path / "from-env"
    env = cli_env(HYPERTAB_DATA_DIR=str(env_dir))
    created = ok_json(hypertab("tenant", "create", "envy", "--json", env=env, data=False))
    assert (env_dir / "control.db").exists()
    listed = ok_json(hypertab("tenant", "list", "--json", env=env, data=False))
    assert [t["id"] for t in listed["tenants"]] == [created["tenant"]["id"]]


def test_group_readable_pepper_is_refused_cleanly(data_dir: Path, hypertab: Run) -> None:
    hypertab("tenant", "create", "acme")
    (data_dir / "pepper.key").chmod(0o644)
    assert "chmod 600" in failed(hypertab("tenant", "list"), 1)


def test_module_entry_point_matches_console_script(data_dir: Path, hypertab: Run) -> None:
    created = ok_json(hypertab("tenant", "create", "acme", "--json"))
    argv = [sys.executable, "-m", "server.cli", "tenant", "list", "--json"]
    result = subprocess.run(
        [*argv, "--data-dir", str(data_dir)],
        capture_output=True, text=True, env=cli_env(), timeout=60, check=False,
    )  # fmt: skip
    assert ok_json(result) == {"tenants": [created["tenant"]]}
    assert hypertab_command()  # the console script resolves too
