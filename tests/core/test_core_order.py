"""Row order keys (pure)."""

from __future__ import annotations

import random

import pytest

from server.engine.order import OrderKeyError, is_valid, key_between


def test_appends_stay_short_and_sorted() -> None:
    keys = [key_between(None, None)]
    for _ in range(10_000):
        keys.append(key_between(keys[-1], None))
    assert keys == sorted(keys)
    assert max(map(len, keys)) == 8


def test_random_inserts_keep_a_total_order() -> None:
    rng = random.Random(7)
    keys = [key_between(None, None)]
    for _ in range(3000):
        choice = rng.random()
        if choice < 0.2:
            keys.append(key_between(keys[-1], None))
        elif choice < 0.3:
            keys.insert(0, key_between(None, keys[0]))
        elif len(keys) > 1:
            i = rng.randrange(len(keys) - 1)
            keys.insert(i + 1, key_between(keys[i], keys[i + 1]))
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)
    assert all(is_valid(k) for k in keys)


def test_repeated_squeeze_into_one_gap_grows_slowly() -> None:
    low, high = key_between(None, None), None
    high = key_between(low, None)
    for _ in range(200):
        high = key_between(low, high)
    assert len(high) < 60


def test_out_of_order_is_refused() -> None:
    a = key_between(None, None)
    b = key_between(a, None)
    with pytest.raises(OrderKeyError):
        key_between(b, a)
