"""Tenant webhooks on the wire: add, list, remove and test (docs/webhooks.md).

Client -> server (all need ``keys:admin``; they act on the caller's own tenant):
``webhook_add`` (``url``, ``table``? id: default every table), ``webhook_list``,
``webhook_remove`` (``webhook``), ``webhook_test`` (``webhook``: one signed test request
now; a 2xx enables a webhook that was disabled after a failure). Server -> client:
``webhook_added`` (the webhook and its signing secret, shown this once),
``webhook_listing``, ``webhook_tested`` (the receiver's status or the error); remove is
answered by ``ok``. The secret appears on the wire only in ``webhook_added``,
whose ``repr`` hides it.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct

from protocol.ids import RequestId

MAX_URL_CHARS = 2048

WebhookUrl = Annotated[str, Meta(min_length=1, max_length=MAX_URL_CHARS)]
WebhookRef = Annotated[str, Meta(min_length=1, max_length=64)]
TableRef = Annotated[str, Meta(min_length=1, max_length=128)]

# --- client -> server -------------------------------------------------------------------


class WebhookAdd(Struct, tag="webhook_add"):
    """POST every committed change of ``table`` (or of every table) to ``url``."""

    id: RequestId
    url: WebhookUrl
    table: TableRef | None = None


class WebhookList(Struct, tag="webhook_list"):
    """The tenant's webhooks and how their deliveries stand."""

    id: RequestId


class WebhookRemove(Struct, tag="webhook_remove"):
    """Remove a webhook and its undelivered changes; answered by ``ok``."""

    id: RequestId
    webhook: WebhookRef


class WebhookTest(Struct, tag="webhook_test"):
    """Send one signed ``type: test`` request to the webhook now."""

    id: RequestId
    webhook: WebhookRef


WebhookClientMessage = WebhookAdd | WebhookList | WebhookRemove | WebhookTest

# --- server -> client -------------------------------------------------------------------


class WebhookInfo(Struct, omit_defaults=True):
    """A webhook and its delivery state (never its secret). Times are Unix seconds."""

    id: str
    url: str
    created_at: float
    table: str | None = None
    pending: int = 0
    delivered_batches: int = 0
    failed_batches: int = 0
    last_error: str | None = None
    last_failed: str | None = None
    disabled_at: float | None = None
    """Set when a batch failed for good; a passing ``webhook_test`` enables it again."""


class WebhookAdded(Struct, tag="webhook_added"):
    """Answers ``webhook_add``: ``secret`` signs every delivery; it is shown this once."""

    id: RequestId
    webhook: WebhookInfo
    secret: str

    def __repr__(self) -> str:
        return f"WebhookAdded(id={self.id!r}, webhook={self.webhook!r}, secret=<hidden>)"


class WebhookListing(Struct, tag="webhook_listing"):
    """Answers ``webhook_list``."""

    id: RequestId
    webhooks: list[WebhookInfo]


class WebhookTested(Struct, tag="webhook_tested", omit_defaults=True):
    """Answers ``webhook_test``: the request's id, the receiver's status or the error."""

    id: RequestId
    event: str
    status: int | None = None
    error: str | None = None


WebhookServerMessage = WebhookAdded | WebhookListing | WebhookTested
