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
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protocol.codec import codec_for
from protocol.messages import Change, PresenceEvent
from server.hub.frames import changes_frames
from server.hub.outbox import Outbox


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


class Hub:
    """Subscriptions per (tenant, table) and the fan-out of changes and presence."""

    def __init__(self) -> None:
        self._subs: dict[Key, dict[Subscriber, None]] = {}
        self.delivered = 0
        self.frames = 0

    def subscribe(self, tenant: str, table: str, sub: Subscriber) -> None:
        """Add a (pending) subscriber."""
        self._subs.setdefault((tenant, table), {})[sub] = None

    def unsubscribe(self, tenant: str, table: str, sub: Subscriber) -> None:
        """Remove a subscriber (idempotent)."""
        subs = self._subs.get((tenant, table))
        if subs is not None:
            subs.pop(sub, None)
            if not subs:
                del self._subs[(tenant, table)]

    def publish(self, tenant: str, table: str, changes: list[Change]) -> None:
        """Deliver committed ``changes`` (consecutive versions) to the table's subscribers."""
        subs = self._subs.get((tenant, table))
        if not subs:
            return
        frames: dict[str, list[bytes]] = {}
        last = changes[-1].version
        for sub in list(subs):
            if sub.pending is not None:
                sub.pending.extend(changes)
                continue
            if sub.version >= last:
                continue  # already has them (a replay raced this publish)
            if sub.version >= changes[0].version:
                fresh = [c for c in changes if c.version > sub.version]
                out = changes_frames(codec_for(sub.encoding), table, fresh)
            else:
                cached = frames.get(sub.encoding)
                if cached is None:
                    cached = frames[sub.encoding] = changes_frames(
                        codec_for(sub.encoding), table, changes
                    )
                out = cached
            sub.version = last
            ok = True
            for frame in out:
                ok = sub.outbox.write(frame)
            if ok:
                self.delivered += len(changes)
                self.frames += len(out)
            else:
                subs.pop(sub, None)

    def presence(self, tenant: str, table: str, event: PresenceEvent) -> None:
        """Send a presence event to the table's other live subscribers."""
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
