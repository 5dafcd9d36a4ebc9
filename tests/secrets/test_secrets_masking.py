"""Masking in listings reveals at most the last 4 characters, nothing for short values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.secrets.masking import HIDDEN, MIN_LEN_TO_HINT, mask


def test_long_value_shows_last_four() -> None:
    assert mask("sk-proj-0123456789abcd") == "…abcd"
    assert mask("x" * (MIN_LEN_TO_HINT - 4) + "WXYZ") == "…WXYZ"


@pytest.mark.parametrize("value", ["", "1", "hunter2", "123456", "x" * (MIN_LEN_TO_HINT - 1)])
def test_short_value_shows_nothing(value: str) -> None:
    assert mask(value) == HIDDEN


def test_whitespace_tail_is_hidden() -> None:
    assert mask("a" * 20 + "ab \n") == HIDDEN


@given(st.text(max_size=200))
def test_never_more_than_last_four(value: str) -> None:
    shown = mask(value)
    assert shown == HIDDEN or (shown == "…" + value[-4:] and len(value) >= MIN_LEN_TO_HINT)
    assert shown in (HIDDEN, "…" + value[-4:])
