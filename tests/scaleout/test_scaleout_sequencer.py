"""The sequencer alone: strict version order, no duplicates, gaps timed (no event loop)."""

from __future__ import annotations

from protocol.messages import Change
from server.hub.sequencer import Sequencer


def ch(*versions: int) -> list[Change]:
    return [Change(version=v, ops=[]) for v in versions]


def versions(changes: list[Change]) -> list[int]:
    return [c.version for c in changes]


def test_consecutive_changes_pass_straight_through() -> None:
    seq = Sequencer(head=3)
    assert versions(seq.offer(ch(4, 5), now=1.0)) == [4, 5]
    assert seq.head == 5 and seq.gap_since is None


def test_early_versions_are_held_until_the_gap_fills() -> None:
    seq = Sequencer(head=0)
    assert seq.offer(ch(3), now=1.0) == []
    assert seq.gap_since == 1.0 and seq.held == 1
    assert versions(seq.offer(ch(1), now=1.5)) == [1]
    assert seq.gap_since == 1.5  # version 2 still missing; its wait starts again
    assert versions(seq.offer(ch(2), now=2.0)) == [2, 3]
    assert seq.gap_since is None and seq.held == 0


def test_nothing_is_handed_on_twice() -> None:
    seq = Sequencer(head=0)
    out = seq.offer(ch(1, 2), now=0) + seq.offer(ch(2, 1, 3), now=0) + seq.offer(ch(3), now=0)
    assert versions(out) == [1, 2, 3]
    assert seq.offer(ch(2), now=0) == []


def test_versions_covered_when_it_started_are_dropped() -> None:
    seq = Sequencer(head=10)
    assert seq.offer(ch(9, 10), now=0) == []
    assert versions(seq.offer(ch(11), now=0)) == [11]


def test_skip_to_gives_up_a_gap_and_releases_what_follows() -> None:
    seq = Sequencer(head=0)
    seq.offer(ch(5, 6, 9), now=0)
    assert versions(seq.skip_to(4, now=1)) == [5, 6]
    assert seq.gap_since == 1 and seq.held == 1
