"""The hub's Prometheus metrics, one registry per server (several run in one test process).

How it works
------------
The hot path only bumps plain integers and ``dict`` counters (a message in, a message out,
a rate-limit rejection); nothing there takes a lock or formats a label. The fan-out loop does
no work at all for metrics: the frames and changes it delivered are the ``Hub``'s own
counters, read at scrape time, as are the open connections and tenant stores. At scrape time
:class:`_Collector` turns all of that into metric families. The two histograms (commit batch
size, ack latency) are ``prometheus_client`` histograms, observed once per group commit and
once per acknowledged batch.

Metrics (all prefixed ``hypertab_``): see ``docs/operations.md``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from protocol.messages import Change
from server.logbudget import records_dropped

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The Prometheus text exposition format's content type."""

_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def _tag(kind: type) -> str:
    config = getattr(kind, "__struct_config__", None)
    tag = getattr(config, "tag", None)
    return str(tag) if tag else kind.__name__


class HubMetrics:
    """Counters for one hub process; :meth:`render` is the ``/metrics`` body."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.messages_in: Counter[type] = Counter()
        self.messages_out: Counter[type] = Counter()
        self.ops_committed = 0
        self.rate_limited: Counter[str] = Counter()  # by limit: plan, burst, oversize
        self.rate_abuse_closes = 0
        self.handshakes_throttled = 0
        self.auth_failures: Counter[str] = Counter()  # by reason category
        self.revocation_closes = 0
        self.slow_consumer_closes = 0
        self.commit_batches = Histogram(
            "hypertab_commit_batches",
            "Batches committed per table per group commit.",
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.ack_latency = Histogram(
            "hypertab_ack_latency_seconds",
            "From a batch's arrival to its ack being written (after COMMIT).",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._gauges: dict[str, tuple[str, Callable[[], float]]] = {}
        self._counters: dict[str, tuple[str, Callable[[], float]]] = {}
        self.fanout: Any = None  # the Hub: its ``frames`` and ``delivered`` counters
        self.registry.register(_Collector(self))

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
        return generate_latest(self.registry)


class _Collector(Collector):
    def __init__(self, metrics: HubMetrics) -> None:
        self._m = metrics

    def describe(self) -> list[Metric]:
        return []  # families are only known at scrape time

    def collect(self) -> Iterator[Metric]:
        m = self._m
        fanout = {"changes": int(m.fanout.frames)} if m.fanout is not None else {}
        yield _labelled(
            "hypertab_messages_in",
            "Client messages accepted for handling, by type.",
            "type",
            {_tag(k): v for k, v in m.messages_in.items()},
        )
        yield _labelled(
            "hypertab_messages_out",
            "Messages written to clients by type (changes: fan-out frames).",
            "type",
            {_tag(k): v for k, v in m.messages_out.items()} | fanout,
        )
        if m.fanout is not None:
            yield _counter(
                "hypertab_changes_delivered",
                "Committed batches delivered to subscribers (one per batch per subscriber).",
                m.fanout.delivered,
            )
        yield _counter("hypertab_ops_committed", "Ops committed.", m.ops_committed)
        yield _labelled(
            "hypertab_rate_limited",
            "Messages refused by a rate limit, by limit (plan, burst, oversize).",
            "limit",
            dict(m.rate_limited),
        )
        yield _counter(
            "hypertab_rate_abuse_closes", "Connections closed for rate abuse.", m.rate_abuse_closes
        )
        yield _counter(
            "hypertab_handshakes_throttled",
            "Handshakes refused with 429 after repeated auth failures from one address.",
            m.handshakes_throttled,
        )
        yield _labelled(
            "hypertab_auth_failures",
            "Refused handshake credentials, by reason.",
            "reason",
            dict(m.auth_failures),
        )
        yield _counter(
            "hypertab_revocation_closes",
            "Connections closed because their credential was revoked.",
            m.revocation_closes,
        )
        yield _counter(
            "hypertab_slow_consumer_closes",
            "Connections closed (4008, then aborted) for falling behind the send buffer bound.",
            m.slow_consumer_closes,
        )
        yield _counter(
            "hypertab_log_records_dropped",
            "Log records dropped by the per-kind log rate limit (this process).",
            records_dropped(),
        )
        for name, (doc, read) in m._counters.items():
            yield _counter(f"hypertab_{name}", doc, read())
        for name, (doc, read) in m._gauges.items():
            gauge = GaugeMetricFamily(f"hypertab_{name}", doc)
            gauge.add_metric([], float(read()))
            yield gauge


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _labelled(name: str, doc: str, label: str, values: dict[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


def bind_server(metrics: HubMetrics, server: Any) -> None:
    """Read a :class:`~server.app.HypertabServer`'s own counters at scrape time."""
    metrics.gauge("connections", "Open WebSocket connections.", lambda: len(server.registry))
    metrics.gauge("open_tenant_stores", "Tenant databases open.", lambda: server.stores.open_count)
    metrics.fanout = server.hub
