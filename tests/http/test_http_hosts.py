"""Reading ``Host`` values and the allowlist's rules (pure: no event loop)."""

from __future__ import annotations

import pytest

from server.http.hosts import HostAllowlist, host_name
from server.settings import SettingsError, load


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("Example.COM", "example.com"),
        ("example.com.:8080", "example.com"),
        ("127.0.0.1:1", "127.0.0.1"),
        ("[::1]:8765", "::1"),
        ("[::1]", "::1"),
        ("", None),
        (":80", None),
        ("a b", None),
        ("user@host", None),
        ("host:port", None),
        ("[::1", None),
        ("[nope]:1", None),
        ("::1", None),  # an IPv6 literal needs brackets in a Host header
        ("host:1234567", None),
    ],
)
def test_host_name(value: str, name: str | None) -> None:
    assert host_name(value) == name


def test_the_allowlist() -> None:
    hosts = HostAllowlist(["Hub.Example.com.", "*.t.example.org"], bind_host="my-box")
    for ok in ("hub.example.com", "x.t.example.org:1", "my-box:8765", "localhost", "a.localhost",
               "10.1.2.3", "[fe80::1]:9"):  # fmt: skip
        assert hosts.allows([ok]), ok
    for bad in ("t.example.org", "example.com", "evil.localhost.example", "evil", ""):
        assert not hosts.allows([bad]), bad
    assert not hosts.allows([]) and not hosts.allows(["localhost", "localhost"])
    assert HostAllowlist(["*"]).allows(["anything"]) and HostAllowlist(["*"]).allows([])
    assert not HostAllowlist(bind_host="0.0.0.0").allows(["0.0.0.0.evil"])


def test_the_setting_is_validated() -> None:
    assert load(env={"HYPERTAB_ALLOWED_HOSTS": "a.example, *.b.example"}).allowed_hosts == [
        "a.example",
        "*.b.example",
    ]
    with pytest.raises(SettingsError, match="HYPERTAB_ALLOWED_HOSTS"):
        load(env={"HYPERTAB_ALLOWED_HOSTS": "http://a.example/"})
