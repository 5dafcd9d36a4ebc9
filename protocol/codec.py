"""The two encodings of the wire, negotiated by WebSocket subprotocol.

``hypertab.v1.msgpack``: binary frames (the SDK's default). ``hypertab.v1.json``: text frames
(browsers). A :class:`Codec` holds one reusable encoder and one decoder per direction, so
the hot path allocates nothing but the message.
"""

from __future__ import annotations

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


class _Envelope(msgspec.Struct):
    """Just the request id of a frame, read leniently to answer an invalid request."""

    id: Any = None


class _Side(Generic[T]):
    def __init__(self, encoding: str, kind: Any, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.binary = encoding == MSGPACK
        self._decoder: msgspec.msgpack.Decoder[T] | msgspec.json.Decoder[T]
        if self.binary:
            self._decoder = msgspec.msgpack.Decoder(kind)
        else:
            self._decoder = msgspec.json.Decoder(kind)

    def decode(self, data: bytes | str) -> T:
        if len(data) > self.max_bytes:
            raise DecodeError(f"frame of {len(data)} bytes is over {self.max_bytes}")
        if isinstance(data, str):
            data = data.encode()
        try:
            return self._decoder.decode(data)
        except msgspec.DecodeError as exc:  # ValidationError is a DecodeError too
            raise DecodeError(str(exc)) from None
        except RecursionError:  # msgspec's own depth guard: a frame nested ~1000 deep
            raise DecodeError("the message is nested too deeply") from None


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
