"""Security headers: the values browsers enforce, by plain function calls."""

from __future__ import annotations

import pytest

from server.http import content_security_policy, new_nonce, security_headers


def directives(csp: str) -> dict[str, str]:
    out = {}
    for part in csp.split(";"):
        name, _, value = part.strip().partition(" ")
        out[name] = value
    return out


def test_every_response_header() -> None:
    h = security_headers()
    assert h["Cross-Origin-Opener-Policy"] == "same-origin"
    assert h["Cross-Origin-Resource-Policy"] == "same-origin"
    assert h["X-Frame-Options"] == "DENY"
    assert h["X-Content-Type-Options"] == "nosniff"
    assert h["Referrer-Policy"] == "no-referrer"
    assert h["Strict-Transport-Security"] == "max-age=63072000; includeSubDomains; preload"
    assert h["Cache-Control"] == "no-store"


def test_default_csp_allows_nothing() -> None:
    d = directives(security_headers()["Content-Security-Policy"])
    assert d["default-src"] == "'none'"
    assert d["frame-ancestors"] == "'none'"
    assert d["base-uri"] == "'none'"
    assert "script-src" not in d and "connect-src" not in d


def test_page_csp_allows_only_its_nonce() -> None:
    nonce = new_nonce()
    d = directives(security_headers(nonce)["Content-Security-Policy"])
    assert d["script-src"] == f"'nonce-{nonce}'"
    assert d["style-src"] == f"'nonce-{nonce}'"
    assert d["connect-src"] == "'self'"
    assert d["default-src"] == "'none'" and d["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in security_headers(nonce)["Content-Security-Policy"]


def test_nonces_are_fresh_and_long() -> None:
    nonces = {new_nonce() for _ in range(1000)}
    assert len(nonces) == 1000
    assert all(len(n) >= 22 for n in nonces)


@pytest.mark.parametrize("bad", ["", "short", "abc'; script-src *", "a" * 22 + " x", "é" * 30])
def test_malformed_nonce_cannot_inject_directives(bad: str) -> None:
    with pytest.raises(ValueError):
        content_security_policy(bad)


def test_headers_are_plain_ascii_without_newlines() -> None:
    for name, value in security_headers(new_nonce()).items():
        assert (name + value).isascii()
        assert "\r" not in value and "\n" not in value
