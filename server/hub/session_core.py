"""The rules of one connection, Sans-I/O: frames and events in, messages and closes out.

How it works
------------
:class:`SessionCore` holds one connection's state (its principal, the tables it subscribed
to and shares presence on, its count of bad frames) and applies the session's rules to it.
It does no I/O: no socket, no event loop, no clock (an event that depends on time is given
``now``), no store. The asyncio shell (``server/hub/session.py``) only moves bytes between
the socket and the core, runs handlers, and performs what the core asks for.

- :meth:`~SessionCore.receive` takes one frame as it came off the socket (``str`` for a
  text frame). A frame of the wrong type for the encoding, or one that does not decode,
  is a bad frame: answered with its error code (and the failing op's index), and the
  :data:`MAX_BAD_FRAMES`-th closes the connection with 4000 ``BAD_CLIENT``. A message the
  principal may not send (its row of ``server/hub/messages.py``: scopes, table allowlist)
  is answered ``forbidden``. Anything else is returned: the shell charges it against the
  rate limits, then tells the core :meth:`admitted` (a type that needs a subscription to
  its table is refused here, once charged) or :meth:`refused`, and runs its handler.
- Other events: a handler that failed (:meth:`failed`), a batch's commit outcome
  (:meth:`committed`, which returns the ack), a presence update (:meth:`presence`), a
  refused in-band ``auth`` (:meth:`auth_refused`, which closes with 4001 ``AUTH_EXPIRED``
  once the current credential has expired at ``now``), a key's grants narrowed
  (:meth:`narrowed`: subscriptions it may no longer read are dropped, the client told).
  Re-authentication replaces :attr:`SessionCore.principal` too; every later message is
  checked against the principal of the moment. And the rest of the connection's life: the
  :meth:`welcome`, a subscribe's shape (:meth:`subscribe_valid`), the one answer for a
  table a query may not use (:meth:`table_refused`), the end (:meth:`ended`).
- What the core asks for is queued as actions, :class:`Send` and :class:`Close`, in the
  order they must happen; the shell takes them with :meth:`actions_to_perform` after each
  event (as ``websockets``' ``Protocol.data_to_send``). The common path queues nothing: an
  admitted message is returned, an ack is returned.

The tests in ``tests/hub/`` drive this class with frames and events alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from protocol.codec import Codec, classify
from protocol.errors import CloseCode, DecodeError
from protocol.identity import GrantsChanged
from protocol.limits import MAX_JSON_DEPTH
from protocol.messages import (
    Ack,
    Apply,
    ClientMessage,
    Error,
    Presence,
    PresenceEvent,
    ServerLimits,
    Subscribe,
    Welcome,
)
from server.auth.principal import Principal, Scope
from server.hub.authorize import refusal
from server.hub.expiry import is_expired
from server.hub.messages import MESSAGE_TYPES

if TYPE_CHECKING:
    from server.store.writer import BatchOutcome

MAX_BAD_FRAMES = 20
"""Undecodable frames tolerated on one connection before it is closed with BAD_CLIENT."""


@dataclass(frozen=True, slots=True)
class Send:
    """Action: write ``message`` to the client."""

    message: Any


@dataclass(frozen=True, slots=True)
class Close:
    """Action: close the connection with ``code`` (after what was sent before)."""

    code: int
    reason: str


Action = Send | Close


class SessionCore:
    """The state and rules of one authenticated connection (no I/O)."""

    # Slots: one per connection, 10,000 connections per process.
    __slots__ = (
        "_actions",
        "bad_frames",
        "codec",
        "id",
        "presence_tables",
        "principal",
        "subscriptions",
    )

    def __init__(self, session_id: str, principal: Principal, codec: Codec) -> None:
        self.id = session_id
        self.principal = principal
        """Who is connected; replaced by in-band re-auth, narrowed when a key's grants are."""
        self.codec = codec
        self.subscriptions: dict[str, Any] = {}
        """Subscribed table id -> the shell's subscriber for it."""
        self.presence_tables: set[str] = set()
        """Tables this connection shared presence on (cleared for the others at the end)."""
        self.bad_frames = 0
        self._actions: list[Action] = []

    # --- output ---------------------------------------------------------------------------

    def actions_to_perform(self) -> list[Action]:
        """The actions queued since the last call, in order (and forget them)."""
        actions, self._actions = self._actions, []
        return actions

    def _error(
        self, code: str, message: str, request: int | None, op_index: int | None = None
    ) -> None:
        self._actions.append(Send(Error(code=code, message=message, id=request, op_index=op_index)))

    # --- events ---------------------------------------------------------------------------

    def welcome(self, limits: ServerLimits) -> Welcome:
        """The first message of the connection: who the server thinks the client is."""
        p = self.principal
        return Welcome(
            session=self.id,
            tenant=p.tenant,
            subject=p.subject,
            scopes=sorted(s.value for s in p.scopes),
            plan=p.plan.value,
            limits=limits,
            encoding=self.codec.encoding,
            expires_at=p.expires_at,
            tables=sorted(p.tables) if p.tables is not None else None,
        )

    def receive(self, data: bytes | str) -> ClientMessage | None:
        """One frame from the client (``str``: a text frame, its UTF-8 already checked).

        Returns the message to charge and handle, or None when the rules answered the frame
        themselves (see :meth:`actions_to_perform`).
        """
        codec = self.codec
        if isinstance(data, str) == codec.binary:  # JSON in text, msgpack in binary
            kind = "binary" if codec.binary else "text"
            self._bad_frame(f"{codec.encoding} takes {kind} frames", "bad_message", None)
            return None
        try:
            message = codec.decode_client(data)
        except DecodeError as exc:
            text = str(exc)
            code, op_index = classify(text)
            self._bad_frame(text[:300], code, codec.request_id(data), op_index)
            return None
        why = refusal(self.principal, message)
        if why is not None:
            self._error("forbidden", why, getattr(message, "id", None))
            return None
        return message

    def _bad_frame(
        self, reason: str, code: str, request: int | None, op_index: int | None = None
    ) -> None:
        self.bad_frames += 1
        self._error(code, reason, request, op_index)
        if self.bad_frames == MAX_BAD_FRAMES:
            self._actions.append(Close(CloseCode.BAD_CLIENT, "too many invalid frames"))

    def admitted(self, message: ClientMessage) -> bool:
        """``message`` passed admission (it was charged): whether its handler may run. A
        type whose row says ``subscribed`` needs a subscription to the table it names;
        otherwise its answer is queued."""
        if not MESSAGE_TYPES[type(message)].subscribed:
            return True
        if getattr(message, "table", None) in self.subscriptions:
            return True
        tag = type(message).__struct_config__.tag
        self._error("not_subscribed", f"subscribe to the table before {tag}", _request(message))
        return False

    def refused(self, message: ClientMessage, error: Error) -> None:
        """``message`` was refused by admission (rate limits): answer ``error`` to it."""
        error.id = _request(message)
        self._actions.append(Send(error))

    def failed(self, message: ClientMessage, *, shutting_down: bool) -> None:
        """``message``'s handler raised: the store is shutting down, or a server bug."""
        request = _request(message)
        if shutting_down:
            self._error("unavailable", "the server is shutting down", request)
        else:
            self._error("internal", "unexpected server error; nothing was applied", request)

    def committed(self, message: Apply, outcome: BatchOutcome | None) -> Ack | Error:
        """The answer to a batch once its transaction ended (``None``: it was cancelled,
        the server is shutting down)."""
        if outcome is None:
            return Error(code="unavailable", message="the server is shutting down", id=message.id)
        err = outcome.error
        if err is not None:
            return Error(code=err.code, message=err.message, id=message.id, op_index=err.op_index)
        return Ack(
            id=message.id, op=message.op, version=outcome.version, duplicate=outcome.duplicate
        )

    def presence(self, message: Presence) -> PresenceEvent | None:
        """The event to relay to the table's subscribers for ``message``, or None when its
        state is nested too deep to relay."""
        table = message.table
        if _deeper_than(message.state, MAX_JSON_DEPTH):  # it is relayed to every subscriber
            self._error("bad_message", f"presence state nested deeper than {MAX_JSON_DEPTH}", None)
            return None
        self.presence_tables.add(table)
        return PresenceEvent(
            table=table, session=self.id, subject=self.principal.subject, state=message.state
        )

    def subscribe_valid(self, message: Subscribe) -> bool:
        """Whether ``message`` names exactly one of table or name; if not, its answer is
        queued."""
        if (message.table is None) == (message.name is None):
            self._error("bad_message", "subscribe needs exactly one of table or name", message.id)
            return False
        return True

    def table_refused(self, request: int) -> None:
        """A query named no table this credential may use. With a table allowlist, a table
        it may not touch and one that does not exist get the same answer, so a name reveals
        nothing about the tables it may not see."""
        if self.principal.tables is not None:
            self._error("forbidden", "this credential may not touch that table", request)
        else:
            self._error("unknown_table", "no such table", request)

    def auth_refused(self, *, now: float) -> None:
        """An in-band ``auth`` was refused (its answer already sent): the connection goes
        on with its current credential, unless that has expired by ``now`` (4001)."""
        if is_expired(self.principal.expires_at, now=now):
            self._actions.append(Close(CloseCode.AUTH_EXPIRED, "credential expired"))

    def narrowed(self, principal: Principal) -> list[tuple[str, Any]]:
        """The key's grants shrank to ``principal``'s (``server/hub/grants.py``): later
        messages are checked against it, the subscriptions it may no longer read are
        returned (table, subscriber) for the shell to drop, and the client is told
        (``grants_changed``)."""
        self.principal = principal
        readable = Scope.TABLES_READ in principal.scopes
        dropped = sorted(t for t in self.subscriptions if not (readable and principal.may_touch(t)))
        self._actions.append(
            Send(
                GrantsChanged(
                    scopes=sorted(s.value for s in principal.scopes),
                    tables=sorted(principal.tables) if principal.tables is not None else None,
                    dropped=dropped,
                )
            )
        )
        return [(t, self.subscriptions.pop(t)) for t in dropped]

    def ended(self) -> tuple[list[tuple[str, Any]], list[PresenceEvent]]:
        """The connection is gone: the subscriptions to drop (table, subscriber) and the
        presence events that tell the other subscribers it left. Forgets both."""
        subscriptions = list(self.subscriptions.items())
        subject = self.principal.subject
        left = [
            PresenceEvent(table=t, session=self.id, subject=subject) for t in self.presence_tables
        ]
        self.subscriptions.clear()
        self.presence_tables.clear()
        return subscriptions, left


def _request(message: Any) -> int | None:
    """The request id a message's answer carries (``presence`` has none)."""
    return getattr(message, "id", None)


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether lists and maps in ``value`` nest more than ``limit`` levels."""
    if isinstance(value, dict):
        return limit <= 0 or any(_deeper_than(v, limit - 1) for v in value.values())
    if isinstance(value, list):
        return limit <= 0 or any(_deeper_than(v, limit - 1) for v in value)
    return False
