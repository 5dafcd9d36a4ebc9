"""The collector settings a serving hub applies once it listens (``server/gctune.py``)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from server import gctune


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_gc")
def test_after_startup_freezes_what_lives_and_spaces_young_passes() -> None:
    gc.unfreeze()
    _, gen1, gen2 = gc.get_threshold()
    gctune.after_startup()
    assert gc.get_threshold() == (gctune.GEN0_THRESHOLD, gen1, gen2)
    assert gc.get_freeze_count() > 10_000  # every module, class and cache loaded so far
