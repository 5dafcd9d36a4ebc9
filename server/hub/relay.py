"""Changes and presence between the hub processes of one data directory.

How it works: after a commit, the writing process hands the changes to :meth:`Relay.
committed`, which publishes ONE envelope per table per commit through the broker and
delivers to this process's own subscribers at once (no round trip through Redis; the
broker never returns a node its own envelopes, so nothing arrives twice). Envelopes from
other processes arrive in :meth:`Relay.received`. Both paths go through the table's
:class:`~server.hub.sequencer.Sequencer`, so local subscribers see versions in strict order
whichever process wrote them: an early version is held, and a gap older than
``GAP_FILL_SECONDS`` (a broadcast lost, or slower than the op log) is read from the op log.

A gap shows only once a later version arrives. When none does (the writing process died
between its COMMIT and the publish, or Redis lost the last broadcast of a burst), the
watermark round finds it: every ``WATERMARK_SECONDS`` each followed table's version in the
database is compared with what was delivered here, and a version that was already in the
database a round ago and is still undelivered is read from the op log. The round runs only
while there are peers and followed tables; it costs one read per tenant with followed
tables per round.

A process follows a table (subscribes to it on the broker) while it has a subscriber of it.
The sequencer starts at the version the first subscriber saw in its catalog, which is
never ahead of the database; every later snapshot is read after the broker subscription
is confirmed, so whatever a follower missed before that is in its snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import msgspec

from protocol.errors import CloseCode
from protocol.messages import Change, PresenceEvent
from server.broker.base import Broker, Envelope, EnvelopeKind
from server.hub.fanout import Hub
from server.hub.sequencer import Sequencer
from server.tasks import TaskOwner

log = logging.getLogger(__name__)

GAP_FILL_SECONDS = 0.010
"""How long a missing version may keep later ones waiting before the op log is read."""

FILL_RETRY_SECONDS = 0.5
"""Wait before reading the op log again after a failed read."""

WATERMARK_SECONDS = 1.0
"""How often each followed table's version in the database is compared with what was
delivered here: a commit whose broadcast never comes reaches this process's subscribers
within about two rounds."""

Fill = Callable[[str, str, int], Awaitable[list[Change] | None]]
"""``fill(tenant, table, since)``: the committed changes after ``since`` from the op log, or
None when it no longer holds them all (or the table is gone)."""

Versions = Callable[[str], Awaitable[dict[str, int]]]
"""``versions(tenant)``: each of the tenant's tables' committed version in the database."""

_changes_encoder = msgspec.msgpack.Encoder()
_changes_decoder = msgspec.msgpack.Decoder(list[Change])
_presence_decoder = msgspec.msgpack.Decoder(PresenceEvent)

Key = tuple[str, str]


class Relay:
    """Wires one :class:`~server.hub.fanout.Hub` to the other processes through a broker."""

    def __init__(self, hub: Hub, broker: Broker, fill: Fill, versions: Versions) -> None:
        self.hub = hub
        self.broker = broker
        self._fill = fill
        self._versions = versions
        self._seqs: dict[Key, Sequencer] = {}
        self._filling: set[Key] = set()
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._committed: dict[Key, int] = {}
        """Each followed table's version in the database at the last watermark round."""
        self._watermark: asyncio.TimerHandle | None = None
        self._closed = False
        self._tasks = TaskOwner("relay")
        self.filled = 0
        """Versions read from the op log because their broadcast was late or lost."""
        self.stalls = 0
        """Times a watermark round found a followed table's committed version still
        undelivered a whole round later (no later broadcast had shown the gap)."""
        hub.links = self

    async def start(self) -> None:
        """Start the broker (raises its ``BrokerError`` when it cannot)."""
        await self.broker.start(self.received, self.resync)

    async def close(self) -> None:
        """Stop gap fills, the watermark round and the broker."""
        self._closed = True  # what the cancelled tasks' cleanup would arm stays unarmed
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self._watermark is not None:
            self._watermark.cancel()
            self._watermark = None
        await self._tasks.cancel_all()
        await self.broker.close()

    # --- the hub's side (server.hub.fanout.Links) -----------------------------------------

    async def follow(self, tenant: str, table: str, anchor: int) -> None:
        """This process has its first subscriber of a table, which saw version ``anchor``."""
        key = (tenant, table)
        if key not in self._seqs:
            self._seqs[key] = Sequencer(anchor)
        self._arm_watermark()
        await self.broker.subscribe(tenant, table)

    def unfollow(self, tenant: str, table: str) -> None:
        """The table's last subscriber on this process left."""
        key = (tenant, table)
        self._seqs.pop(key, None)
        self._committed.pop(key, None)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self.broker.unsubscribe(tenant, table)

    def presence(self, tenant: str, table: str, event: PresenceEvent) -> None:
        """A local session's presence event: tell the other processes."""
        if not self.broker.has_peers:
            return
        payload = _changes_encoder.encode(event)
        self.broker.publish(Envelope(EnvelopeKind.PRESENCE, tenant, table, 0, 0, payload))

    # --- changes --------------------------------------------------------------------------

    def committed(self, tenant: str, table: str, changes: list[Change]) -> None:
        """This process committed ``changes`` (consecutive versions of one table)."""
        if self.broker.has_peers:
            payload = _changes_encoder.encode(changes)
            first, last = changes[0].version, changes[-1].version
            envelope = Envelope(EnvelopeKind.CHANGES, tenant, table, first, last, payload)
            self.broker.publish(envelope)
        self._offer((tenant, table), changes)

    def received(self, envelope: Envelope) -> None:
        """An envelope from another process (the broker's ``deliver``)."""
        try:
            if envelope.kind is EnvelopeKind.PRESENCE:
                event = _presence_decoder.decode(envelope.payload)
                self.hub.presence(envelope.tenant, envelope.table, event, relay=False)
                return
            changes = _changes_decoder.decode(envelope.payload)
        except msgspec.DecodeError:
            log.warning("relay: ignored an envelope that does not decode")  # no payload logged
            return
        self._offer((envelope.tenant, envelope.table), changes)

    def resync(self) -> None:
        """Broadcasts may have been lost (the broker reconnected): check every table."""
        for key in list(self._seqs):
            self._spawn_fill(key)

    def _offer(self, key: Key, changes: list[Change]) -> None:
        seq = self._seqs.get(key)
        if seq is None:
            return  # no subscriber of that table here
        out = seq.offer(changes, time.monotonic())
        if out:
            self.hub.publish(key[0], key[1], out)
        self._arm(key, seq)

    def _arm(self, key: Key, seq: Sequencer) -> None:
        if seq.gap_since is None or key in self._timers or key in self._filling or self._closed:
            return
        wait = max(0.0, seq.gap_since + GAP_FILL_SECONDS - time.monotonic())
        self._timers[key] = asyncio.get_running_loop().call_later(wait, self._due, key)

    def _due(self, key: Key) -> None:
        self._timers.pop(key, None)
        seq = self._seqs.get(key)
        if seq is None or seq.gap_since is None:
            return
        if time.monotonic() - seq.gap_since < GAP_FILL_SECONDS:
            self._arm(key, seq)  # the gap moved on meanwhile: wait for its new deadline
            return
        self._spawn_fill(key)

    def _spawn_fill(self, key: Key) -> None:
        if key in self._filling:
            return
        self._filling.add(key)
        self._tasks.spawn(self._fill_gap(key), "fill a broadcast gap from the op log")

    async def _fill_gap(self, key: Key) -> None:
        try:
            seq = self._seqs.get(key)
            if seq is None:
                return
            try:
                changes = await self._fill(key[0], key[1], seq.head)
            except Exception as exc:  # the store is closing or failing: try again soon
                log.warning("relay: reading the op log for a gap failed (%s)", type(exc).__name__)
                await asyncio.sleep(FILL_RETRY_SECONDS)
                return
            if self._seqs.get(key) is not seq:
                return  # unfollowed (or followed anew) meanwhile
            if changes is None:
                self._lost(key, seq)
                return
            self.filled += sum(
                1 for c in changes if c.version > seq.head and not seq.holds(c.version)
            )
            out = seq.offer(changes, time.monotonic())
            if out:
                self.hub.publish(key[0], key[1], out)
        finally:
            self._filling.discard(key)
        seq = self._seqs.get(key)
        if seq is not None:
            self._arm(key, seq)

    # --- the watermark round ----------------------------------------------------------------

    def _arm_watermark(self) -> None:
        if self._watermark is None and self._seqs and self.broker.has_peers and not self._closed:
            loop = asyncio.get_running_loop()
            self._watermark = loop.call_later(WATERMARK_SECONDS, self._watermark_due)

    def _watermark_due(self) -> None:
        self._tasks.spawn(self._watermark_round(), "compare delivered versions with the database")

    async def _watermark_round(self) -> None:
        try:
            by_tenant: dict[str, list[Key]] = {}
            for key in self._seqs:
                by_tenant.setdefault(key[0], []).append(key)
            for tenant, keys in by_tenant.items():
                try:
                    versions = await self._versions(tenant)
                except Exception as exc:  # the store is closing or failing: next round
                    log.warning("relay: reading table versions failed (%s)", type(exc).__name__)
                    continue
                self._compare(keys, versions)
        finally:
            self._watermark = None
            self._arm_watermark()

    def _compare(self, keys: list[Key], versions: dict[str, int]) -> None:
        """Fill what was committed a round ago and is still undelivered; remember what is
        committed now. A broadcast gets a whole round to arrive, so a late one is no stall."""
        for key in keys:
            seq = self._seqs.get(key)
            if seq is None:
                continue  # unfollowed while the versions were read
            before = self._committed.get(key)
            if before is not None and seq.head < before:
                self.stalls += 1
                self._spawn_fill(key)
            version = versions.get(key[1])
            if version is None:
                self._committed.pop(key, None)
            else:
                self._committed[key] = version

    def _lost(self, key: Key, seq: Sequencer) -> None:
        """The op log cannot fill the gap: the table's subscribers here reconnect and resume
        (a snapshot if need be) rather than silently miss versions."""
        log.warning("relay: a broadcast gap is older than the op log; subscribers resume")
        self.hub.drop_all(key[0], key[1], CloseCode.INTERNAL, "missed changes: resume with since")
        self._seqs.pop(key, None)
        self._committed.pop(key, None)
        self.broker.unsubscribe(*key)
