"""The delivery rules a receiver and an operator rely on: signatures, retry bounds, SSRF."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

import pytest

from server.delivery import signing
from server.delivery.destination import DestinationPolicy, check_url, parse_networks
from server.delivery.errors import DestinationRefused
from server.delivery.retry import RetryPolicy

SECRET = b"0123456789abcdef0123"


def test_a_receiver_verifies_the_signature_in_a_few_lines() -> None:
    body = b'{"id":"al_1","kind":"tenant_export"}'
    headers = signing.headers("al_1", SECRET, 1_767_225_600, body)
    ts = headers["Hypertab-Timestamp"]
    # What docs/alerts.md tells a receiver to do, without our code:
    expected = hmac.new(SECRET, f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    assert headers["Hypertab-Signature"] == f"v1={expected}"
    assert headers["Hypertab-Id"] == "al_1"
    assert signing.verify(SECRET, ts, body, headers["Hypertab-Signature"], now=1_767_225_610)


def test_a_changed_body_an_old_timestamp_or_another_secret_fail() -> None:
    body = b'{"a":1}'
    sig = signing.signature(SECRET, 1000, body)
    assert not signing.verify(SECRET, "1000", b'{"a":2}', sig, now=1000)
    assert not signing.verify(SECRET, "1000", body, sig, now=1000 + 301)
    assert not signing.verify(b"another-secret-of-16+", "1000", body, sig, now=1000)
    assert not signing.verify(SECRET, "soon", body, sig, now=1000)
    with pytest.raises(ValueError):
        signing.signature(b"short", 1, body)


def test_backoff_doubles_with_jitter_and_is_bounded() -> None:
    policy = RetryPolicy(base=1.0, max_delay=8.0, max_attempts=5, max_age=100.0)
    assert [policy.delay(n, 0.999999) for n in (1, 2, 3, 4, 5, 6)] == pytest.approx(
        [1, 2, 4, 8, 8, 8], rel=1e-5
    )
    assert policy.delay(3, 0.0) == 2.0  # never sooner than half the nominal delay
    assert not policy.gives_up(4, first_at=0.0, now=50.0)
    assert policy.gives_up(5, first_at=0.0, now=50.0)
    assert policy.gives_up(1, first_at=0.0, now=100.0)


def test_retry_settings_from_the_environment() -> None:
    policy = RetryPolicy.from_env(
        {"HYPERTAB_DELIVERY_RETRY_BASE": "0.2", "HYPERTAB_DELIVERY_MAX_ATTEMPTS": "3"}
    )
    assert (policy.base, policy.max_attempts) == (0.2, 3)
    with pytest.raises(ValueError, match="HYPERTAB_DELIVERY_RETRY_BASE"):
        RetryPolicy.from_env({"HYPERTAB_DELIVERY_RETRY_BASE": "soon"})


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://example.com/hook", "plain http"),
        ("http://10.0.0.5/hook", "plain http"),
        ("ftp://example.com/x", "https"),
        ("https://user:pw@example.com/x", "no user"),
        ("https:///x", "host"),
        ("https://example.com/x#frag", "fragment"),
        ("https://exa mple.com/", "spaces"),
    ],
)
def test_urls_refused_when_configured(url: str, reason: str) -> None:
    with pytest.raises(DestinationRefused, match=reason):
        check_url(url)


def test_loopback_http_and_public_https_are_accepted() -> None:
    check_url("http://127.0.0.1:8080/hook")
    check_url("http://[::1]/hook")
    check_url("https://hooks.example.com/x?y=1")


async def _resolve(policy: DestinationPolicy, url: str) -> str:
    return str((await policy.resolve(url)).address)


@pytest.mark.parametrize(
    "address",
    ["10.1.2.3", "192.168.0.9", "172.16.5.5", "169.254.169.254", "100.64.0.1", "0.0.0.0",
     "fd00::1", "fe80::1", "::ffff:10.0.0.1", "224.0.0.1", "127.0.0.1"],
)  # fmt: skip
async def test_private_addresses_are_refused_at_send_time(address: str) -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return [address]

    policy = DestinationPolicy(resolver=resolver)
    with pytest.raises(DestinationRefused, match="private or reserved"):
        await _resolve(policy, "https://hooks.example.com/x")


async def test_dns_rebinding_is_caught_at_send_time() -> None:
    answers = iter([["93.184.216.34"], ["10.0.0.7"]])

    async def resolver(host: str, port: int) -> list[str]:
        return next(answers)

    policy = DestinationPolicy(resolver=resolver)
    target = await policy.resolve("https://hooks.example.com/x")
    assert str(target.address) == "93.184.216.34" and target.host == "hooks.example.com"
    assert target.connect_url == "https://93.184.216.34:443/x"
    with pytest.raises(DestinationRefused):
        await policy.resolve("https://hooks.example.com/x")  # the name now points inside


async def test_one_private_address_among_public_ones_is_refused() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.0.0.7"]

    with pytest.raises(DestinationRefused):
        await DestinationPolicy(resolver=resolver).resolve("https://hooks.example.com/")


async def test_explicitly_allowed_networks_and_loopback() -> None:
    allowed = DestinationPolicy(allow=parse_networks("10.20.0.0/16, 127.0.0.0/8"))
    assert await _resolve(allowed, "https://10.20.1.2/x") == "10.20.1.2"
    assert await _resolve(allowed, "http://127.0.0.1:9/x") == "127.0.0.1"
    with pytest.raises(DestinationRefused):
        await allowed.resolve("https://10.21.0.1/x")
    operator = DestinationPolicy(allow_loopback=True)
    assert await _resolve(operator, "http://127.0.0.1:9/x") == "127.0.0.1"
    with pytest.raises(DestinationRefused):
        await DestinationPolicy().resolve("http://127.0.0.1:9/x")
    assert operator.address_allowed(ipaddress.ip_address("93.184.216.34"))
    with pytest.raises(ValueError):
        parse_networks("10.0.0.0/33")
