"""Which ``Host`` header values the hub answers (pure): the defence against DNS rebinding.

How it works
------------
A page on ``http://evil.example`` can make its name resolve to 127.0.0.1 a moment later
(DNS rebinding); the browser then sends the page's requests to the hub, same-origin from its
point of view, with ``Host: evil.example``. The hub refuses any request whose ``Host`` is not
one of its own names, so such a page reaches neither ``/metrics`` (open to loopback peers
without a token) nor any other route.

Allowed by default, with any port:

* IP literals (``127.0.0.1``, ``[::1]``, ``203.0.113.5``): a rebinding attack always uses
  a name, since the browser sends the name it resolved, never the address;
* ``localhost`` and ``*.localhost`` (RFC 6761: browsers resolve them to loopback themselves);
* the bound ``host`` when it is a name;
* every entry of ``allowed_hosts``: a name, or ``*.example.com`` for any name under
  ``example.com``; ``*`` alone turns the check off (a proxy in front checks ``Host``).

Names compare case-insensitively and without a trailing dot. A request without a ``Host``
header (HTTP/1.1 requires one) or with several is refused too.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

__all__ = ["HostAllowlist", "host_name"]


def host_name(value: str) -> str | None:
    """The host part of a ``Host`` header value, lower case, without port or trailing dot.

    ``None`` when the value is not ``host``, ``host:port``, ``[v6]`` or ``[v6]:port``.
    """
    value = value.strip()
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or (value[end + 1 :] and not _is_port(value[end + 1 :])):
            return None
        inner = value[1:end]
        try:
            ipaddress.IPv6Address(inner.split("%", 1)[0])
        except ValueError:
            return None
        return inner.lower()
    name, sep, port = value.rpartition(":") if ":" in value else (value, "", "")
    if sep and not _is_port(":" + port):
        return None
    name = name.rstrip(".").lower()
    if not name or any(c in name for c in " /\\@[]:"):
        return None
    return name


def _is_port(text: str) -> bool:
    return text.startswith(":") and text[1:].isdigit() and len(text) <= 6


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    return True


_DECIDED_MAX = 1024
_DECIDED_VALUE_MAX = 255


class HostAllowlist:
    """The ``Host`` values one hub answers; see the module docstring for the rules."""

    def __init__(self, allowed: Iterable[str] = (), *, bind_host: str | None = None) -> None:
        entries = [e.strip().rstrip(".").lower() for e in allowed if e.strip()]
        self.any = "*" in entries
        """``*`` was listed: every ``Host`` is answered."""
        self.names = {e for e in entries if not e.startswith("*")} | {"localhost"}
        self.suffixes = (*(e[1:] for e in entries if e.startswith("*.")), ".localhost")
        if bind_host:
            bound = host_name(bind_host)
            if bound is not None and not _is_address(bound):
                self.names.add(bound)
        self._decided: dict[str, bool] = {}
        """Answers by ``Host`` value: the rules never change, and parsing an address on
        every handshake was ~3 % of one (bench/RESULTS.md). Bounded: emptied when full."""

    def allows(self, values: list[str]) -> bool:
        """Whether a request with these ``Host`` header values (usually one) is answered."""
        if self.any:
            return True
        if len(values) != 1:
            return False
        value = values[0]
        decided = self._decided.get(value)
        if decided is None:
            decided = self._decide(value)
            if len(value) <= _DECIDED_VALUE_MAX:  # what a page sends can't pin much memory
                if len(self._decided) >= _DECIDED_MAX:
                    self._decided.clear()
                self._decided[value] = decided
        return decided

    def _decide(self, value: str) -> bool:
        name = host_name(value)
        if name is None:
            return False
        return _is_address(name) or name in self.names or name.endswith(self.suffixes)
