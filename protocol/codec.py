"""The two encodings of the wire, negotiated by WebSocket subprotocol.

``hypertab.v1.msgpack``: binary frames (the SDK's default). ``hypertab.v1.json``: text frames
(browsers). A :class:`Codec` holds one reusable encoder and one decoder per direction, so
the hot path allocates nothing but the message.

Every way a frame can fail to decode becomes one :class:`~protocol.errors.DecodeError`, never
another exception: syntax, types, limits, and nesting too deep to decode. Nesting is bounded
inside the decoder: msgspec guards each level with the interpreter's recursion check, which
stops a deeply nested frame after at most the recursion limit's worth of levels (about a
thousand, read in microseconds) with ``RecursionError``; that is mapped to a ``DecodeError``
like any other bad frame, so no amount of nesting reaches the handler, and values that pass
are bounded again where they are used (json cells: :data:`~protocol.limits.MAX_JSON_DEPTH`).

A failure names a wire error code (:func:`classify`): a cell value that fits no column
(``type_mismatch``) or a malformed op (``invalid_op``) carries the index of the op in its
batch, as the op engine's own refusals do.
"""

from __future__ import annotations

import re
from typing import Any, Generic, TypeVar

import msgspec

from protocol.errors import DecodeError
from protocol.limits import MAX_FRAME_BYTES, MAX_SERVER_FRAME_BYTES
from protocol.messages import ClientMessage, ServerMessage

MSGPACK = "hypertab.v1.msgpack"
JSON = "hypertab.v1.json"
SUBPROTOCOLS = (MSGPACK, JSON)

AUTH_SUBPROTOCOL_PREFIX = "hypertab.bearer."
"""Browsers, which cannot set headers, offer ``hypertab.bearer.<token>`` as an extra
subprotocol; the server never echoes it."""

T = TypeVar("T")

_OP_PATH = re.compile(r"`\$\.ops\[(\d+)\]([^`]*)`")


def classify(reason: str) -> tuple[str, int | None]:
    """The wire error code for a decode failure's ``reason``, and the failing op's index.

    msgspec names where decoding failed (``- at `$.ops[2].values[...]```): a bad ``type``
    tag is ``unknown_type``; inside a query's ``where`` or ``order_by`` it is
    ``invalid_filter``; inside ``ops[i]`` a cell value (number out of range, NaN, text
    too long) is ``type_mismatch`` and anything else (unknown op type, bad id, unknown column
    type, unknown field) is ``invalid_op``, both with ``op_index`` i; the rest is
    ``bad_message``.
    """
    if reason.endswith("at `$.type`"):
        return "unknown_type", None
    if "at `$.where" in reason or "at `$.order_by" in reason:
        return "invalid_filter", None  # a query's filter: the code its later checks use
    match = _OP_PATH.search(reason)
    if match is None:
        return "bad_message", None
    index = int(match.group(1))
    where = match.group(2)
    if where.endswith(".values[...]"):
        return "type_mismatch", index
    return "invalid_op", index


class _Envelope(msgspec.Struct):
    """Just the request id of a frame, read leniently to answer an invalid request."""

    id: Any = None


class _Side(Generic[T]):
    def __init__(self, encoding: str, kind: Any, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.binary = encoding == MSGPACK
        self._msgpack: msgspec.msgpack.Decoder[T] | None = None
        self._json: msgspec.json.Decoder[T] | None = None
        if self.binary:
            self._msgpack = msgspec.msgpack.Decoder(kind)
        else:
            self._json = msgspec.json.Decoder(kind)

    def decode(self, data: bytes | str) -> T:
        if len(data) > self.max_bytes:
            raise DecodeError(f"frame of {len(data)} bytes is over {self.max_bytes}")
        try:
            if self._json is not None:
                return self._json.decode(data)  # str as it is, without a copy
            assert self._msgpack is not None
            return self._msgpack.decode(data.encode() if isinstance(data, str) else data)
        except msgspec.DecodeError as exc:  # ValidationError is a DecodeError too
            raise DecodeError(str(exc)) from None
        except RecursionError:  # msgspec's own depth guard: a frame nested ~1000 deep
            raise DecodeError("the frame is nested too deeply to decode") from None


class Codec:
    """Encoder and decoders for one encoding (one of :data:`SUBPROTOCOLS`)."""

    def __init__(self, encoding: str) -> None:
        if encoding not in SUBPROTOCOLS:
            raise ValueError(f"unknown encoding {encoding!r}")
        self.encoding = encoding
        self.binary = encoding == MSGPACK
        self._encoder: msgspec.msgpack.Encoder | msgspec.json.Encoder
        if self.binary:
            self._encoder = msgspec.msgpack.Encoder()
        else:
            self._encoder = msgspec.json.Encoder()
        self._client: _Side[ClientMessage] = _Side(encoding, ClientMessage, MAX_FRAME_BYTES)
        self._envelope: _Side[_Envelope] = _Side(encoding, _Envelope, MAX_FRAME_BYTES)
        self._server: _Side[ServerMessage] = _Side(encoding, ServerMessage, MAX_SERVER_FRAME_BYTES)

    def encode(self, message: Any) -> bytes:
        """Encode any message (or Struct) to frame bytes."""
        return self._encoder.encode(message)

    def decode_client(self, data: bytes | str) -> ClientMessage:
        """Decode a frame sent by a client. Raises :class:`DecodeError` with the reason."""
        return self._client.decode(data)

    def request_id(self, data: bytes | str) -> int | None:
        """The ``id`` of a frame that failed to decode, if it has a usable one, so the
        error can be matched to the request."""
        try:
            rid = self._envelope.decode(data).id
        except DecodeError:
            return None
        if isinstance(rid, int) and not isinstance(rid, bool) and 0 <= rid <= 2**53:
            return rid
        return None

    def decode_server(self, data: bytes | str) -> ServerMessage:
        """Decode a frame sent by the server. Raises :class:`DecodeError` with the reason."""
        return self._server.decode(data)


_CODECS = {name: Codec(name) for name in SUBPROTOCOLS}


def codec_for(encoding: str) -> Codec:
    """The shared codec for an encoding."""
    return _CODECS[encoding]
