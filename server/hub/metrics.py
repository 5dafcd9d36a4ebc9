"""The hub's Prometheus metrics, one registry per server (several run in one test process).

How it works
------------
The hot path only bumps plain integers and ``dict`` counters (a message in, a message out,
a rate-limit rejection); nothing there takes a lock or formats a label. The fan-out loop does
no work at all for metrics: the frames and changes it delivered are the ``Hub``'s own
counters, read at scrape time, as are the open connections and tenant stores. At scrape time
:mod:`server.hub.exposition` turns all of that into metric families. The two histograms
(commit batch size, ack latency) are :class:`Buckets`: a bisect and two additions per
observation, once per group commit and once per acknowledged batch. ``prometheus_client``
(and the ``http.server``, ``urllib`` and ``email`` modules it imports, ~2 MiB) loads at the
first scrape, not at start.

Metrics (all prefixed ``hypertab_``): see ``docs/operations.md``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from protocol.messages import Change

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The Prometheus text exposition format's content type."""

_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Buckets:
    """A Prometheus histogram's state: counts per upper bound (``le``), their sum."""

    __slots__ = ("bounds", "counts", "documentation", "name", "total")

    def __init__(self, name: str, documentation: str, bounds: Sequence[float]) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last: above every bound (+Inf)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value


class HubMetrics:
    """Counters for one hub process; :meth:`render` is the ``/metrics`` body."""

    def __init__(self) -> None:
        self.messages_in: Counter[type] = Counter()
        self.messages_out: Counter[type] = Counter()
        self.ops_committed = 0
        self.rate_limited: Counter[str] = Counter()  # by limit: plan, burst, oversize
        self.rate_abuse_closes = 0
        self.handshakes_throttled = 0
        self.auth_failures: Counter[str] = Counter()  # by reason category
        self.revocation_closes = 0
        self.slow_consumer_closes = 0
        self.commit_batches = Buckets(
            "hypertab_commit_batches",
            "Batches committed per table per group commit.",
            _BATCH_BUCKETS,
        )
        self.ack_latency = Buckets(
            "hypertab_ack_latency_seconds",
            "From a batch's arrival to its ack being written (after COMMIT).",
            _LATENCY_BUCKETS,
        )
        self._gauges: dict[str, tuple[str, Callable[[], float]]] = {}
        self._counters: dict[str, tuple[str, Callable[[], float]]] = {}
        self.fanout: Any = None  # the Hub: its ``frames`` and ``delivered`` counters
        self._registry: Any = None  # prometheus_client's, made at the first scrape

    def gauge(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """Export ``read()`` as the gauge ``hypertab_<name>``, read at scrape time."""
        self._gauges[name] = (documentation, read)

    def counter(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """Export ``read()`` (a count that only grows) as ``hypertab_<name>_total``."""
        self._counters[name] = (documentation, read)

    # --- hot path ---------------------------------------------------------------------------

    def message_in(self, message: object) -> None:
        """A decoded client message was accepted for handling."""
        self.messages_in[type(message)] += 1

    def message_out(self, message: object) -> None:
        """A message was written to one client (responses; fan-out is counted by the hub)."""
        self.messages_out[type(message)] += 1

    def committed(self, changes: Sequence[Change]) -> None:
        """One table's share of a group commit (from the store's ``on_commit``)."""
        self.ops_committed += sum(len(c.ops) for c in changes)
        self.commit_batches.observe(len(changes))

    def acked(self, seconds: float) -> None:
        """A batch was acknowledged ``seconds`` after it arrived."""
        self.ack_latency.observe(seconds)

    # --- scrape -----------------------------------------------------------------------------

    def render(self) -> bytes:
        """The text exposition of every metric."""
        from server.hub.exposition import registry_for, render  # at the first scrape

        if self._registry is None:
            self._registry = registry_for(self)
        return render(self._registry)


def bind_server(metrics: HubMetrics, server: Any) -> None:
    """Read a :class:`~server.app.HypertabServer`'s own counters at scrape time."""
    metrics.gauge("connections", "Open WebSocket connections.", lambda: len(server.registry))
    metrics.gauge("open_tenant_stores", "Tenant databases open.", lambda: server.stores.open_count)
    metrics.fanout = server.hub
