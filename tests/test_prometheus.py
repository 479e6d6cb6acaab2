"""spead2.tools.prometheus: stream statistics as Prometheus metrics, read at scrape time."""

from __future__ import annotations

import urllib.request

import pytest

prometheus_client = pytest.importorskip("prometheus_client")

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

import spead2  # noqa: E402
import spead2.recv  # noqa: E402
import spead2.recv.asyncio  # noqa: E402
from spead2.tools import demo  # noqa: E402
from spead2.tools.prometheus import StreamCollector, register_stream  # noqa: E402


def samples(
    registry: prometheus_client.CollectorRegistry,
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = prometheus_client.generate_latest(registry).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def received_stream(thread_pool: spead2.ThreadPool, n_heaps: int) -> spead2.recv.Stream:
    stream = spead2.recv.Stream(thread_pool)
    stream.add_buffer_reader(b"".join(demo.packets(n_heaps)))
    assert len(list(stream)) == n_heaps
    return stream


def test_single_stream(thread_pool: spead2.ThreadPool) -> None:
    registry = prometheus_client.CollectorRegistry()
    stream = received_stream(thread_pool, 7)
    register_stream(stream, "beam0", registry)
    got = samples(registry)
    label = (("stream", "beam0"),)
    assert got[("spead2_recv_heaps_total", label)] == 7
    assert got[("spead2_recv_packets_total", label)] == stream.stats["packets"]
    assert got[("spead2_recv_incomplete_heaps_evicted_total", label)] == 0
    # MAXIMUM statistics are gauges (no _total)
    assert got[("spead2_recv_max_batch", label)] == stream.stats["max_batch"]
    assert got[("spead2_recv_packets_dropped_total", (("reason", "bad_magic"), ("stream", "beam0")))] == 0
    assert got[("spead2_recv_ringbuffer_capacity", label)] == 4
    assert got[("spead2_recv_ringbuffer_heaps", label)] == 0
    for name in stream.stats:
        kind = "" if name == "max_batch" else "_total"
        assert (f"spead2_recv_{name}{kind}", label) in got


def test_read_at_scrape_time_and_several_streams(thread_pool: spead2.ThreadPool) -> None:
    registry = prometheus_client.CollectorRegistry()
    queue = spead2.InprocQueue()
    live = spead2.recv.Stream(thread_pool)
    live.add_inproc_reader(queue)
    collector = StreamCollector({"live": live, "done": received_stream(thread_pool, 3)})
    registry.register(collector)
    assert samples(registry)[("spead2_recv_heaps_total", (("stream", "live"),))] == 0
    # Garbage is counted as dropped, by reason.
    queue.add_packet(b"\x00" * 64)
    groups = demo.heap_packets(2, stop=False)
    for packet in groups[0] + groups[1]:
        queue.add_packet(packet)
    live.get()
    live.get()
    live.stop()
    got = samples(registry)
    assert got[("spead2_recv_heaps_total", (("stream", "live"),))] == 2
    assert got[("spead2_recv_heaps_total", (("stream", "done"),))] == 3
    assert got[("spead2_recv_packets_dropped_total", (("reason", "bad_magic"), ("stream", "live")))] == 1
    collector.remove_stream("done")
    assert ("spead2_recv_heaps_total", (("stream", "done"),)) not in samples(registry)


def test_custom_namespace_and_custom_stat(thread_pool: spead2.ThreadPool) -> None:
    registry = prometheus_client.CollectorRegistry()
    config = spead2.recv.StreamConfig()
    config.add_stat("my_counter")
    config.add_stat("my_peak", spead2.recv.StreamStatConfig.Mode.MAXIMUM)
    stream = spead2.recv.asyncio.Stream(None, config)
    register_stream(stream, "x", registry, namespace="myapp_spead", label="source")
    got = samples(registry)
    assert got[("myapp_spead_my_counter_total", (("source", "x"),))] == 0
    assert got[("myapp_spead_my_peak", (("source", "x"),))] == 0
    # The registry knows the names: a clash is refused.
    with pytest.raises(ValueError, match="Duplicated"):
        register_stream(stream, "x", registry, namespace="myapp_spead", label="source")
    stream.stop()


def test_http_scrape(thread_pool: spead2.ThreadPool) -> None:
    registry = prometheus_client.CollectorRegistry()
    register_stream(received_stream(thread_pool, 2), "s", registry)
    server, thread = prometheus_client.start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
            body = response.read().decode()
        assert 'spead2_recv_heaps_total{stream="s"} 2.0' in body
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
