"""The HTTP POST of one delivery, with ``httpx``, to the address that was checked.

Why pinning: resolving the name once to check it and letting the HTTP client resolve it
again to connect would leave a window for DNS rebinding. The sender asks
:meth:`DestinationPolicy.resolve` for the checked address, connects to that address, and
sends the configured name as ``Host`` and as the TLS server name (``sni_hostname``), so the
certificate is still verified against the name. Redirects are not followed (a 3xx is a
failure: a redirect could point anywhere), proxies from the environment are ignored, the
response body is never read.
"""

from __future__ import annotations

import ssl

import httpx

from server.delivery.destination import DestinationPolicy
from server.delivery.errors import SendFailed

USER_AGENT = "Hypertab-Delivery/1"


class Sender:
    """POSTs signed bodies; one per dispatcher (it keeps a connection pool). ``aclose()``."""

    def __init__(
        self,
        policy: DestinationPolicy,
        *,
        timeout: float = 10.0,
        verify: ssl.SSLContext | None = None,
    ) -> None:
        """``verify``: the TLS trust to use (default: the system's CA bundle, via httpx)."""
        self.policy = policy
        self._client = httpx.AsyncClient(
            verify=verify if verify is not None else True,
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": USER_AGENT},
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=8),
        )

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """POST ``body``; returns the 2xx status, else raises SendFailed (or
        DestinationRefused when the destination is not allowed now)."""
        target = await self.policy.resolve(url)
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        try:
            async with self._client.stream(
                "POST",
                target.connect_url,
                content=body,
                headers={**headers, "Host": target.host_header},
                extensions=extensions,
            ) as response:
                status = response.status_code
        except httpx.HTTPError as exc:
            raise SendFailed(f"receiver not reached ({type(exc).__name__})") from None
        if not 200 <= status < 300:
            raise SendFailed(f"receiver answered {status}", status)
        return status

    async def aclose(self) -> None:
        """Close the connection pool (idempotent)."""
        await self._client.aclose()
