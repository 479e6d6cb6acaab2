"""Log lines of dropped packets and heaps: the first occurrence of each condition logs the line
the reference (spead2 4.5.1) logs for it, at its level; repeats are only summarised.

The expected lines were recorded from the reference fed the same datagrams (its exact wording is
what users grep for); ``search_dist`` is checked against the reference's counts the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pytest
from kernel_harness import Kernel, packet, pointer

import spead2
import spead2.recv

REJECTED = "packet rejected because "
OUT_OF_ORDER = (
    REJECTED + "it is out-of-order in the heap "
    "(you might need to set allow_out_of_order to false in the stream config)"
)


def part(cnt: int, offset: int, length: int, heap_length: int | None, hab: int = 40) -> bytes:
    fields = [pointer(1, cnt, True, hab)]
    if heap_length is not None:
        fields.append(pointer(2, heap_length, True, hab))
    fields += [pointer(3, offset, True, hab), pointer(4, length, True, hab)]
    return packet(fields, bytes(length), hab)


def header(magic: int = 0x53, version: int = 4, id_bytes: int = 3, address_bytes: int = 5) -> bytes:
    return bytes([magic, version, id_bytes, address_bytes, 0, 0, 0, 1]) + pointer(1, 1, True).to_bytes(
        8, "big"
    )


@dataclass
class Case:
    packets: list[bytes]
    level: int
    line: str
    config: dict[str, bool] = field(default_factory=dict)


CASES = {
    "too_small": Case([b"\x53\x04\x03"], logging.INFO, REJECTED + "too small (3 bytes)"),
    "bad_magic": Case([header(magic=0x54)], logging.INFO, REJECTED + "magic or version did not match"),
    "bad_version": Case([header(version=3)], logging.INFO, REJECTED + "magic or version did not match"),
    "flavour_invalid": Case(
        [header(id_bytes=8, address_bytes=0)], logging.INFO, REJECTED + "flavour is invalid"
    ),
    "flavour_not_64": Case(
        [header(id_bytes=3, address_bytes=3)], logging.INFO, REJECTED + "flavour is not SPEAD-64-*"
    ),
    "items_overflow": Case(
        [packet([pointer(1, 1, True)], n_items=50)], logging.INFO, REJECTED + "the items overflow the packet"
    ),
    "missing": Case(
        [packet([pointer(1, 1, True), pointer(3, 0, True)])],
        logging.INFO,
        REJECTED + "it does not have required items",
    ),
    "payload_overflow": Case(
        [part(1, 0, 100, 100)[:-10]],
        logging.INFO,
        REJECTED + "payload length overflows packet size (140 > 130)",
    ),
    "size_mismatch": Case(
        [part(1, 0, 10, 10) + b"extra"], logging.INFO, "discarding packet due to size mismatch (50 != 55)"
    ),
    "beyond_heap": Case(
        [part(1, 0, 20, 10)], logging.INFO, REJECTED + "payload would overflow given heap length"
    ),
    "unsized": Case(
        [part(1, 0, 10, None)], logging.INFO, REJECTED + "it has no HEAP_LEN", {"allow_unsized_heaps": False}
    ),
    "inconsistent_length": Case(
        [part(1, 0, 10, 40), part(1, 10, 10, 50)],
        logging.INFO,
        REJECTED + "its HEAP_LEN is inconsistent with the heap",
    ),
    "flavour_inconsistent": Case(
        [part(1, 0, 16, 48), part(1, 16, 16, 48, hab=48)],
        logging.INFO,
        REJECTED + "its flavour is inconsistent with the heap",
    ),
    "out_of_order": Case([part(1, 0, 10, 40), part(1, 20, 10, 40)], logging.WARNING, OUT_OF_ORDER),
    "duplicate_in_order": Case([part(1, 0, 10, 40), part(1, 0, 10, 40)], logging.WARNING, OUT_OF_ORDER),
    "incomplete_heap": Case(
        [part(1, 0, 10, 40)], logging.WARNING, "dropped incomplete heap 1 (10/40 bytes of payload)"
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_first_occurrence_logs_the_reference_line(
    name: str, thread_pool: spead2.ThreadPool, caplog: pytest.LogCaptureFixture
) -> None:
    case = CASES[name]
    queue = spead2.InprocQueue()
    for p in case.packets * 3:  # the condition occurs three times
        queue.add_packet(p)
    queue.stop()
    stream = spead2.recv.Stream(thread_pool, spead2.recv.StreamConfig(**case.config))
    with caplog.at_level(logging.DEBUG, logger="spead2"):
        stream.add_inproc_reader(queue)
        list(stream)
        stream.stop()  # (waits for the loop thread, which logs as the stream ends)
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "spead2"]
    assert lines.count((case.level, case.line)) == 1, lines
    # the repeats are summarised
    assert any(m.startswith("dropped ") and "(s)" in m for _, m in lines), lines


def test_truncated_datagram_logs_the_reference_line(
    thread_pool: spead2.ThreadPool, caplog: pytest.LogCaptureFixture
) -> None:
    import socket

    stream = spead2.recv.Stream(thread_pool)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        with caplog.at_level(logging.INFO, logger="spead2"):
            stream.add_udp_reader(sock, max_size=100)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
                tx.sendto(part(1, 0, 200, 200), sock.getsockname())
                tx.sendto(part(2, 0, 0, 0) + b"", sock.getsockname())
                stop = packet(
                    [pointer(1, 3, True), pointer(3, 0, True), pointer(4, 0, True), pointer(6, 2, True)]
                )
                tx.sendto(stop, sock.getsockname())
            list(stream)
            stream.stop()
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "spead2"]
    assert (logging.INFO, "dropped packet due to truncation") in lines


@pytest.mark.parametrize(
    ("kept", "line"),
    [
        (130, REJECTED + "payload length overflows packet size (140 > 130)"),
        (40, REJECTED + "payload length overflows packet size (140 > 40)"),
        (20, REJECTED + "the items overflow the packet"),
        (5, REJECTED + "too small (5 bytes)"),
    ],
)
def test_buffer_ending_inside_a_packet_logs_the_reference_line(
    kept: int, line: str, thread_pool: spead2.ThreadPool, caplog: pytest.LogCaptureFixture
) -> None:
    # (lines recorded from the reference given the same buffers)
    data = part(1, 0, 10, 10) + part(2, 0, 100, 100)[:kept]
    stream = spead2.recv.Stream(thread_pool)
    with caplog.at_level(logging.INFO, logger="spead2"):
        stream.add_buffer_reader(data)
        cnts = [heap.cnt for heap in stream]
        stream.stop()
    assert cnts == [1]
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "spead2"]
    assert (logging.INFO, line) in lines, lines


# search_dist as the reference counts it: one per packet matched to the live heaps (recorded
# from spead2 4.5.1 with max_heaps=4 over a buffer reader)
SEARCH_DIST = {
    "one heap of 232 packets": ([part(1, i * 10, 10, 2320) for i in range(232)], 232),
    "interleaved 1,2,3": (
        [part(c, i * 10, 10, 100) for i in range(10) for c in (1, 2, 3)],
        30,
    ),
    "1,2,3 then 1": (
        [part(1, 0, 10, 100), part(2, 0, 10, 100), part(3, 0, 10, 100), part(1, 10, 10, 100)],
        4,
    ),
    "single-packet heaps": ([part(c, 0, 10, 10) for c in range(1, 6)], 0),
}


@pytest.mark.parametrize("name", list(SEARCH_DIST))
def test_search_dist_counts_as_the_reference(name: str) -> None:
    packets, expected = SEARCH_DIST[name]
    k = Kernel(ring_heaps=16)
    assert k.feed(b"".join(packets))[0] == 0
    k.stop()
    assert k.stats()["search_dist"] == expected
