"""A real websockets server that speaks the wire protocol as a test scripts it: for what a
Hypertab hub never sends, to see what the SDK makes of it."""

from __future__ import annotations

from protocol.codec import MSGPACK, codec_for
from protocol.messages import ServerLimits, Welcome

CODEC = codec_for(MSGPACK)


def welcome() -> bytes:
    """The first frame of a connection, with no rate limits."""
    limits = ServerLimits(
        max_frame_bytes=1 << 20, max_ops_per_batch=100, ops_per_minute=0, burst_per_second=0
    )
    return CODEC.encode(
        Welcome(session="s", tenant="t", subject="k", scopes=["read", "write"],
                plan="free", limits=limits, encoding=MSGPACK)
    )  # fmt: skip
