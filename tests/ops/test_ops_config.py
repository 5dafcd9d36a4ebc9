"""One configuration: a TOML file, HYPERTAB_* over it, flags over both; every bad key named."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from ops_helpers import HYPERTAB, clean_env, hypertab

from server.settings import Settings, SettingsError, example, load, settings_table

BROKEN = """\
port = 99999
durability = "disk"
prot = 8765
jwt_secret = "do-not-keep-me-here"
trusted_proxies = ["10.0.0.0/8", "proxy.example"]
log_level = "loud"
"""


def test_config_check_names_every_bad_key_at_once(tmp_path: Path) -> None:
    file = tmp_path / "hypertab.toml"
    file.write_text(BROKEN)
    result = hypertab("config", "check", "--config", str(file), env=clean_env(HYPERTAB_PORT="x"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = result.stderr.splitlines()
    assert len(errors) == 7, errors
    for needle in (
        "port = 99999: Expected `int` <= 65535; accepts an integer from 0 to 65535",
        "durability = 'disk': Invalid enum value 'disk'; accepts process or power",
        "unknown key 'prot'",
        "jwt_secret: secrets are not read from the file; set $HYPERTAB_JWT_SECRET",
        "'proxy.example' is not an IP address or network",
        "log_level = 'loud'",
        "HYPERTAB_PORT='x'",
    ):
        assert any(needle in line for line in errors), (needle, errors)
    assert "do-not-keep-me-here" not in result.stderr  # a secret's value is never echoed


def test_a_bad_environment_value_names_its_variable_for_serve(tmp_path: Path) -> None:
    result = hypertab(
        "serve", "--data-dir", str(tmp_path / "d"), env=clean_env(HYPERTAB_DURABILITY="disk")
    )
    assert result.returncode == 2
    assert "HYPERTAB_DURABILITY='disk'" in result.stderr and "process or power" in result.stderr
    assert not (tmp_path / "d").exists()


def test_a_good_file_starts_the_server_and_the_environment_overrides_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    file = tmp_path / "hypertab.toml"
    # Port 1 is privileged (and never ours): the server starts only if HYPERTAB_PORT wins.
    file.write_text(f'data_dir = "{data}"\nport = 1\ndurability = "power"\nlog_level = "WARNING"\n')
    env = clean_env(HYPERTAB_PORT="0", HYPERTAB_CONFIG=str(file))
    checked = hypertab("config", "check", "--json", env=env)
    assert checked.returncode == 0, checked.stderr
    settings = json.loads(checked.stdout)["settings"]
    assert settings["port"] == 0 and settings["durability"] == "power"
    with subprocess.Popen(
        [str(HYPERTAB), "serve", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    ) as proc:  # fmt: skip
        try:
            assert proc.stdout is not None
            listening = json.loads(proc.stdout.readline())
        finally:
            proc.terminate()
            proc.wait(30)
    assert listening["event"] == "listening" and listening["port"] not in (0, 1)
    assert listening["data_dir"] == str(data) and (data / "control.db").exists()


def test_flags_override_the_environment_and_the_file(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text('host = "10.1.2.3"\nburst_per_second = 5\n')
    env = {"HYPERTAB_HOST": "127.0.0.2", "HYPERTAB_BURST_PER_SECOND": "7"}
    settings = load(file, env=env, flags={"host": "::1"})
    assert settings.host == "::1" and settings.burst_per_second == 7


def test_the_example_file_is_valid_and_lists_every_setting(tmp_path: Path) -> None:
    file = tmp_path / "example.toml"
    file.write_text(example())
    assert load(file, env={}) == Settings()
    for name in Settings.__struct_fields__:
        assert f"{name} = " in example()


def test_tls_needs_both_files() -> None:
    try:
        load(None, env={"HYPERTAB_TLS_CERT": "cert.pem"})
    except SettingsError as exc:
        assert exc.problems == ["tls_cert is set without tls_key: give both (or neither)"]
    else:
        raise AssertionError("tls_cert alone was accepted")


def test_docs_table_lists_every_setting() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()
    assert (
        settings_table() in docs
    )  # regenerate: python -c 'from server.settings import *; print(settings_table())'


def test_alert_settings_from_the_file_reach_the_alert_sink(tmp_path: Path) -> None:
    from server.alerts.config import AlertConfig
    from server.config import Config

    file = tmp_path / "c.toml"
    file.write_text('alert_log = "off"\ndelivery_timeout = 3.5\n')
    config = Config.from_settings(load(file, env={}))
    assert config.environ is not None
    alerts = AlertConfig.from_env(config.environ)
    assert alerts.log is False and alerts.retry.timeout == 3.5
