"""The pure parts of identity: origin syntax, expiry arithmetic, grants, log filtering."""

from __future__ import annotations

import logging

import pytest
from websockets.datastructures import Headers

from client_sdk.auth import refresh_delay
from client_sdk.keys import key_id_of
from server.auth.handshake import AmbiguousCredential, HandshakeLogFilter, bearer_token
from server.auth.origins import InvalidOrigin, normalize_origin, origin_allowed
from server.auth.principal import CredentialKind, Plan, Principal, Scope, TenantId
from server.hub.expiry import close_delay, is_expired
from server.hub.identity import covers, same_identity


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://app.example.com", "https://app.example.com"),
        ("HTTPS://App.Example.COM:443", "https://app.example.com"),
        ("http://localhost:80/", "http://localhost"),
        ("http://localhost:3000", "http://localhost:3000"),
        ("https://[::1]:8443", "https://[::1]:8443"),
        ("https://xn--bcher-kva.example", "https://xn--bcher-kva.example"),
    ],
)
def test_origins_are_normalised(raw: str, expected: str) -> None:
    assert normalize_origin(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "null",
        "NULL",
        "",
        "app.example.com",
        "ftp://app.example.com",
        "ws://app.example.com",
        "file://host",
        "https://*.example.com",
        "https://user@app.example.com",
        "https://app.example.com/path",
        "https://app.example.com?q",
        "https://app.example.com:0",
        "https://app.example.com:70000",
        "https://app.example.com.",
        "https://bücher.example",
        "https://app example.com",
    ],
)
def test_bad_origins_are_refused(raw: str) -> None:
    with pytest.raises(InvalidOrigin):
        normalize_origin(raw)


def test_origin_match_is_exact() -> None:
    allowed = {"https://app.example.com"}
    assert origin_allowed("https://app.example.com", allowed)
    for header in (
        "https://app.example.com.evil.net",
        "https://evilapp.example.com",
        "http://app.example.com",
        "https://app.example.com:443",
        "https://APP.example.com",
        "null",
    ):
        assert not origin_allowed(header, allowed), header
    assert origin_allowed("https://b.example", allowed, {"https://b.example"})


def test_bearer_token_sources() -> None:
    assert bearer_token(Headers({"Authorization": "Bearer abc"})) == "abc"
    assert bearer_token(Headers({"Authorization": "Basic abc"})) is None
    proto = Headers({"Sec-WebSocket-Protocol": "hypertab.v1.json, hypertab.bearer.tok"})
    assert bearer_token(proto) == "tok"
    both = Headers()
    both["Authorization"] = "Bearer a"
    both["Authorization"] = "Bearer b"
    with pytest.raises(AmbiguousCredential):
        bearer_token(both)
    twice = Headers({"Sec-WebSocket-Protocol": "hypertab.bearer.a, hypertab.bearer.b"})
    with pytest.raises(AmbiguousCredential):
        bearer_token(twice)


def test_log_filter_blanks_credentials() -> None:
    flt = HandshakeLogFilter()
    for msg, args in (
        ("< GET %s HTTP/1.1", ("/v1/ws?token=ht_live_x",)),
        ("< %s: %s", ("Authorization", "Bearer ht_live_secret")),
        ("< %s: %s", ("Sec-WebSocket-Protocol", "hypertab.v1.json, hypertab.bearer.eyJsecret")),
    ):
        record = logging.LogRecord("server.websockets", 10, __file__, 1, msg, args, None)
        assert flt.filter(record)
        text = record.getMessage()
        assert "secret" not in text and "token=" not in text and "ht_live_x" not in text


def test_expiry_arithmetic() -> None:
    assert close_delay(None, now=100.0, grace=5) is None
    assert close_delay(110.0, now=100.0, grace=0) == 10.0
    assert close_delay(110.0, now=100.0, grace=5) == 15.0
    assert close_delay(90.0, now=100.0, grace=5) == 0.0
    assert is_expired(100.0, now=100.0) and not is_expired(None, now=1e12)
    assert refresh_delay(200.0, now=100.0) == pytest.approx(80.0)
    assert refresh_delay(50.0, now=100.0) == 0.0


def _p(
    scopes: set[Scope], tables: set[str] | None = None, sub: str = "alice", tenant: str = "t" * 16
) -> Principal:
    return Principal(
        tenant=TenantId(tenant),
        subject=sub,
        kind=CredentialKind.JWT,
        credential_id=f"jwt:{tenant}:{sub}",
        scopes=frozenset(scopes),
        plan=Plan.FREE,
        tables=frozenset(tables) if tables is not None else None,
    )


def test_grants_never_escalate() -> None:
    admin = _p({Scope.KEYS_ADMIN, Scope.TABLES_READ}, {"x"})
    assert covers(admin, frozenset({Scope.TABLES_READ}), frozenset({"x"}))
    assert not covers(admin, frozenset({Scope.TABLES_WRITE}), frozenset({"x"}))
    assert not covers(admin, frozenset({Scope.TABLES_READ}), None)  # all tables > {x}
    assert not covers(admin, frozenset({Scope.TABLES_READ}), frozenset({"x", "y"}))
    assert covers(_p({Scope.TABLES_READ}), frozenset({Scope.TABLES_READ}), None)


def test_same_identity() -> None:
    old = _p({Scope.TABLES_READ, Scope.TABLES_WRITE})
    assert same_identity(old, _p({Scope.TABLES_READ, Scope.TABLES_WRITE, Scope.SCHEMA_WRITE}))
    assert not same_identity(old, _p({Scope.TABLES_READ}))
    assert not same_identity(old, _p({Scope.TABLES_READ, Scope.TABLES_WRITE}, sub="bob"))
    assert not same_identity(old, _p({Scope.TABLES_READ, Scope.TABLES_WRITE}, tenant="u" * 16))


def test_key_id_of() -> None:
    assert key_id_of("ht_live_abcdefghijklmnop_SECRET") == "abcdefghijklmnop"
    assert key_id_of("eyJ.x.y") is None and key_id_of(None) is None
