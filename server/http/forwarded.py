"""Who the client is behind a TLS-terminating proxy: ``X-Forwarded-For`` / ``-Proto`` (pure).

How it works
------------
The headers are believed only when the TCP peer itself is one of the configured
``trusted_proxies``; from anyone else they are ignored, since a client can send any header.
The client address is then the right-most ``X-Forwarded-For`` entry that is not a trusted
proxy (each proxy appends the address it saw, so entries left of the first untrusted one
could have been written by the client). The scheme is the right-most ``X-Forwarded-Proto``
value, the one the nearest (trusted) proxy set. The result feeds the audit log's IP, the
failed-handshake throttle and HSTS; ``/metrics``' loopback check keeps using the TCP peer.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from websockets.datastructures import Headers

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """``10.0.0.0/8``, ``127.0.0.1``, ``::1`` ... as networks (``ValueError`` on a bad one)."""
    return tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries)


def _address(text: str) -> Address | None:
    text = text.strip().strip('"')
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        addr = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _trusted(addr: Address | None, trusted: tuple[Network, ...]) -> bool:
    return addr is not None and any(addr in net for net in trusted if addr.version == net.version)


@dataclass(frozen=True, slots=True)
class Client:
    """The client as far as the server can tell: its address and whether it used HTTPS."""

    ip: str | None
    https: bool
    via_proxy: bool


def resolve(
    peer: str | None, headers: Headers, trusted: tuple[Network, ...], *, tls: bool
) -> Client:
    """The client behind ``peer`` (the TCP peer address) given the request ``headers``."""
    if not trusted:  # no proxy configured (the default): nothing to parse
        return Client(peer, tls, False)
    peer_addr = _address(peer) if peer is not None else None
    if not _trusted(peer_addr, trusted):
        return Client(peer, tls, False)
    ip = peer
    hops = [h for value in headers.get_all("X-Forwarded-For") for h in value.split(",")]
    for hop in reversed(hops):
        addr = _address(hop)
        if addr is None:
            break  # garbage: stop believing the chain here
        ip = str(addr)
        if not _trusted(addr, trusted):
            break
    protos = [p.strip().lower() for v in headers.get_all("X-Forwarded-Proto") for p in v.split(",")]
    https = tls or (bool(protos) and protos[-1] == "https")
    return Client(ip, https, True)
