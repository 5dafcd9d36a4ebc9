"""Garbage-collector settings for a serving hub process, applied once it listens.

How it works: CPython's cyclic collector runs a young-generation pass every 700 net
allocations of tracked objects, and a full pass (every object the process holds) now and
then. A hub allocates a few tracked objects per message and per delivered frame (messages,
changes, handles, futures) and frees nearly all of them by reference counting; the passes
themselves were ~13 % of the event loop's CPU at 5 x 50 edits/s (bench/RESULTS.md, "where a
paced edit goes"). So, once start-up is over:

* :func:`gc.freeze` moves everything start-up made (modules, classes, the settings, caches:
  several hundred thousand objects that live as long as the process) out of the
  collector's view, so a full pass no longer walks them;
* the young-generation threshold is raised to :data:`GEN0_THRESHOLD`, so a pass runs
  ~70 times less often, over the same number of objects in all.

Reference counting still frees almost everything at once; what waits longer is only
garbage in reference cycles, bounded by the threshold (tens of thousands of objects).
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 50_000
"""Net allocations of tracked objects between two young-generation passes (CPython: 700)."""


def after_startup() -> None:
    """Collect once, freeze what start-up left, and space the young passes out."""
    gc.collect()  # what start-up left as garbage is freed, not frozen
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
