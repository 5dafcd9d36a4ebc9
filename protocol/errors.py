"""The two registries of the wire: error codes and WebSocket close codes.

Errors are data on the wire (centrifuge style): an ``error`` message carries a stable
``code`` from :data:`ERRORS`, a human message, and whether retrying the same request can
succeed (``temporary``). Close codes say whether and how a client should reconnect.

Exception tree (one root per package)::

    ProtocolError                 the wire itself was misused
     ├── DecodeError              bytes that are not a valid message (remote's fault)
     └── WireError                an error message received from the peer, with its code
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    """A registered error code: what it means and whether a retry can succeed."""

    code: str
    temporary: bool
    meaning: str


_SPECS = (
    ErrorSpec("bad_message", False, "The frame is not a valid message (syntax, types, limits)."),
    ErrorSpec("unknown_type", False, "The message type tag is not one the server knows."),
    ErrorSpec("invalid_op", False, "An op in the batch is malformed or not allowed."),
    ErrorSpec("unknown_table", False, "The table id or name does not exist for this tenant."),
    ErrorSpec("table_exists", False, "A table with this id or name already exists."),
    ErrorSpec("unknown_column", False, "The column id does not exist in the table."),
    ErrorSpec("column_exists", False, "A column with this id or name already exists."),
    ErrorSpec("unknown_row", False, "The row id does not exist in the table."),
    ErrorSpec("row_exists", False, "A row with this id already exists."),
    ErrorSpec("row_deleted", False, "The row was deleted; a deleted row stays deleted."),
    ErrorSpec("type_mismatch", False, "A cell value does not fit its column's type."),
    ErrorSpec("read_only", False, "The column is computed (formula) and cannot be written."),
    ErrorSpec("formula_error", False, "The formula is invalid or would create a cycle."),
    ErrorSpec("unknown_function", False, "No custom function with that name in this tenant."),
    ErrorSpec(
        "invalid_filter",
        False,
        "A query's filter or sort is over its limits or does not fit the column types.",
    ),
    ErrorSpec(
        "query_timeout",
        False,
        "The query page ran past the server's time limit; narrow the filter.",
    ),
    ErrorSpec(
        "invalid_cursor",
        False,
        "The query cursor is malformed or from another query; start again without `after`.",
    ),
    ErrorSpec("not_subscribed", False, "The request needs a subscription to the table first."),
    ErrorSpec("forbidden", False, "The credential's scopes or table allowlist do not permit this."),
    ErrorSpec("plan_required", False, "The tenant's plan does not include this feature."),
    ErrorSpec("auth_failed", False, "The in-band token was refused; the old one still applies."),
    ErrorSpec("unknown_key", False, "No such API key in the caller's tenant."),
    ErrorSpec("key_not_rotatable", False, "The key is revoked or expired; create a new one."),
    ErrorSpec("invalid_secret", False, "The secret's name, kind or value breaks the rules."),
    ErrorSpec("secret_not_found", False, "No secret with that name in this tenant."),
    ErrorSpec(
        "secret_unreadable",
        False,
        "The stored ciphertext did not authenticate (tampered or moved); no value returned.",
    ),
    ErrorSpec(
        "secret_key_missing",
        False,
        "The secret names a data key version that does not exist; it cannot be read. Set it again.",
    ),
    ErrorSpec("secrets_unavailable", True, "No master keys are configured on the server."),
    ErrorSpec(
        "webhook_refused",
        False,
        "The webhook URL is not allowed (https only; no private or reserved address).",
    ),
    ErrorSpec("unknown_webhook", False, "No webhook with that id in this tenant."),
    ErrorSpec("rate_limited", True, "Over the plan's rate limit; retry after retry_after_ms."),
    ErrorSpec(
        "over_plan_limit",
        False,
        "The batch has more ops than the plan allows per window; split it.",
    ),
    ErrorSpec(
        "store_conflict",
        False,
        "The tenant database refused the write: a constraint failed against what the file "
        "holds (e.g. another process wrote it). Nothing was applied; a retry fails the same way.",
    ),
    ErrorSpec(
        "store_failed",
        False,
        "The tenant database cannot be written (disk full, read-only, I/O error, corruption). "
        "Nothing was applied; retrying cannot help until an operator fixes the storage.",
    ),
    ErrorSpec("unavailable", True, "The server cannot serve this right now (shutting down)."),
    ErrorSpec("internal", True, "An unexpected server failure; nothing was applied."),
)

ERRORS: dict[str, ErrorSpec] = {spec.code: spec for spec in _SPECS}


def is_temporary(code: str) -> bool:
    """Whether retrying a request that failed with ``code`` can succeed unchanged."""
    spec = ERRORS.get(code)
    return spec.temporary if spec is not None else False


class CloseCode(enum.IntEnum):
    """WebSocket close codes the server sends. See :data:`CLOSE_RECONNECT`."""

    NORMAL = 1000
    GOING_AWAY = 1001  # server shutdown or restart
    PROTOCOL_ERROR = 1002
    INVALID_DATA = 1007  # a text frame that is not valid UTF-8 (RFC 6455 section 8.1)
    MESSAGE_TOO_BIG = 1009
    INTERNAL = 1011
    BAD_CLIENT = 4000  # repeated protocol violations
    AUTH_EXPIRED = 4001  # JWT expired and was not refreshed in band
    CREDENTIAL_REVOKED = 4003  # key revoked or rotated, or tenant deleted
    SLOW_CONSUMER = 4008  # fell behind the send buffer bound
    TOO_MANY_CONNECTIONS = 4009  # per-principal connection cap
    RATE_ABUSE = 4029  # sustained rate-limit violations


class Reconnect(enum.Enum):
    """What a client should do after a close code."""

    YES = "reconnect with backoff, resume with since"
    NEW_CREDENTIAL = "reconnect only with a fresh credential"
    BACKOFF = "reconnect after a long backoff"
    NO = "do not reconnect; fix the client"


CLOSE_RECONNECT: dict[int, Reconnect] = {
    CloseCode.NORMAL: Reconnect.NO,
    CloseCode.GOING_AWAY: Reconnect.YES,
    CloseCode.PROTOCOL_ERROR: Reconnect.NO,
    CloseCode.INVALID_DATA: Reconnect.NO,
    CloseCode.MESSAGE_TOO_BIG: Reconnect.NO,
    CloseCode.INTERNAL: Reconnect.YES,
    CloseCode.BAD_CLIENT: Reconnect.NO,
    CloseCode.AUTH_EXPIRED: Reconnect.NEW_CREDENTIAL,
    CloseCode.CREDENTIAL_REVOKED: Reconnect.NEW_CREDENTIAL,
    CloseCode.SLOW_CONSUMER: Reconnect.YES,
    CloseCode.TOO_MANY_CONNECTIONS: Reconnect.BACKOFF,
    CloseCode.RATE_ABUSE: Reconnect.BACKOFF,
}


class ProtocolError(Exception):
    """Root of the protocol package's exceptions."""


class DecodeError(ProtocolError):
    """Bytes received from the peer are not a valid message. The peer's fault."""


class WireError(ProtocolError):
    """An ``error`` message received from the peer, as an exception."""

    def __init__(self, code: str, message: str, retry_after_ms: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retry_after_ms = retry_after_ms

    @property
    def temporary(self) -> bool:
        """Whether the same request can succeed if retried."""
        return is_temporary(self.code)
