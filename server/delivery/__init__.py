"""One delivery mechanism for everything Hypertab sends out: operator alerts and tenant
webhooks.

How it works
------------
Whatever is to be sent is first written as a row of a persistent *outbox* in the same
SQLite transaction as the event it announces (``control.db`` for alerts, the tenant's
database for tenant webhooks): an event that rolls back is never announced, and a process
killed before sending leaves the row for the next one. A dispatcher (``server.alerts``,
``server.webhooks``) claims due rows, POSTs them with :class:`~.sender.Sender`, and marks
them delivered, or schedules the next attempt by :class:`~.retry.RetryPolicy`, or, past
its bound, marks them failed (visible in the CLI and the metrics).

- :mod:`.signing`: the ``Hypertab-Signature`` header (HMAC-SHA256 over timestamp and body),
  pure; :func:`~.signing.verify` is what a receiver does, in a few lines.
- :mod:`.retry`: exponential backoff with jitter, bounded per destination; pure.
- :mod:`.destination`: which URLs and which resolved addresses may be reached (HTTPS only,
  except loopback; private ranges refused unless allowed), checked when a destination is
  configured *and* at every send, against DNS rebinding.
- :mod:`.sender`: the HTTP POST itself, with ``httpx``, connecting to the very address that
  was checked.

Exceptions: :class:`DeliveryError` is the root; :class:`DestinationRefused` (the URL or its
address is not allowed: a configuration error, never retried into success by waiting) and
:class:`SendFailed` (the receiver could not be reached or did not answer 2xx: retried).
"""

from __future__ import annotations

from server.delivery.errors import DeliveryError, DestinationRefused, SendFailed

__all__ = ["DeliveryError", "DestinationRefused", "SendFailed"]
