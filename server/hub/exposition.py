"""The ``/metrics`` body: :class:`~server.hub.metrics.HubMetrics` as Prometheus families.

Imported at the first scrape (``prometheus_client`` brings ``http.server``, ``urllib`` and
``email`` with it), so a server nobody scrapes never loads it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from server.logbudget import records_dropped

if TYPE_CHECKING:
    from server.hub.metrics import Buckets, HubMetrics


def registry_for(metrics: HubMetrics) -> CollectorRegistry:
    """A registry of one server's metrics (several servers run in one test process)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(_Collector(metrics))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The text exposition of every metric in ``registry``."""
    return generate_latest(registry)


def _tag(kind: type) -> str:
    config = getattr(kind, "__struct_config__", None)
    tag = getattr(config, "tag", None)
    return str(tag) if tag else kind.__name__


class _Collector(Collector):
    def __init__(self, metrics: HubMetrics) -> None:
        self._m = metrics

    def describe(self) -> list[Metric]:
        return []  # families are only known at scrape time

    def collect(self) -> Iterator[Metric]:
        m = self._m
        yield _histogram(m.commit_batches)
        yield _histogram(m.ack_latency)
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


def _histogram(buckets: Buckets) -> HistogramMetricFamily:
    cumulative: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip(buckets.bounds, buckets.counts, strict=False):
        running += count
        cumulative.append((_bound(bound), running))
    running += buckets.counts[-1]
    cumulative.append(("+Inf", running))
    return HistogramMetricFamily(
        buckets.name, buckets.documentation, buckets=cumulative, sum_value=buckets.total
    )


def _bound(bound: float) -> str:
    text: str = floatToGoString(bound)  # type: ignore[no-untyped-call]  # as Histogram writes le
    return text
