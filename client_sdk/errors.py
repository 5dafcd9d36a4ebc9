"""The SDK's exceptions, one tree::

HypertabError
 ├── ServerError            the server refused a request: ``code`` from the wire registry
 │    └── RateLimited       over the plan's limit (the SDK retries these itself)
 ├── AuthenticationError    the handshake was refused (401/403): fix the credential
 ├── HandshakeFailed        the handshake did not finish (the peer hung up, or is no Hypertab)
 ├── TooManyRows            a ``*_where`` filter matched more than ``max_rows`` (bulk.py)
 └── ConnectionLost         the connection closed and will not be re-established
"""

from __future__ import annotations

from protocol.errors import is_temporary


class HypertabError(Exception):
    """Root of the SDK's exceptions."""


class ServerError(HypertabError):
    """The server answered a request with an ``error``."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        op_index: int | None = None,
        retry_after_ms: int | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.op_index = op_index
        self.retry_after_ms = retry_after_ms

    @property
    def temporary(self) -> bool:
        """Whether the same request can succeed if retried."""
        return is_temporary(self.code)


class RateLimited(ServerError):
    """Over the rate limit; retry after ``retry_after_ms``."""


class AuthenticationError(HypertabError):
    """The server refused the credential at the handshake (HTTP ``status``)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"handshake refused with HTTP {status}")
        self.status = status


class HandshakeFailed(HypertabError):
    """The opening handshake did not finish: the connection ended before the server's
    answer (a server that is restarting resets what waits in its listen queue), or the
    answer was no WebSocket upgrade. Reconnecting retries it; from :meth:`Client.connect`
    it means nothing usable listens at the URL now."""


class ConnectionLost(HypertabError):
    """The connection is gone for good (closed by the user, or a close code that says
    not to reconnect); ``code`` is the WebSocket close code when there was one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class RateLimitWarning(UserWarning):
    """Issued once per client when it has to wait for a rate limit (``pacing.py``)."""
