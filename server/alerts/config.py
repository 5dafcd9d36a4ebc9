"""The alert sinks, from the environment (docs/alerts.md).

``HYPERTAB_ALERT_WEBHOOK_URL``          the webhook sink (https://…; http:// to loopback only)
``HYPERTAB_ALERT_WEBHOOK_SECRET``       its signing secret (at least 16 bytes of text), or
``HYPERTAB_ALERT_WEBHOOK_SECRET_FILE``  a file holding it (mode 0600 or stricter)
``HYPERTAB_ALERT_LOG``                  ``on`` (default) or ``off``: the log sink (WARNING)
``HYPERTAB_ALERT_POLL``                 how often the hub looks for new alerts (s, 0.05)

A webhook URL without a secret, a secret shorter than 16 bytes, or a refused URL stops the
server from starting: a misconfigured pager must not fail silently.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from server.delivery.destination import DestinationPolicy, check_url
from server.delivery.errors import DestinationRefused
from server.delivery.retry import RetryPolicy
from server.delivery.signing import MIN_SECRET_BYTES

ENV_URL = "HYPERTAB_ALERT_WEBHOOK_URL"
ENV_SECRET = "HYPERTAB_ALERT_WEBHOOK_SECRET"  # noqa: S105 - a variable name
ENV_SECRET_FILE = "HYPERTAB_ALERT_WEBHOOK_SECRET_FILE"  # noqa: S105
ENV_LOG = "HYPERTAB_ALERT_LOG"
ENV_POLL = "HYPERTAB_ALERT_POLL"


class AlertConfigError(ValueError):
    """The alert sink configuration is invalid (the message names the variable)."""


@dataclass(frozen=True, slots=True)
class AlertConfig:
    """Where alerts go and how deliveries are retried."""

    webhook_url: str | None = None
    webhook_secret: bytes = field(default=b"", repr=False)
    log: bool = True
    poll: float = 0.05
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    destinations: DestinationPolicy = field(
        default_factory=lambda: DestinationPolicy(allow_loopback=True)
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AlertConfig:
        """Read and check the ``HYPERTAB_ALERT_*`` and ``HYPERTAB_DELIVERY_*`` variables."""
        env = os.environ if environ is None else environ
        url = env.get(ENV_URL) or None
        secret = b""
        if url is not None:
            try:
                check_url(url)
            except DestinationRefused as exc:
                raise AlertConfigError(f"{ENV_URL}: {exc}") from None
            secret = _secret(env)
        log_value = (env.get(ENV_LOG) or "on").lower()
        if log_value not in ("on", "off"):
            raise AlertConfigError(f"{ENV_LOG} must be on or off")
        try:
            poll = float(env.get(ENV_POLL) or 0.05)
            retry = RetryPolicy.from_env(env)
            destinations = DestinationPolicy.from_env(allow_loopback=True, environ=env)
        except ValueError as exc:
            raise AlertConfigError(str(exc)) from None
        if poll <= 0:
            raise AlertConfigError(f"{ENV_POLL} must be positive")
        return cls(url, secret, log_value == "on", poll, retry, destinations)


def _secret(env: Mapping[str, str]) -> bytes:
    inline = env.get(ENV_SECRET)
    named = env.get(ENV_SECRET_FILE)
    if inline and named:
        raise AlertConfigError(f"set one of {ENV_SECRET} and {ENV_SECRET_FILE}")
    if named:
        path = Path(named)
        try:
            if path.stat().st_mode & 0o077:
                raise AlertConfigError(f"{ENV_SECRET_FILE}: {path} must be mode 0600")
            raw = path.read_bytes().strip()
        except OSError as exc:
            raise AlertConfigError(f"{ENV_SECRET_FILE}: {exc.strerror}") from None
    elif inline:
        raw = inline.encode()
    else:
        raise AlertConfigError(f"{ENV_URL} is set: set {ENV_SECRET} or {ENV_SECRET_FILE}")
    if len(raw) < MIN_SECRET_BYTES:
        raise AlertConfigError(f"the alert signing secret has at least {MIN_SECRET_BYTES} bytes")
    return raw
