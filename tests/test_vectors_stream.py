"""The interop vectors through real streams: every heap, item and statistic as the reference.

The ``.bin`` forms go through ``add_buffer_reader`` (here), the ``.pcap`` forms through
``add_udp_pcap_file_reader`` (test_readers_pcap.py), both with the same checks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import vectors

import spead2
import spead2.recv
import spead2.recv.asyncio
from spead2._kernel import ffi, lib

AddReader = Callable[[Any, vectors.Scenario, str], None]


def bin_params() -> list[Any]:
    return [p for p in vectors.heap_params(kind=None) if p.values[1] in (None, "bin")]


def make_configs(scenario: vectors.Scenario) -> tuple[spead2.recv.StreamConfig, spead2.recv.RingStreamConfig]:
    return (
        spead2.recv.StreamConfig(**scenario.stream_config),
        spead2.recv.RingStreamConfig(**scenario.ring_config),
    )


def check_stream_results(scenario: vectors.Scenario, form: str, heaps: list[Any], stats: Any) -> None:
    expected_heaps = scenario.expected_heaps(form)
    item_group = spead2.ItemGroup()
    assert [h.cnt for h in heaps] == [h["cnt"] for h in expected_heaps]
    for heap, expected in zip(heaps, expected_heaps, strict=True):
        if expected["kind"] == "heap":
            outcome = vectors.update(item_group, heap, scenario.new_order)
            vectors.check_heap(expected, heap, item_group, outcome)
        else:
            vectors.check_heap(expected, heap)
    assert {name: stats[name] for name in scenario.expected_stats(form)} == dict(
        scenario.expected_stats(form)
    )


def split_packets(data: bytes) -> list[bytes]:
    """The packets of a well-formed .bin (framed by the kernel's own header decoder)."""
    info = ffi.new("sp2_packet_info *")
    packets = []
    pos = 0
    while pos < len(data):
        assert lib.sp2_decode_packet(ffi.from_buffer(data[pos:]), len(data) - pos, 0, info) == 0
        packets.append(data[pos : pos + info.size])
        pos += info.size
    return packets


def read_file(scenario: vectors.Scenario, form: str) -> bytes:
    return scenario.file(form).read_bytes()


def run_blocking(
    thread_pool: spead2.ThreadPool, scenario: vectors.Scenario, form: str, add: AddReader
) -> None:
    stream = spead2.recv.Stream(thread_pool, *make_configs(scenario))
    add(stream, scenario, form)
    heaps = list(stream)
    stream.stop()
    check_stream_results(scenario, form, heaps, stream.stats)


async def run_asyncio(scenario: vectors.Scenario, form: str, add: AddReader) -> None:
    stream = spead2.recv.asyncio.Stream(None, *make_configs(scenario))
    add(stream, scenario, form)
    heaps = [heap async for heap in stream]
    stream.stop()
    check_stream_results(scenario, form, heaps, stream.stats)


def add_buffer(stream: Any, scenario: vectors.Scenario, form: str) -> None:
    stream.add_buffer_reader(read_file(scenario, form))


@pytest.mark.parametrize(("scenario", "form"), bin_params())
def test_bin_blocking(thread_pool: spead2.ThreadPool, scenario: vectors.Scenario, form: str) -> None:
    run_blocking(thread_pool, scenario, form, add_buffer)


@pytest.mark.asyncio
@pytest.mark.parametrize(("scenario", "form"), bin_params())
async def test_bin_asyncio(scenario: vectors.Scenario, form: str) -> None:
    await run_asyncio(scenario, form, add_buffer)


@pytest.mark.parametrize(("scenario", "form"), bin_params())
def test_bin_inproc(thread_pool: spead2.ThreadPool, scenario: vectors.Scenario, form: str) -> None:
    """The .bin packets one by one through an InprocQueue behave as datagrams, which is what the
    .pcap form records (the buffer reader differs only where a packet cannot be decoded)."""
    pcap_form = "pcap" if "pcap" in scenario.forms else form
    if scenario.name.startswith("malformed_") or scenario.name == "inconsistent_heap_length":
        pytest.skip("malformed packets frame differently as datagrams (covered by the pcap form)")
    data = read_file(scenario, form)
    queue = spead2.InprocQueue()
    for packet in split_packets(data):
        queue.add_packet(packet)
    queue.stop()

    def add(stream: Any, scenario: vectors.Scenario, form: str) -> None:
        stream.add_inproc_reader(queue)

    run_blocking(thread_pool, scenario, pcap_form, add)
