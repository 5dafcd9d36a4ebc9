"""Browser origins: the allowlist syntax and the exact-match check. Pure.

How it works
------------
A browser sends ``Origin: <scheme>://<host>[:<port>]``, already serialised: scheme and
host in lower case, IDNs in punycode, the default port left out. An allowlist entry is
stored in that same serialised form (:func:`normalize_origin` turns an admin's input such as
``HTTPS://App.Example.com:443`` into ``https://app.example.com``), and a request's
``Origin`` must then equal an entry *exactly* (:func:`origin_allowed`). There is no
wildcard, suffix or prefix matching, so ``https://app.example.com.evil.net``,
``https://evilapp.example.com``, ``http://app.example.com`` (another scheme) and
``https://app.example.com:8443`` (another port) never match ``https://app.example.com``.
``null`` (sandboxed frames, ``file:`` pages, some redirects) is never allowed: it names no
site, so every opaque origin would share it.

Only ``http`` and ``https`` origins can be listed; a page served from ``chrome-extension:``,
``file:`` or ``ws:`` gets no access.

The hub's own origin needs no entry (:func:`same_origin`): the spreadsheet page the hub
serves connects back to it with ``Origin`` naming the very host and port the browser put in
``Host``. A browser sets both headers itself, so a page elsewhere cannot claim them; a page
on a DNS name rebound to the hub gets no credential with it (credentials are never
ambient: the page holds its own, in ``sessionStorage`` of the hub's origin).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection

SCHEMES: dict[str, int] = {"https": 443, "http": 80}
MAX_ORIGIN_LENGTH = 255
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_ORIGIN = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://([^/?#@\s]+)")


class InvalidOrigin(ValueError):
    """Not an origin that can be put on an allowlist (the admin's input is wrong)."""


def _host(raw: str) -> str:
    if raw.startswith("["):  # IPv6 literal
        try:
            address = ipaddress.IPv6Address(raw[1:-1] if raw.endswith("]") else "")
        except ValueError:
            raise InvalidOrigin("not a valid IPv6 address") from None
        return f"[{address.compressed}]"
    host = raw.lower()
    if not host or len(host) > 253 or host.endswith("."):
        raise InvalidOrigin("not a valid host name")
    if not all(_LABEL.fullmatch(label) for label in host.split(".")):
        raise InvalidOrigin("host names are letters, digits, hyphens and dots (IDNs in punycode)")
    return host


def normalize_origin(value: str) -> str:
    """``value`` in the serialised form browsers send, or :class:`InvalidOrigin`.

    Accepts ``http``/``https`` with a host and an optional port; refuses paths, queries,
    fragments, user info, wildcards and ``null``. Default ports are dropped.
    """
    if not isinstance(value, str) or len(value) > MAX_ORIGIN_LENGTH:
        raise InvalidOrigin("an origin is a string of at most 255 characters")
    text = value.strip()
    if text.lower() == "null":
        raise InvalidOrigin("the null origin names no site and cannot be allowed")
    match = _ORIGIN.fullmatch(text.rstrip("/") if text.count("/") == 3 else text)
    if match is None:
        raise InvalidOrigin("an origin is scheme://host[:port], without path or query")
    scheme, authority = match.group(1).lower(), match.group(2)
    if scheme not in SCHEMES:
        raise InvalidOrigin("only http and https origins can be allowed")
    if "*" in authority:
        raise InvalidOrigin("wildcards are not supported: list each origin")
    host_part, port = authority, None
    tail = authority.rsplit("]", 1)[-1] if authority.startswith("[") else authority
    if ":" in tail:
        host_part, _, port_text = authority.rpartition(":")
        if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise InvalidOrigin("the port must be a number from 1 to 65535")
        port = int(port_text)
    host = _host(host_part)
    if port is None or port == SCHEMES[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def is_origin(value: str) -> bool:
    """Whether ``value`` is a serialised http(s) origin (exactly as a browser sends one)."""
    try:
        return normalize_origin(value) == value
    except InvalidOrigin:
        return False


def origin_allowed(origin: str, *allowlists: Collection[str]) -> bool:
    """Whether the request's ``Origin`` header equals an entry of one of ``allowlists``.

    Exact string comparison against stored, normalised entries: a header that is not
    already in serialised form (upper case, default port spelled out, trailing slash) does
    not come from a browser and matches nothing.
    """
    if origin == "null" or not is_origin(origin):
        return False
    return any(origin in allowed for allowed in allowlists)


def same_origin(origin: str, host: str | None) -> bool:
    """Whether ``origin`` is the origin of the server reached at ``host`` (the request's
    ``Host`` header): same host and port, the scheme's default port written or not."""
    if host is None or not is_origin(origin):
        return False
    scheme, _, authority = origin.partition("://")
    claimed = host.strip().lower()
    default = f":{SCHEMES[scheme]}"
    if claimed.endswith(default):
        claimed = claimed[: -len(default)]
    return claimed == authority
