"""The session's rules, driven with frames and events alone (no socket, no event loop)."""

from __future__ import annotations

from typing import Any

import pytest
from hub_rules import actions, core, frame, principal

from protocol.codec import JSON, MSGPACK
from protocol.errors import CloseCode
from protocol.identity import GrantsChanged
from protocol.limits import MAX_JSON_DEPTH
from protocol.messages import (
    Ack,
    Apply,
    Error,
    Ping,
    Presence,
    PresenceEvent,
    Query,
    ServerLimits,
    Subscribe,
    Unsubscribe,
)
from protocol.ops import AddColumn, ColumnDef, ColumnType, UpdateCells
from server.auth.principal import Scope
from server.engine.batch import BatchError
from server.hub.session_core import MAX_BAD_FRAMES, Close, Send
from server.store.writer import BatchOutcome

READ = frozenset({Scope.TABLES_READ})
WRITE = frozenset({Scope.TABLES_READ, Scope.TABLES_WRITE})


def edit(rid: int = 1, table: str = "t1", ops: list[Any] | None = None) -> Apply:
    return Apply(
        id=rid,
        table=table,
        client="c1",
        op=f"op{rid}",
        ops=ops if ops is not None else [UpdateCells(row="r1", values={"name": "x"})],
    )


def answer(sent: list[Any]) -> Error:
    """The single error the core queued."""
    assert len(sent) == 1 and isinstance(sent[0], Send), sent
    error = sent[0].message
    assert isinstance(error, Error)
    return error


# --- frames -------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", [MSGPACK, JSON])
def test_an_allowed_message_is_returned_with_nothing_to_do(encoding: str) -> None:
    session = core(encoding=encoding)
    message = session.receive(frame(session, edit(rid=3)))
    assert message == edit(rid=3)
    assert actions(session) == []
    assert session.bad_frames == 0


@pytest.mark.parametrize(("encoding", "wrong"), [(MSGPACK, "text"), (JSON, "binary")])
def test_a_frame_of_the_other_type_is_a_bad_frame(encoding: str, wrong: str) -> None:
    session = core(encoding=encoding)
    data = b'{"type": "ping", "id": 1}'
    got = session.receive(data.decode() if wrong == "text" else data)
    assert got is None
    error = answer(actions(session))
    assert error.code == "bad_message"
    assert error.message == f"{encoding} takes {'binary' if encoding == MSGPACK else 'text'} frames"
    assert session.bad_frames == 1


def test_an_undecodable_op_is_answered_with_its_code_request_id_and_op_index() -> None:
    session = core()
    bad = {
        "type": "apply",
        "id": 41,
        "table": "t1",
        "client": "c1",
        "op": "o1",
        "ops": [
            {"type": "update_cells", "row": "r1", "values": {"a": 1}},
            {"type": "no_such_op"},
        ],
    }
    assert session.receive(frame(session, bad)) is None
    error = answer(actions(session))
    assert (error.code, error.id, error.op_index) == ("invalid_op", 41, 1)


def test_an_unknown_type_is_unknown_type_and_a_bad_frame() -> None:
    session = core()
    assert session.receive(frame(session, {"type": "teleport", "id": 2})) is None
    error = answer(actions(session))
    assert (error.code, error.id) == ("unknown_type", 2)
    assert session.bad_frames == 1


def test_the_bad_frame_limit_closes_4000_once_after_the_answer() -> None:
    session = core()
    junk = b"\xc1"  # never valid msgpack
    for _ in range(MAX_BAD_FRAMES - 1):
        assert session.receive(junk) is None
        assert [type(a) for a in actions(session)] == [Send]
    assert session.receive(junk) is None
    last = actions(session)
    assert [type(a) for a in last] == [Send, Close]
    assert last[1] == Close(CloseCode.BAD_CLIENT, "too many invalid frames")
    assert session.receive(junk) is None  # frames still in flight: answered, not closed twice
    assert [type(a) for a in actions(session)] == [Send]


def test_good_frames_between_bad_ones_do_not_reset_the_count() -> None:
    session = core()
    for n in range(MAX_BAD_FRAMES - 1):
        session.receive(b"\xc1")
        assert session.receive(frame(session, Ping(id=n))) == Ping(id=n)
    assert not any(isinstance(a, Close) for a in actions(session))
    session.receive(b"\xc1")
    assert actions(session)[-1] == Close(CloseCode.BAD_CLIENT, "too many invalid frames")


# --- authorization ------------------------------------------------------------------------


def test_a_message_the_credential_lacks_the_scope_for_is_forbidden() -> None:
    session = core(principal(READ))
    assert session.receive(frame(session, edit(rid=5))) is None
    error = answer(actions(session))
    assert (error.code, error.id) == ("forbidden", 5)
    assert error.message == "this credential lacks the tables:write scope"
    assert session.bad_frames == 0  # a refusal is not a protocol violation


def test_a_schema_op_also_needs_schema_write() -> None:
    session = core(principal(WRITE))
    column = AddColumn(column=ColumnDef(id="c9", name="Nine", type=ColumnType.TEXT))
    assert session.receive(frame(session, edit(ops=[column]))) is None
    assert answer(actions(session)).message == "this credential lacks the schema:write scope"
    assert session.receive(frame(session, edit())) is not None  # a cell edit is fine


def test_a_table_off_the_allowlist_is_forbidden_by_id() -> None:
    session = core(principal(tables=frozenset({"t1"})))
    for message in (edit(table="t2"), Subscribe(id=1, table="t2"), Unsubscribe(id=1, table="t2")):
        assert session.receive(frame(session, message)) is None
        assert answer(actions(session)).message == "this credential may not touch that table"
    assert session.receive(frame(session, Subscribe(id=2, table="t1"))) is not None


def test_a_query_names_its_table_by_name_and_is_refused_once_it_resolves() -> None:
    limited = core(principal(tables=frozenset({"t1"})))
    query = Query(id=8, table="People")  # a name: not refused before it resolves
    assert limited.receive(frame(limited, query)) == query
    limited.table_refused(8)  # resolved to no table it may touch, or to none
    error = answer(actions(limited))
    assert (error.code, error.id) == ("forbidden", 8)  # the same answer for both
    unlimited = core()
    unlimited.table_refused(8)
    assert answer(actions(unlimited)).code == "unknown_table"


# --- admission, handlers, commits ---------------------------------------------------------


def test_a_rate_limited_message_is_answered_with_its_request_id() -> None:
    session = core()
    message = session.receive(frame(session, edit(rid=12)))
    assert message is not None
    session.refused(message, Error(code="rate_limited", message="slow down", retry_after_ms=250))
    error = answer(actions(session))
    assert (error.code, error.id, error.retry_after_ms) == ("rate_limited", 12, 250)


@pytest.mark.parametrize(("shutting_down", "code"), [(True, "unavailable"), (False, "internal")])
def test_a_failed_handler_is_answered_by_cause(shutting_down: bool, code: str) -> None:
    session = core()
    session.failed(Ping(id=4), shutting_down=shutting_down)
    error = answer(actions(session))
    assert (error.code, error.id) == (code, 4)


def test_a_commit_is_acked_refused_or_unavailable() -> None:
    session = core()
    batch = edit(rid=9)
    assert session.committed(batch, BatchOutcome(version=17)) == Ack(
        id=9, op="op9", version=17, duplicate=False
    )
    again = session.committed(batch, BatchOutcome(version=17, duplicate=True))
    assert isinstance(again, Ack) and again.duplicate
    refused = session.committed(batch, BatchOutcome(error=BatchError("unknown_row", "no", 0)))
    assert refused == Error(code="unknown_row", message="no", id=9, op_index=0)
    cancelled = session.committed(batch, None)
    assert isinstance(cancelled, Error) and cancelled.code == "unavailable"
    assert actions(session) == []  # answers are returned, not queued


# --- presence and subscriptions -----------------------------------------------------------


def test_presence_needs_a_subscription_checked_once_charged() -> None:
    session = core()
    update = Presence(table="t1", state={"cursor": [1, 2]})
    assert session.receive(frame(session, update)) == update  # charged like any message
    assert session.admitted(update) is False
    error = answer(actions(session))
    assert (error.code, error.id) == ("not_subscribed", None)
    session.subscriptions["t1"] = object()
    assert session.admitted(update) is True
    event = session.presence(update)
    assert event == PresenceEvent(table="t1", session="s1", subject="ada", state=update.state)


def test_presence_state_nested_too_deep_is_not_relayed() -> None:
    session = core()
    state: Any = 0
    for _ in range(MAX_JSON_DEPTH + 1):
        state = [state]
    assert session.presence(Presence(table="t1", state={"deep": state})) is None
    assert answer(actions(session)).code == "bad_message"
    assert session.presence_tables == set()


def test_at_the_end_subscriptions_are_dropped_and_presence_left() -> None:
    session = core()
    sub = object()
    session.subscriptions["t1"] = sub
    session.presence(Presence(table="t1", state={"x": 1}))
    dropped, left = session.ended()
    assert dropped == [("t1", sub)]
    assert left == [PresenceEvent(table="t1", session="s1", subject="ada")]
    assert session.ended() == ([], [])


def test_a_subscribe_names_exactly_one_of_table_or_name() -> None:
    session = core()
    assert session.subscribe_valid(Subscribe(id=1)) is False
    assert answer(actions(session)).code == "bad_message"
    assert session.subscribe_valid(Subscribe(id=2, table="t1", name="People")) is False
    actions(session)
    assert session.subscribe_valid(Subscribe(id=3, name="People")) is True
    assert actions(session) == []


# --- credentials --------------------------------------------------------------------------


def test_later_messages_are_checked_against_a_replaced_principal() -> None:
    session = core(principal(READ))
    assert session.receive(frame(session, edit())) is None  # read-only
    actions(session)
    session.principal = principal(WRITE)  # in-band re-auth with a wider token
    assert session.receive(frame(session, edit())) is not None
    session.principal = principal(frozenset())  # a key's grants narrowed to nothing
    assert session.receive(frame(session, Subscribe(id=1, table="t1"))) is None
    assert answer(actions(session)).code == "forbidden"


def test_a_refused_reauth_closes_4001_only_once_the_credential_expired() -> None:
    session = core(principal(expires_at=1000.0))
    session.auth_refused(now=999.0)
    assert actions(session) == []  # the current credential still applies
    session.auth_refused(now=1000.0)
    assert actions(session) == [Close(CloseCode.AUTH_EXPIRED, "credential expired")]
    forever = core(principal(expires_at=None))
    forever.auth_refused(now=1e12)
    assert actions(forever) == []


def test_welcome_says_who_the_server_thinks_the_client_is() -> None:
    session = core(principal(READ, tables=frozenset({"t2", "t1"}), expires_at=5.0), JSON)
    limits = ServerLimits(
        max_frame_bytes=1, max_ops_per_batch=2, ops_per_minute=3, burst_per_second=4
    )
    welcome = session.welcome(limits)
    assert (welcome.session, welcome.tenant, welcome.subject) == ("s1", "acme", "ada")
    assert welcome.scopes == ["tables:read"]
    assert welcome.tables == ["t1", "t2"]
    assert (welcome.encoding, welcome.expires_at, welcome.limits) == (JSON, 5.0, limits)


def test_narrowed_grants_drop_what_can_no_longer_be_read_and_tell_the_client() -> None:
    session = core()
    subs = {"t1": object(), "t2": object()}
    session.subscriptions.update(subs)
    dropped = session.narrowed(principal(READ, tables=frozenset({"t1"})))
    assert dropped == [("t2", subs["t2"])]
    assert list(session.subscriptions) == ["t1"]
    [told] = actions(session)
    assert told == Send(GrantsChanged(scopes=["tables:read"], tables=["t1"], dropped=["t2"]))
    assert session.receive(frame(session, Subscribe(id=1, table="t2"))) is None  # now refused
    assert session.narrowed(principal(frozenset())) == [("t1", subs["t1"])]  # nothing readable
