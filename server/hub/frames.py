"""Fitting replies into frames: split lists of changes or rows so frames stay under 1 MiB.

A client refuses frames over :data:`protocol.limits.MAX_SERVER_FRAME_BYTES`, and large
frames hold a connection's buffer for long. Encoding the whole list first and halving only
when it is too big keeps the common case (small frames) at one encode per list.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from protocol.codec import Codec
from protocol.limits import MAX_FRAME_BYTES
from protocol.messages import Change, Changes

T = TypeVar("T")


def split_encode(
    codec: Codec, items: Sequence[T], build: Callable[[Sequence[T], bool], Any]
) -> list[bytes]:
    """Frames for ``items``: ``build(part, is_last_part)`` makes each part's message.

    Parts are halved until each frame fits in :data:`MAX_FRAME_BYTES`; a single item that
    is larger on its own still gets its own frame (one change or row is never split).
    """
    frame = codec.encode(build(items, True))
    if len(frame) <= MAX_FRAME_BYTES or len(items) <= 1:
        return [frame]
    half = len(items) // 2
    head = split_encode(codec, items[:half], lambda part, _last: build(part, False))
    return head + split_encode(codec, items[half:], build)


def changes_frames(codec: Codec, table: str, changes: Sequence[Change]) -> list[bytes]:
    """``changes`` frames for consecutive changes of one table."""
    return split_encode(
        codec, changes, lambda part, _last: Changes(table=table, changes=list(part))
    )
