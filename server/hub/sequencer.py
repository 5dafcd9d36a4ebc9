"""Strict version order for one table's changes, whatever order they arrive in.

How it works: changes reach a hub process from its own writer (at once) and from other
processes (through the broker, later, and possibly not at all when Redis dropped them).
A :class:`Sequencer` keeps the ``head``, the last version handed on; :meth:`offer` drops
what is at or below it (an echo, a replay that raced a broadcast), holds what is ahead of
``head + 1``, and hands on the run of consecutive versions that follows ``head``. While
something is held, ``gap_since`` says since when: the shell reads the missing versions
from the op log once the gap is older than a few milliseconds. Pure: no clock, no I/O.
"""

from __future__ import annotations

from protocol.messages import Change


class Sequencer:
    """One table's delivery order on this node."""

    __slots__ = ("_held", "gap_since", "head")

    def __init__(self, head: int) -> None:
        self.head = head
        """Every version up to this one was handed on (or was covered when we started)."""
        self._held: dict[int, Change] = {}
        self.gap_since: float | None = None
        """When the oldest unfilled gap appeared; None while nothing is held."""

    @property
    def held(self) -> int:
        """How many changes wait for an earlier version."""
        return len(self._held)

    def holds(self, version: int) -> bool:
        """Whether ``version`` is already here, waiting for an earlier one."""
        return version in self._held

    def offer(self, changes: list[Change], now: float) -> list[Change]:
        """Take ``changes`` (any order, duplicates allowed); returns those now deliverable,
        consecutive and in version order, each version at most once over the life of this
        sequencer."""
        head = self.head
        for change in changes:
            if change.version > head:
                self._held.setdefault(change.version, change)
        out: list[Change] = []
        held = self._held
        while (nxt := held.pop(head + 1, None)) is not None:
            out.append(nxt)
            head += 1
        self.head = head
        if not held:
            self.gap_since = None
        elif self.gap_since is None or out:
            self.gap_since = now  # a new gap (or the old one moved on): its clock starts now
        return out

    def skip_to(self, version: int, now: float) -> list[Change]:
        """Give up on versions up to ``version`` (the op log no longer holds them); returns
        what becomes deliverable after them."""
        if version > self.head:
            self.head = version
            self._held = {v: c for v, c in self._held.items() if v > version}
        return self.offer([], now)
