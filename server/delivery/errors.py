"""The delivery exceptions (tree drawn in :mod:`server.delivery`)."""

from __future__ import annotations


class DeliveryError(Exception):
    """Root of the delivery exceptions."""


class DestinationRefused(DeliveryError):
    """The destination is not allowed: bad scheme, private address, unresolvable name.

    The operator's (or the tenant's) configuration is at fault; the message says which rule
    was broken and never contains a secret.
    """


class SendFailed(DeliveryError):
    """The receiver was not reached or did not answer with a 2xx status (retryable).

    ``status`` is the HTTP status when one was received, else ``None``.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
