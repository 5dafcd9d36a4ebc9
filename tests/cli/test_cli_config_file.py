"""``alerts`` and ``webhook`` read the same validated settings as ``serve``: the TOML file
of ``--config`` (or ``$HYPERTAB_CONFIG``) under the ``HYPERTAB_*`` environment.

Before: both read the environment only, so the alert webhook and the delivery rules a
``serve --config FILE`` used were not those of ``hypertab alerts deliver`` or ``hypertab
webhook add`` (and ``--config`` was an unknown flag).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cli_helpers import Run, cli_env


class _Receiver(ThreadingHTTPServer):
    posts: list[str]


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            server.posts.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = _Receiver(("127.0.0.1", 0), Handler)
    server.posts = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hypertab.toml"
    path.write_text(text)
    return path


def ok(result: object) -> dict[str, object]:
    assert result.returncode == 0, result.stderr  # type: ignore[attr-defined]
    out: dict[str, object] = json.loads(result.stdout)  # type: ignore[attr-defined]
    return out


def test_webhook_add_reads_the_delivery_rules_of_the_config_file(
    hypertab: Run, tmp_path: Path
) -> None:
    assert hypertab("keyring", "generate").returncode == 0  # tenant data keys need one
    tenant = ok(hypertab("tenant", "create", "acme", "--json"))["tenant"]
    assert isinstance(tenant, dict)
    url = "http://127.0.0.1:9/hook"  # loopback: private unless delivery_allow_networks says
    add = ("webhook", "add", "--tenant", str(tenant["id"]), "--url", url, "--json")
    refused = hypertab(*add)
    assert refused.returncode == 1 and "127.0.0.1" in refused.stderr
    config = write_config(tmp_path, 'delivery_allow_networks = ["127.0.0.0/8"]\n')
    ok(hypertab(*add, "--config", str(config)))
    ok(hypertab(*add, env=cli_env(HYPERTAB_CONFIG=str(config))))  # as serve reads it too
    # The environment still overrides the file, as for serve.
    env = cli_env(HYPERTAB_CONFIG=str(config), HYPERTAB_DELIVERY_ALLOW_NETWORKS="10.0.0.0/8")
    assert hypertab(*add, env=env).returncode == 1


def test_alerts_deliver_sends_to_the_webhook_of_the_config_file(
    hypertab: Run, tmp_path: Path, receiver: _Receiver
) -> None:
    secret = tmp_path / "alert.secret"
    secret.write_text("s" * 32)
    secret.chmod(0o600)
    config = write_config(
        tmp_path,
        f'alert_webhook_url = "http://127.0.0.1:{receiver.server_address[1]}/alerts"\n'
        f'alert_webhook_secret_file = "{secret}"\n'
        'alert_log = "off"\n',
    )
    ok(hypertab("tenant", "create", "acme", "--json"))  # a data directory
    ok(hypertab("alerts", "test", "--config", str(config), "--json"))
    delivered = ok(hypertab("alerts", "deliver", "--config", str(config), "--json"))
    assert delivered["delivered"] == 1
    assert receiver.posts == ["/alerts"]


def test_a_bad_config_file_is_refused_naming_the_value(hypertab: Run, tmp_path: Path) -> None:
    ok(hypertab("tenant", "create", "acme", "--json"))
    config = write_config(tmp_path, "delivery_timeout = -1\n")
    for command in (("alerts", "deliver"), ("webhook", "list", "--tenant", "acme")):
        result = hypertab(*command, "--config", str(config))
        assert result.returncode == 2, command
        assert "delivery_timeout" in result.stderr
