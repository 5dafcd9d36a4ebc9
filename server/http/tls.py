"""The server's TLS context: ``--tls-cert`` / ``--tls-key`` (PEM), modern defaults.

TLS 1.2 is the floor (1.3 preferred when both ends have it); ``ssl.create_default_context``
already disables compression and the weak suites and prefers the server's cipher order.
A key file readable by group or others is refused, like every other key file of the server.
"""

from __future__ import annotations

import ssl
from pathlib import Path


class TlsConfigError(Exception):
    """The certificate or key cannot be used; the message names the file and why."""


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server-side context for ``cert`` (chain, PEM) and its private ``key`` (PEM)."""
    try:
        mode = key.stat().st_mode
    except OSError as exc:
        raise TlsConfigError(f"tls_key {key}: {exc.strerror or exc}") from None
    if mode & 0o077:
        raise TlsConfigError(f"tls_key {key} must not be readable by group or others (chmod 600)")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        context.load_cert_chain(cert, key)
    except FileNotFoundError as exc:
        raise TlsConfigError(f"{exc.filename or cert}: no such file") from None
    except (ssl.SSLError, OSError) as exc:
        raise TlsConfigError(
            f"tls_cert {cert} / tls_key {key}: not a PEM certificate chain and its "
            f"matching private key ({getattr(exc, 'reason', None) or exc})"
        ) from None
    return context
