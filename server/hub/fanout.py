"""Fan-out of committed changes to every subscriber of a table, in version order.

How it works: the tenant store calls :meth:`Hub.publish` on the event loop right after a
group commit, with every change of one table from that group. The hub encodes them as ONE
``changes`` frame per encoding (msgpack and/or JSON, each at most once) and writes that same
frame to every subscriber; so a subscriber gets one frame per table per commit, however many
edits the commit held. That coalescing is what makes a durable hub cheaper per delivered edit
than a bare relay that sends one frame per edit.

A subscriber that has just subscribed is *pending* while its snapshot or replay is being
sent: changes for it are held (not sent) and flushed, minus those the snapshot already
covers, when it turns live.

Other hub processes: the hub tells its :class:`Links` (``server/hub/relay.py``) when a
table gets its first subscriber here and loses its last, and about every local presence
event; the relay puts every change, local or remote, in version order before it reaches
:meth:`Hub.publish`. Without links (tests of the hub alone) the hub is one process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Protocol

from protocol.codec import codec_for
from protocol.messages import Change, PresenceEvent
from server.hub.frames import changes_frames
from server.hub.outbox import Outbox
from server.hub.wire import framed


@dataclass(eq=False, slots=True)
class Subscriber:
    """One connection's subscription to one table."""

    outbox: Outbox
    encoding: str
    session: str
    table: str
    pending: list[Change] | None = field(default_factory=list)
    version: int = 0

    def go_live(self, version: int) -> None:
        """The snapshot/replay up to ``version`` was sent: flush held changes after it."""
        held = self.pending or []
        self.pending = None
        self.version = version
        fresh = [c for c in held if c.version > version]
        if fresh:
            self.version = fresh[-1].version
            for frame in changes_frames(codec_for(self.encoding), self.table, fresh):
                self.outbox.write(frame)


Key = tuple[str, str]
"""(tenant, table)"""


class Links(Protocol):
    """What the hub tells the other hub processes (implemented by the relay)."""

    def follow(self, tenant: str, table: str, anchor: int) -> Awaitable[None]:
        """A table has its first subscriber here, who saw version ``anchor``."""

    def unfollow(self, tenant: str, table: str) -> None:
        """A table's last subscriber here left."""

    def presence(self, tenant: str, table: str, event: PresenceEvent) -> None:
        """A local session's presence event, for the other processes' subscribers."""


class Hub:
    """Subscriptions per (tenant, table) and the fan-out of changes and presence."""

    def __init__(self) -> None:
        self._subs: dict[Key, dict[Subscriber, None]] = {}
        self._following: dict[Key, asyncio.Future[None]] = {}
        self.links: Links | None = None
        self.delivered = 0
        self.frames = 0

    def subscribe(self, tenant: str, table: str, sub: Subscriber, anchor: int = 0) -> None:
        """Add a (pending) subscriber, who read version ``anchor`` from the catalog; await
        :meth:`ready` before reading its snapshot."""
        key = (tenant, table)
        subs = self._subs.get(key)
        if subs is None:
            subs = self._subs[key] = {}
            if self.links is not None:
                self._following[key] = asyncio.ensure_future(
                    self.links.follow(tenant, table, anchor)
                )
        subs[sub] = None

    async def ready(self, tenant: str, table: str) -> None:
        """Returns once changes committed from now on, by any process, will reach this
        process's subscribers of the table (its snapshot may be read then)."""
        following = self._following.get((tenant, table))
        if following is not None:
            await asyncio.shield(following)

    def unsubscribe(self, tenant: str, table: str, sub: Subscriber) -> None:
        """Remove a subscriber (idempotent)."""
        subs = self._subs.get((tenant, table))
        if subs is not None:
            subs.pop(sub, None)
            if not subs:
                self._forget((tenant, table))

    def _forget(self, key: Key) -> None:
        del self._subs[key]
        following = self._following.pop(key, None)
        if following is not None:
            following.cancel()
            if self.links is not None:
                self.links.unfollow(*key)

    def drop_all(self, tenant: str, table: str, code: int, reason: str) -> None:
        """Close the connections of every subscriber of a table (they resume with since)."""
        subs = self._subs.get((tenant, table))
        if subs is None:
            return
        for sub in subs:
            sub.outbox.close(code, reason)
        self._forget((tenant, table))

    def publish(self, tenant: str, table: str, changes: list[Change]) -> None:
        """Deliver committed ``changes`` (consecutive versions) to the table's subscribers."""
        subs = self._subs.get((tenant, table))
        if not subs:
            return
        # Per encoding: the frames as (payload, the same framed for the wire), built once.
        wires: dict[str, list[tuple[bytes, bytes]]] = {}
        first, last = changes[0].version, changes[-1].version
        count = len(changes)
        delivered = frames = 0
        gone: list[Subscriber] = []
        for sub in subs:
            if sub.pending is not None:
                sub.pending.extend(changes)
                continue
            if sub.version >= last:
                continue  # already has them (a replay raced this publish)
            if sub.version >= first:
                fresh = [c for c in changes if c.version > sub.version]
                out = _wires(sub.encoding, table, fresh)
            else:
                cached = wires.get(sub.encoding)
                if cached is None:
                    cached = wires[sub.encoding] = _wires(sub.encoding, table, changes)
                out = cached
            sub.version = last
            outbox = sub.outbox
            ok = True
            for payload, wire in out:
                ok = outbox.write_wire(payload, wire)
            if ok:
                delivered += count
                frames += len(out)
            else:
                gone.append(sub)
        for sub in gone:
            subs.pop(sub, None)
        self.delivered += delivered
        self.frames += frames

    def presence(
        self, tenant: str, table: str, event: PresenceEvent, *, relay: bool = True
    ) -> None:
        """Send a presence event to the table's other live subscribers (on every process,
        unless ``relay`` is False: it came from another process)."""
        if relay and self.links is not None:
            self.links.presence(tenant, table, event)
        subs = self._subs.get((tenant, table))
        if not subs:
            return
        frames: dict[str, bytes] = {}
        for sub in list(subs):
            if sub.pending is not None or sub.session == event.session:
                continue
            frame = frames.get(sub.encoding)
            if frame is None:
                frame = frames[sub.encoding] = codec_for(sub.encoding).encode(event)
            sub.outbox.write(frame)


def _wires(encoding: str, table: str, changes: list[Change]) -> list[tuple[bytes, bytes]]:
    codec = codec_for(encoding)
    return [
        (frame, framed(frame, binary=codec.binary))
        for frame in changes_frames(codec, table, changes)
    ]
