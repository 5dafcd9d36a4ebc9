"""Which destinations may be reached: the SSRF rules, checked twice.

Rules
-----
1. ``https://`` only; ``http://`` only to a loopback host (``127.0.0.0/8``, ``::1``,
   ``localhost``), for tests and for a relay agent on the same machine. No user info in
   the URL (credentials belong in the signature secret), no fragment.
2. Every address the host resolves to must be a public (global) address, unless it lies
   in a network the operator allowed explicitly (``HYPERTAB_DELIVERY_ALLOW_NETWORKS``,
   comma-separated CIDRs, e.g. ``10.20.0.0/16``). Loopback counts as private: allowed for
   operator alert sinks (``allow_loopback``), not for tenant webhooks unless listed.
   IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
3. :func:`check_url` applies rule 1 when a destination is configured (a clear error for the
   person configuring it); :meth:`DestinationPolicy.resolve` applies rules 1 and 2 at every
   send and returns the address checked, which the sender connects to: a name that
   resolved to a public address when the webhook was added and to ``10.0.0.1`` now (DNS
   rebinding) is refused now.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import SplitResult, urlsplit

from server.delivery.errors import DestinationRefused

ENV_ALLOW_NETWORKS = "HYPERTAB_DELIVERY_ALLOW_NETWORKS"
MAX_URL_LENGTH = 2048

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_LOOPBACK_NAMES = frozenset({"localhost", "localhost."})


@dataclass(frozen=True, slots=True)
class Target:
    """A checked destination: connect to ``address``, say ``host`` in Host and SNI."""

    scheme: str
    host: str
    port: int
    address: IPAddress
    path: str
    """Path and query, as given (``/`` when empty)."""

    @property
    def connect_url(self) -> str:
        """The URL with the checked address in place of the name."""
        literal = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return f"{self.scheme}://{literal}:{self.port}{self.path}"

    @property
    def host_header(self) -> str:
        """The ``Host`` header: the name as configured (port only when not the default)."""
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _unmapped(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback address literal."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    literal = _literal(host)
    return literal is not None and _unmapped(literal).is_loopback


def _split(url: str) -> SplitResult:
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise DestinationRefused(f"a destination URL is 1 to {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        raise DestinationRefused("a destination URL has no spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise DestinationRefused("not a valid URL") from None
    return parts


def check_url(url: str) -> SplitResult:
    """Rule 1: the URL's shape and scheme. Returns its parts; raises DestinationRefused."""
    parts = _split(url)
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    if scheme not in ("https", "http"):
        raise DestinationRefused("a destination URL must start with https://")
    if not host:
        raise DestinationRefused("a destination URL names a host")
    if parts.username is not None or parts.password is not None:
        raise DestinationRefused("no user or password in a destination URL; it is signed")
    if parts.fragment:
        raise DestinationRefused("no #fragment in a destination URL")
    if scheme == "http" and not is_loopback_host(host):
        raise DestinationRefused("plain http:// is refused except to a loopback host; use https")
    return parts


def parse_networks(value: str | Iterable[str] | None) -> tuple[IPNetwork, ...]:
    """CIDRs from a comma-separated string (``HYPERTAB_DELIVERY_ALLOW_NETWORKS``)."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    networks: list[IPNetwork] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{ENV_ALLOW_NETWORKS}: {item!r} is not a network") from None
    return tuple(networks)


@dataclass(frozen=True, slots=True)
class DestinationPolicy:
    """Rule 2: which resolved addresses may be connected to."""

    allow: tuple[IPNetwork, ...] = ()
    allow_loopback: bool = False
    resolver: object = field(default=None, compare=False)
    """For tests: ``async (host, port) -> [address, ...]``; ``None``: the system resolver."""

    @classmethod
    def from_env(
        cls, *, allow_loopback: bool, environ: Mapping[str, str] | None = None
    ) -> DestinationPolicy:
        """The policy with ``HYPERTAB_DELIVERY_ALLOW_NETWORKS``."""
        env = os.environ if environ is None else environ
        return cls(parse_networks(env.get(ENV_ALLOW_NETWORKS)), allow_loopback)

    def address_allowed(self, address: IPAddress) -> bool:
        """Whether connecting to ``address`` is allowed."""
        plain = _unmapped(address)
        if any(plain in net for net in self.allow if net.version == plain.version):
            return True
        if plain.is_loopback:
            return self.allow_loopback
        return plain.is_global and not plain.is_multicast

    async def _addresses(self, host: str, port: int) -> list[IPAddress]:
        literal = _literal(host)
        if literal is not None:
            return [literal]
        if self.resolver is not None:
            found = await self.resolver(host, port)  # type: ignore[operator]
            return [ipaddress.ip_address(a) for a in found]
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError:
            raise DestinationRefused(f"host {host!r} does not resolve") from None
        return [ipaddress.ip_address(info[4][0]) for info in infos]

    async def resolve(self, url: str) -> Target:
        """Rules 1 and 2 now: the address to connect to, or DestinationRefused.

        Every resolved address must be allowed (a name with one private address among
        public ones is refused: the OS could pick either).
        """
        parts = check_url(url)
        scheme = parts.scheme.lower()
        host = parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        addresses = await self._addresses(host, port)
        if not addresses:
            raise DestinationRefused(f"host {host!r} does not resolve")
        for address in addresses:
            if not self.address_allowed(address):
                raise DestinationRefused(
                    f"{host!r} resolves to a private or reserved address ({address}); "
                    f"allow its network in {ENV_ALLOW_NETWORKS} if intended"
                )
        if scheme == "http" and not all(_unmapped(a).is_loopback for a in addresses):
            raise DestinationRefused("plain http:// only reaches a loopback address")
        path = parts.path or "/"
        if parts.query:
            path = f"{path}?{parts.query}"
        return Target(scheme, host, port, addresses[0], path)
