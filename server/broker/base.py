"""The broker seam: what a hub process needs from whatever carries broadcasts between nodes.

How it works: a node :meth:`~Broker.publish`\\ es an :class:`Envelope` for every commit (and
every presence event) it made; the broker hands it to every *other* node that has called
:meth:`~Broker.subscribe` for that envelope's (tenant, table), through the ``deliver``
callback given to :meth:`~Broker.start`. A node never gets its own envelopes back: it has
delivered them to its own subscribers already. Envelopes from one node arrive in the order
it published them, but a broker may lose some (Redis pub/sub drops messages while a
connection is down): receivers order changes by version and fill gaps from the op log
(``server/hub/relay.py``). After a lost connection is restored the broker calls ``resync``
so the node checks every table it follows for missed versions.

The payload is opaque bytes here (the relay encodes the changes): a broker moves envelopes,
it knows nothing of tables or ops.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Protocol

import msgspec


class EnvelopeKind(StrEnum):
    """What an envelope carries."""

    CHANGES = "changes"
    """Committed changes ``first``..``last`` of one table (consecutive versions)."""
    PRESENCE = "presence"
    """One presence event (``first`` = ``last`` = 0)."""


class Envelope(msgspec.Struct, frozen=True, array_like=True):
    """One broadcast: a table's committed versions ``first``..``last``, or a presence event."""

    kind: EnvelopeKind
    tenant: str
    table: str
    first: int
    last: int
    payload: bytes
    origin: str = ""
    """The publishing node's id, set by the broker (its own echo is dropped by it)."""


Deliver = Callable[[Envelope], None]
"""``deliver(envelope)``: called on the event loop for each envelope from another node."""

Resync = Callable[[], None]
"""``resync()``: envelopes may have been lost (a reconnect); check every followed table."""


class BrokerError(Exception):
    """Root of the broker's exceptions."""


class Broker(Protocol):
    """Carries envelopes between the hub processes serving one data directory."""

    node: str
    """This node's id (random per process)."""

    dropped: int
    """Envelopes this node could not send (receivers filled them from the op log)."""

    async def start(self, deliver: Deliver, resync: Resync) -> None:
        """Begin receiving; raises :class:`BrokerError` when the medium cannot be reached."""

    def publish(self, envelope: Envelope) -> None:
        """Send ``envelope`` to the other nodes following its table, in publish order.
        Never blocks and never raises: a broadcast lost here is filled from the op log."""

    async def subscribe(self, tenant: str, table: str) -> None:
        """Follow a table; returns once envelopes published from now on will arrive."""

    def unsubscribe(self, tenant: str, table: str) -> None:
        """Stop following a table (idempotent)."""

    @property
    def has_peers(self) -> bool:
        """Whether another node may be listening (False: publishing is skipped, so a hub
        alone spends nothing encoding envelopes)."""

    @property
    def healthy(self) -> bool:
        """Whether envelopes flow right now (for ``/readyz``)."""

    async def close(self) -> None:
        """Stop receiving and sending (idempotent); queued envelopes are flushed first."""
