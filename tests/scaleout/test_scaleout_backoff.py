"""The supervisor's restart delays (pure: no processes, no event loop)."""

from __future__ import annotations

import itertools

from server.workers.backoff import FIRST_DELAY, MAX_DELAY, STABLE_AFTER, RestartBackoff


def test_a_worker_that_keeps_dying_at_once_waits_longer_each_time_up_to_the_bound() -> None:
    backoff = RestartBackoff()
    delays = [backoff.delay(started=t, died=t + 0.1) for t in range(12)]
    assert delays[:4] == [FIRST_DELAY, 2 * FIRST_DELAY, 4 * FIRST_DELAY, 8 * FIRST_DELAY]
    assert all(a <= b for a, b in itertools.pairwise(delays))
    assert delays[-1] == MAX_DELAY


def test_a_worker_that_ran_for_a_while_is_restarted_after_the_first_delay_again() -> None:
    backoff = RestartBackoff()
    for t in range(5):
        backoff.delay(started=t, died=t + 0.1)
    assert backoff.delay(started=100.0, died=100.0 + STABLE_AFTER) == FIRST_DELAY
    assert backoff.delay(started=200.0, died=200.1) == 2 * FIRST_DELAY
