"""Publishing stream statistics to Prometheus (needs ``prometheus_client``).

:class:`StreamCollector` reads ``stream.stats`` whenever Prometheus scrapes, so the figures are
always current and nothing runs between scrapes::

    import prometheus_client
    from spead2.tools.prometheus import StreamCollector

    collector = StreamCollector({"beam0": stream})   # or StreamCollector(stream)
    prometheus_client.REGISTRY.register(collector)
    prometheus_client.start_http_server(9100)

Each statistic becomes one metric named ``spead2_recv_<stat>`` (counters get Prometheus's
``_total`` suffix; ``max_batch`` and other MAXIMUM statistics are gauges) with a ``stream``
label.  Packets dropped by the receiver are ``spead2_recv_packets_dropped_total`` with a
``reason`` label (see :data:`spead2.recv.DROP_REASONS`), and the ring's fill level is
``spead2_recv_ringbuffer_heaps`` (and ``..._capacity``).  Reading the statistics is
thread-safe, so the scrape may run on any thread (prometheus_client's HTTP server uses its own).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry

from spead2.recv._config import StreamStatConfig

__all__ = ["STAT_HELP", "StreamCollector", "register_stream"]

#: Help text of the core statistics.
STAT_HELP: dict[str, str] = {
    "heaps": "Heaps received (complete, or incomplete ones passed on with contiguous_only=False)",
    "incomplete_heaps_evicted": "Incomplete heaps evicted to make room for newer heaps",
    "incomplete_heaps_flushed": "Incomplete heaps flushed when the stream stopped",
    "packets": "Packets received (accepted by the stream)",
    "batches": "Batches of packets processed",
    "max_batch": "Most packets processed in one batch",
    "single_packet_heaps": "Heaps that arrived in a single packet",
    "search_dist": "Total steps taken searching for the live heap of a packet",
    "worker_blocked": "Times the receiver waited because the ring of heaps was full",
}


class StreamCollector(Collector):
    """A Prometheus collector for the statistics of one or more streams.

    ``streams`` is one stream (labelled ``stream=name``) or a mapping from label value to
    stream.  Streams may be added and removed later.  Works with blocking and
    asyncio streams alike; a stopped stream keeps reporting its final figures until removed.
    """

    def __init__(
        self,
        streams: Any | Mapping[str, Any] = None,
        *,
        name: str = "default",
        namespace: str = "spead2_recv",
        label: str = "stream",
    ) -> None:
        self._namespace = namespace
        self._label = label
        self._lock = threading.Lock()
        self._streams: dict[str, Any] = {}
        if isinstance(streams, Mapping):
            for key, stream in streams.items():
                self.add_stream(key, stream)
        elif streams is not None:
            self.add_stream(name, streams)

    def add_stream(self, name: str, stream: Any) -> None:
        """Reports ``stream`` with label ``stream=name`` (replacing any stream of that name)."""
        with self._lock:
            self._streams[str(name)] = stream

    def remove_stream(self, name: str) -> None:
        with self._lock:
            del self._streams[name]

    def _metric_name(self, stat: str) -> str:
        return f"{self._namespace}_{stat}"

    def describe(self) -> Iterable[Metric]:
        # Empty families: the names the registry checks for clashes (from the configuration).
        with self._lock:
            configs = {stat.name: stat for stream in self._streams.values() for stat in stream.config.stats}
        for stat in configs.values():
            yield self._family(stat)
        yield from self._extra_families()

    def _family(self, stat: StreamStatConfig) -> CounterMetricFamily | GaugeMetricFamily:
        doc = STAT_HELP.get(stat.name, f"Statistic {stat.name!r} of the stream")
        if stat.mode is StreamStatConfig.Mode.MAXIMUM:
            return GaugeMetricFamily(self._metric_name(stat.name), doc, labels=[self._label])
        return CounterMetricFamily(self._metric_name(stat.name), doc, labels=[self._label])

    def _extra_families(self) -> tuple[CounterMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            CounterMetricFamily(
                self._metric_name("packets_dropped"),
                "Packets dropped by the receiver, by reason",
                labels=[self._label, "reason"],
            ),
            GaugeMetricFamily(
                self._metric_name("ringbuffer_heaps"),
                "Heaps waiting in the ring to be taken by the consumer",
                labels=[self._label],
            ),
            GaugeMetricFamily(
                self._metric_name("ringbuffer_capacity"),
                "Capacity of the ring of heaps (RingStreamConfig.heaps)",
                labels=[self._label],
            ),
        )

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            streams = list(self._streams.items())
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
        dropped, ring_size, ring_capacity = self._extra_families()
        for name, stream in streams:
            stats = stream.stats
            for stat, value in zip(stats.config, stats.values(), strict=True):
                family = families.get(stat.name)
                if family is None:
                    family = families[stat.name] = self._family(stat)
                family.add_metric([name], value)
            for reason, count in stats.drops.items():
                dropped.add_metric([name, reason], count)
            ringbuffer = stream.ringbuffer
            ring_size.add_metric([name], ringbuffer.size())
            ring_capacity.add_metric([name], ringbuffer.capacity())
        yield from families.values()
        yield dropped
        yield ring_size
        yield ring_capacity


def register_stream(
    stream: Any,
    name: str = "default",
    registry: CollectorRegistry = REGISTRY,
    **kwargs: Any,
) -> StreamCollector:
    """Registers a :class:`StreamCollector` for one stream; returns it (for
    ``registry.unregister`` or :meth:`StreamCollector.add_stream`)."""
    collector = StreamCollector(stream, name=name, **kwargs)
    registry.register(collector)
    return collector
