"""The JSON body of a webhook delivery, and its idempotency id. Pure.

::

    {"format": "hypertab-webhook/1", "id": "wh_…", "type": "changes",
     "webhook": "<id>", "tenant": "<id>", "table": "<table id>",
     "from_version": 41, "to_version": 57,
     "changes": [{"version": 41, "ops": [...], "by": "...", "client": "...", "op": "..."}, …]}

``changes`` holds every committed change of the table from ``from_version`` to
``to_version``, in order, exactly as subscribers receive them (docs/protocol.md). The id is
a digest of webhook, table and range: a retry of the same batch carries the same id.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from protocol.messages import Change

FORMAT = "hypertab-webhook/1"
MAX_BATCH = 500
"""Changes per delivery at most."""
MAX_BATCH_BYTES = 1 << 20
"""Encoded changes per delivery at most (one change always goes, whatever its size)."""

_decoder = msgspec.msgpack.Decoder(Change)
_json = msgspec.json.Encoder()


def delivery_id(hook: str, table: str, first: int, last: int) -> str:
    """``wh_`` + 32 hex of SHA-256 over webhook, table and version range."""
    digest = hashlib.sha256(f"{hook}\n{table}\n{first}\n{last}".encode()).hexdigest()
    return f"wh_{digest[:32]}"


def body(hook: str, tenant: str, table: str, encoded: list[bytes]) -> tuple[str, bytes]:
    """The id and JSON body of one batch of msgpack-encoded changes (in version order)."""
    changes = [_decoder.decode(blob) for blob in encoded]
    first, last = changes[0].version, changes[-1].version
    event_id = delivery_id(hook, table, first, last)
    doc: dict[str, Any] = {
        "format": FORMAT,
        "id": event_id,
        "type": "changes",
        "webhook": hook,
        "tenant": tenant,
        "table": table,
        "from_version": first,
        "to_version": last,
        "changes": changes,
    }
    return event_id, _json.encode(doc)


def test_body(hook: str, tenant: str, event_id: str, now: float) -> bytes:
    """The body of ``hypertab webhook test``: no changes, ``type: test``."""
    doc = {"format": FORMAT, "id": event_id, "type": "test", "webhook": hook, "tenant": tenant,
           "at": now}  # fmt: skip
    return _json.encode(doc)
