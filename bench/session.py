"""Per-frame cost of the session shell and its rules, with no socket, store or fan-out.

A ``Session`` (``server/hub/session.py``) on a stub connection (the frames it writes are
counted, never sent) handles ``--frames`` frames of one kind in a loop on the event loop,
through the real codec, authorization, admission (the hub's ``Admission`` with metrics,
limits off as in ``bench/fanout.py``) and dispatch:

- ``apply``: a one-cell batch decoded, authorized, charged, submitted to a stub store
  whose commit is already done, and acked from the commit's callback (the hot path of an
  edit, without SQLite);
- ``ping``: decoded, authorized, charged, answered ``pong``;
- ``forbidden``: an ``apply`` from a read-only credential, refused before admission;
- ``bad_frame``: an undecodable frame, answered with its error (the count is reset before
  it reaches the bad-frame limit);
- ``not_subscribed``: ``presence`` on a table the connection has not subscribed to
  (charged, then refused).

Prints one JSON line: for each kind, CPU microseconds (process time, steadier than wall
time on a shared machine) per frame, the best of ``--repeat`` runs, and the function calls
per frame (Python and C, counted with ``sys.setprofile`` over a separate run of 1,000
frames: a figure no other load on the machine changes).

    python bench/session.py [--frames 20000 --repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from typing import Any

from websockets.protocol import State

from protocol.codec import MSGPACK, codec_for
from protocol.messages import Apply, Ping, Presence
from protocol.ops import UpdateCells
from server.auth.principal import ALL_SCOPES, CredentialKind, Plan, Principal, Scope, TenantId
from server.hub.admission import Admission, AdmissionSettings
from server.hub.metrics import HubMetrics
from server.hub.services import Services
from server.hub.session import Session, default_limits
from server.hub.tables import register as register_tables
from server.ratelimit import MemoryRateLimiter
from server.store.writer import BatchOutcome


class _Protocol:
    state = State.OPEN

    def __init__(self) -> None:
        self.frames = 0

    def send_binary(self, frame: bytes) -> None:
        self.frames += 1

    send_text = send_binary


class _Transport:
    def get_write_buffer_size(self) -> int:
        return 0


class StubConnection:
    """What ``Session`` and ``Outbox`` use of a connection; writes are counted only."""

    def __init__(self) -> None:
        self.protocol = _Protocol()
        self.transport = _Transport()
        self.id = uuid.uuid4()

    def send_data(self) -> None:
        pass

    async def close(self, code: int, reason: str) -> None:
        pass


class _Store:
    """A tenant store whose every batch is already committed."""

    def __init__(self) -> None:
        self.version = 0

    def submit(self, *_: Any) -> asyncio.Future[BatchOutcome]:
        self.version += 1
        future: asyncio.Future[BatchOutcome] = asyncio.get_running_loop().create_future()
        future.set_result(BatchOutcome(version=self.version))
        return future


class StubStores:
    """``lease``/``release`` of one :class:`_Store`."""

    def __init__(self) -> None:
        self.store = _Store()

    async def lease(self, tenant: str) -> _Store:
        return self.store

    def release(self, store: _Store) -> None:
        pass


def principal(scopes: frozenset[Scope]) -> Principal:
    return Principal(
        tenant=TenantId("acme"),
        subject="bench",
        kind=CredentialKind.API_KEY,
        credential_id="k_bench",
        scopes=scopes,
        plan=Plan.PRO,
    )


def _reset_bad_frames(session: Any) -> None:
    holder = getattr(session, "core", session)  # the rules' state, wherever it lives
    holder.bad_frames = 0


async def _run(kind: str, frames: int) -> float:
    metrics = HubMetrics()
    stores = StubStores()
    services = Services(hub=None, stores=stores, metrics=metrics)  # type: ignore[arg-type]
    register_tables(services)
    admission = Admission(MemoryRateLimiter(), AdmissionSettings(enabled=False), metrics=metrics)
    codec = codec_for(MSGPACK)
    scopes = frozenset({Scope.TABLES_READ}) if kind == "forbidden" else ALL_SCOPES
    session = Session(
        StubConnection(),  # type: ignore[arg-type]
        principal(scopes),
        codec,
        services,
        limits=default_limits(0, 0),
        admit=admission,
    )
    edit = Apply(id=1, table="t1", client="c", op="o", ops=[UpdateCells(row="r1", values={"a": 1})])
    frame = {
        "apply": codec.encode(edit),
        "ping": codec.encode(Ping(id=1)),
        "forbidden": codec.encode(edit),
        "bad_frame": b"\xc1",
        "not_subscribed": codec.encode(Presence(table="t1", state={"cursor": 1})),
    }[kind]
    started = time.process_time()
    for n in range(frames):
        await session.handle_frame(frame)
        if n % 16 == 15:
            _reset_bad_frames(session)
            await asyncio.sleep(0)  # let the outbox flush, as the read loop would
    await asyncio.sleep(0)  # the last acks
    elapsed = time.process_time() - started
    assert kind != "apply" or session.conn.protocol.frames == frames, "every batch acked"  # type: ignore[attr-defined]
    await admission.close()
    return elapsed * 1e6 / frames


def _calls_per_frame(kind: str, frames: int = 1000) -> float:
    calls = 0

    def count(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    async def counted() -> None:
        sys.setprofile(count)
        try:
            await _run(kind, frames)
        finally:
            sys.setprofile(None)

    asyncio.run(counted())
    return calls / frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    kinds = ("apply", "ping", "forbidden", "bad_frame", "not_subscribed")
    result: dict[str, Any] = {"bench": "session", "frames": args.frames}
    for kind in kinds:
        runs = [asyncio.run(_run(kind, args.frames)) for _ in range(args.repeat)]
        result[f"{kind}_us_per_frame"] = round(min(runs), 2)
        result[f"{kind}_calls_per_frame"] = round(_calls_per_frame(kind), 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
