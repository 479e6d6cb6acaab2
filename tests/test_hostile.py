"""Hostile input: whatever a sender writes, the receiver keeps its memory bounded, counts what it
drops, and goes on delivering the valid heaps around the hostile packets, on every reader.

Each case is a list of hostile packets sent between valid heaps (cnts 1-3 before, 4-6 after).
Every path (the kernel fed datagrams or a byte stream, and the public streams' readers) must
deliver the six valid heaps intact and count the drops the case expects.  Packets that cannot
even be decoded end a byte stream (as in the reference: the rest of a buffer or TCP connection
is unreadable), so those cases run on the datagram paths only.

The memory cases measure RSS: a claim may reserve address space but never makes the receiver
touch memory no packet has written.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from kernel_harness import Kernel, packet, pointer
from rawpackets import Encoder, Heap, Item

import spead2
import spead2.recv
import spead2.recv.asyncio
from spead2._drops import drop_reason_value
from spead2._kernel import lib

GiB = 1 << 30
MAX_ADDR = (1 << 40) - 1
ENC = Encoder(max_packet_size=1472)


def rss() -> int:
    """Resident set size of this process, in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def fields(cnt: int, length: int | None, offset: int, plen: int) -> list[int]:
    out = [pointer(1, cnt, True)]
    if length is not None:
        out.append(pointer(2, length, True))
    return [*out, pointer(3, offset, True), pointer(4, plen, True)]


def claim(
    cnt: int, length: int | None, offset: int = 0, plen: int = 64, extra: tuple[int, ...] = ()
) -> bytes:
    """A packet of heap cnt claiming HEAP_LENGTH `length` (None: unsized), with plen bytes at offset."""
    return packet(
        [*fields(cnt, length, offset, plen), *extra], bytes(range(256)) * (plen // 256) + bytes(plen % 256)
    )


def flavour_48(cnt: int, length: int, offset: int, plen: int, extra: tuple[int, ...] = ()) -> bytes:
    """A SPEAD-64-48 packet (claim() writes SPEAD-64-40)."""
    f = [
        pointer(1, cnt, True, 48),
        pointer(2, length, True, 48),
        pointer(3, offset, True, 48),
        pointer(4, plen, True, 48),
    ]
    return packet([*f, *extra], bytes(plen), 48)


def valid_heap(cnt: int) -> tuple[list[bytes], bytes]:
    """A valid heap of three packets, and its item's value."""
    value = random.Random(cnt).randbytes(3000)
    return ENC.packets(Heap(cnt, [Item(0x1000, value)])), value


# ---- the cases ------------------------------------------------------------------------------------


@dataclass
class Case:
    packets: list[bytes]
    drops: dict[str, int] = field(default_factory=dict)  # at least this many, by reason
    decodable: bool = True  # every packet decodes (so byte streams may carry them too)
    config: dict[str, Any] = field(default_factory=dict)  # StreamConfig keywords
    stats: dict[str, int] = field(default_factory=dict)  # at least this much


def nested_descriptors(depth: int) -> bytes:
    """A descriptor whose payload is a packet holding a descriptor, holding a descriptor..."""
    inner = ENC.descriptor(0x2000, "leaf", "innermost", (4,), dtype=np.dtype("u1"))
    for level in range(depth):
        hdr = [pointer(1, level + 2, True), pointer(2, len(inner), True), pointer(3, 0, True)]
        inner = packet([*hdr, pointer(4, len(inner), True), pointer(5, 0, False)], inner)
    return inner


def cases() -> dict[str, Case]:
    flood_rng = random.Random(7)
    many_pointers = [pointer(0x4000 + i, i, True) for i in range(8000)]
    c: dict[str, Case] = {
        "heap_length_2^40": Case([claim(100, MAX_ADDR)], {"heap_too_large": 1}),
        "heap_length_8GiB": Case([claim(100 + i, 8 * GiB) for i in range(8)], {"heap_too_large": 8}),
        "heap_length_just_over_limit": Case([claim(100, GiB + 1)], {"heap_too_large": 1}),
        "heap_length_at_limit": Case(
            [claim(100 + i, GiB) for i in range(16)], stats={"incomplete_heaps_evicted": 12}
        ),
        "offset_huge_sized": Case(
            [claim(100, 100, offset=MAX_ADDR - 64)], {"beyond_heap": 1}, decodable=False
        ),
        "offset_huge_unsized": Case([claim(100, None, offset=MAX_ADDR - 64)], {"heap_too_large": 1}),
        "offset_in_2^40_claim": Case(
            [claim(100, MAX_ADDR, offset=MAX_ADDR - 64)],
            {"heap_too_large": 1},
            config={"allow_out_of_order": True},
        ),
        "item_pointer_past_payload": Case(
            [claim(100 + i, 64, extra=(pointer(0x1000, MAX_ADDR, False),)) for i in range(6)],
            stats={"incomplete_heaps_evicted": 5, "incomplete_heaps_flushed": 1},
        ),
        "zero_length_heaps": Case(
            [claim(100 + i, 0, plen=0, extra=(pointer(0x1000, i, True),)) for i in range(5)]
        ),
        "zero_length_packets_in_a_heap": Case([claim(100, 128, offset=o, plen=0) for o in (0, 64, 128)]),
        "max_length_packet": Case(
            [claim(100, 65000, plen=65000 - 40)[:-24]], {"size_mismatch": 1}, decodable=False
        ),
        "big_packet": Case([claim(100, 60000, plen=60000)]),
        "item_count_past_packet": Case(
            [packet(fields(100, 64, 0, 64), bytes(64), n_items=0xFFFF)], {"too_short": 1}, decodable=False
        ),
        "empty_datagram": Case([b""], {"too_short": 1}, decodable=False),
        "header_only": Case([packet([])], {"missing_field": 1}, decodable=False),
        "bad_magic": Case([b"\x00" * 64], {"bad_magic": 1}, decodable=False),
        "many_item_pointers": Case([packet([*fields(100, 8, 0, 8), *many_pointers], bytes(8))]),
        "too_many_item_pointers": Case(
            [
                packet(
                    [
                        *fields(100, 8 * 40, 8 * i, 8),
                        *[pointer(0x10000 + 8000 * i + j, j, True) for j in range(8000)],
                    ],
                    bytes(8),
                )
                for i in range(40)
            ],
            {"too_complex": 1},
        ),
        "inconsistent_heap_length": Case(
            [claim(100, 128), claim(100, 256, offset=64)], {"inconsistent_length": 1}
        ),
        "mixed_flavours_in_one_heap": Case(
            [claim(100, 128), flavour_48(100, 128, 64, 64, extra=(pointer(0x1000, 1 << 47, False, 48),))],
            {"bad_flavour": 1},
        ),
        "duplicates": Case([claim(100, 128)] * 50, {"duplicate": 49}),
        "nested_descriptors": Case(ENC.packets(Heap(100, [], descriptors=[nested_descriptors(200)]))),
        "cnt_flood": Case(
            [
                claim(flood_rng.randrange(1 << 40), GiB, offset=64 * flood_rng.randrange(1 << 20))
                for _ in range(3000)
            ],
            config={"allow_out_of_order": True},
            stats={"incomplete_heaps_evicted": 2990},
        ),
    }
    return c


CASES = cases()


# ---- the paths ------------------------------------------------------------------------------------


def stream_configs(case: Case) -> tuple[spead2.recv.StreamConfig, spead2.recv.RingStreamConfig]:
    return spead2.recv.StreamConfig(**case.config), spead2.recv.RingStreamConfig(heaps=16)


def sandwich(case: Case) -> tuple[list[bytes], dict[int, bytes]]:
    packets, values = [], {}
    for cnt in (1, 2, 3):
        ps, values[cnt] = valid_heap(cnt)
        packets += ps
    packets += case.packets
    for cnt in (4, 5, 6):
        ps, values[cnt] = valid_heap(cnt)
        packets += ps
    return packets, values


def via_kernel(
    case: Case, packets: list[bytes], as_bytes: bool
) -> tuple[list[Any], dict[str, int], dict[str, int]]:
    k = Kernel(
        max_heaps=4,
        ring_heaps=1 << 14,
        allow_out_of_order=case.config.get("allow_out_of_order", False),
        max_heap_size=case.config.get("max_heap_size", GiB),
    )
    heaps: list[Any] = []
    if as_bytes:
        status, consumed = k.feed(b"".join(packets))
        if case.decodable:
            assert (status, consumed) == (0, sum(map(len, packets)))
    else:
        for p in packets:
            assert k.datagram(p) == 0
            heaps += k.heaps()  # a consumer keeping up
    k.stop()
    heaps += k.heaps()
    stats = k.stats()
    return heaps, stats, k.drops()


def via_stream(case: Case, packets: list[bytes], reader: str) -> tuple[list[Any], Any, dict[str, int]]:
    with spead2.ThreadPool() as pool:
        stream = spead2.recv.Stream(pool, *stream_configs(case))
        if reader == "buffer":
            stream.add_buffer_reader(b"".join(packets))
        else:
            queue = spead2.InprocQueue()
            for p in packets:
                queue.add_packet(p)
            queue.stop()
            stream.add_inproc_reader(queue)
        heaps = list(stream)
        stream.stop()
        return heaps, stream.stats, stream.stats.drops


def via_asyncio(case: Case, packets: list[bytes], reader: str) -> tuple[list[Any], Any, dict[str, int]]:
    async def run() -> tuple[list[Any], Any, dict[str, int]]:
        stream = spead2.recv.asyncio.Stream(None, *stream_configs(case))
        if reader == "buffer":
            stream.add_buffer_reader(b"".join(packets))
        else:
            queue = spead2.InprocQueue()
            for p in packets:
                queue.add_packet(p)
            queue.stop()
            stream.add_inproc_reader(queue)
        heaps = [h async for h in stream]
        stream.stop()
        return heaps, stream.stats, stream.stats.drops

    return asyncio.run(run())


# ---- the network and file readers ----------------------------------------------------------------

HAS_UDP = hasattr(spead2.recv.Stream, "add_udp_reader")
HAS_TCP = hasattr(spead2.recv.Stream, "add_tcp_reader")
HAS_PCAP = hasattr(spead2.recv.Stream, "add_udp_pcap_file_reader")
STOP = ENC.stop_packets(1 << 30)


def decoded(stats: Any) -> int:
    """Packets the stream has looked at so far (decoded, or dropped undecoded)."""
    return int(stats["packets"]) + sum(stats.drops[r] for r in UNDECODED)


#: Drop reasons of packets that are not counted in "packets" (see sp2_drop_reason).
UNDECODED = [
    r
    for r in spead2.recv.DROP_REASONS
    if drop_reason_value(r) <= lib.SP2_DROP_TOO_LARGE and r != "beyond_heap"
]


def via_udp(case: Case, packets: list[bytes]) -> tuple[list[Any], Any, dict[str, int]]:
    """Datagrams over loopback, paced so that the socket buffer never overflows (the test is
    about what the receiver does with what arrives, not about UDP loss)."""
    with spead2.ThreadPool() as pool:
        stream = spead2.recv.Stream(pool, *stream_configs(case))
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        stream.add_udp_reader(sock, max_size=65536)
        addr = sock.getsockname()
        sock.close()
        heaps: list[Any] = []
        consumer = threading.Thread(target=lambda: heaps.extend(stream))
        consumer.start()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            backlog = 0
            for i, p in enumerate([*packets, *STOP]):
                tx.sendto(p, addr)
                backlog += len(p) + 1024  # what the datagram costs in the socket buffer, roughly
                if backlog > 64 << 10:
                    deadline = time.monotonic() + 10
                    while decoded(stream.stats) < i + 1 and time.monotonic() < deadline:
                        time.sleep(0.0005)
                    backlog = 0
        consumer.join(30)
        assert not consumer.is_alive()
        stream.stop()
        return heaps, stream.stats, stream.stats.drops


def via_tcp(case: Case, packets: list[bytes]) -> tuple[list[Any], Any, dict[str, int]]:
    with spead2.ThreadPool() as pool:
        stream = spead2.recv.Stream(pool, *stream_configs(case))
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        stream.add_tcp_reader(listener, max_size=1 << 20)
        addr = listener.getsockname()
        listener.close()
        with socket.create_connection(addr) as tx:
            tx.sendall(b"".join(packets))
        heaps = list(stream)
        stream.stop()
        return heaps, stream.stats, stream.stats.drops


def write_pcap(path: Any, packets: list[bytes]) -> None:
    """Classic pcap, Ethernet / IPv4 / UDP frames 127.0.0.1:40000 -> 127.0.0.1:8888."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535 + 64, 1))
        for i, p in enumerate(packets):
            udp = struct.pack(">HHHH", 40000, 8888, 8 + len(p), 0) + p
            ip = struct.pack(
                ">BBHHHBBH4s4s",
                0x45,
                0,
                20 + len(udp),
                i & 0xFFFF,
                0x4000,
                64,
                17,
                0,
                b"\x7f\0\0\x01",
                b"\x7f\0\0\x01",
            )
            checksum = sum(struct.unpack(">10H", ip))
            checksum = (checksum & 0xFFFF) + (checksum >> 16)
            checksum = ~((checksum & 0xFFFF) + (checksum >> 16)) & 0xFFFF
            ip = ip[:10] + struct.pack(">H", checksum) + ip[12:]
            frame = bytes(12) + b"\x08\x00" + ip + udp
            f.write(struct.pack("<IIII", i, 0, len(frame), len(frame)) + frame)


def via_pcap(case: Case, packets: list[bytes], tmp: Any) -> tuple[list[Any], Any, dict[str, int]]:
    path = tmp / "hostile.pcap"
    write_pcap(path, packets)
    with spead2.ThreadPool() as pool:
        stream = spead2.recv.Stream(pool, *stream_configs(case))
        stream.add_udp_pcap_file_reader(str(path))
        heaps = list(stream)
        stream.stop()
        return heaps, stream.stats, stream.stats.drops


PATHS: dict[str, Callable[[Case, list[bytes]], tuple[list[Any], Any, dict[str, int]]]] = {
    "kernel-datagrams": lambda c, p: via_kernel(c, p, as_bytes=False),
    "kernel-bytes": lambda c, p: via_kernel(c, p, as_bytes=True),
    "inproc": lambda c, p: via_stream(c, p, "inproc"),
    "buffer": lambda c, p: via_stream(c, p, "buffer"),
    "asyncio-inproc": lambda c, p: via_asyncio(c, p, "inproc"),
    "asyncio-buffer": lambda c, p: via_asyncio(c, p, "buffer"),
}
BYTE_PATHS = {"kernel-bytes", "buffer", "asyncio-buffer", "tcp"}
#: Readers of the other engineer's (network, pcap): tested when present.
NET_PATHS = {"udp": HAS_UDP, "tcp": HAS_TCP, "pcap": HAS_PCAP}
#: UDP and pcap carry at most 65507 bytes in a datagram.
UDP_MAX = 65507


def check(case: Case, heaps: list[Any], stats: Any, drops: dict[str, int], values: dict[int, bytes]) -> None:
    delivered = {h.cnt: h for h in heaps if isinstance(h, spead2.recv.Heap) and h.cnt in values}
    assert sorted(delivered) == sorted(values), "every valid heap around the hostile packets is delivered"
    for cnt, heap in delivered.items():
        items = {it.id: bytes(it) for it in heap.get_items()}
        assert items == {0x1000: values[cnt]}
    for reason, n in case.drops.items():
        assert drops.get(reason, 0) >= n, (reason, drops)
    for name, n in case.stats.items():
        assert stats[name] >= n, (name, stats[name])


@pytest.mark.parametrize("path", [*PATHS, *NET_PATHS])
@pytest.mark.parametrize("name", list(CASES))
def test_hostile(name: str, path: str, tmp_path: Any) -> None:
    case = CASES[name]
    if path in BYTE_PATHS and not case.decodable:
        pytest.skip("an undecodable packet ends a byte stream (checked in test_undecodable_in_a_byte_stream)")
    if path in NET_PATHS and not NET_PATHS[path]:
        pytest.skip(f"this build has no {path} reader")
    packets, values = sandwich(case)
    if path in ("udp", "pcap") and max(map(len, packets)) > UDP_MAX:
        pytest.skip("a UDP datagram holds at most 65507 bytes")
    heaps, stats, drops = run_path(path, case, packets, tmp_path)
    check(case, heaps, stats, drops, values)


def run_path(
    path: str, case: Case, packets: list[bytes], tmp_path: Any
) -> tuple[list[Any], Any, dict[str, int]]:
    if path == "udp":
        return via_udp(case, packets)
    if path == "tcp":
        return via_tcp(case, packets)
    if path == "pcap":
        return via_pcap(case, packets, tmp_path)
    return PATHS[path](case, packets)


@pytest.mark.parametrize("path", sorted(BYTE_PATHS))
def test_undecodable_in_a_byte_stream(path: str, tmp_path: Any) -> None:
    """In a buffer an undecodable packet ends the input: the heaps before it are delivered, the
    drop is counted, and the stream stops cleanly.  A TCP reader skips it as the reference does
    (8 bytes at a time, each counted) and goes on."""
    if path in NET_PATHS and not NET_PATHS[path]:
        pytest.skip(f"this build has no {path} reader")
    case = Case([b"\x00" * 64], decodable=False)
    packets, _values = sandwich(case)
    heaps, _stats, drops = run_path(path, case, packets, tmp_path)
    if path == "tcp":
        assert sorted(h.cnt for h in heaps) == [1, 2, 3, 4, 5, 6]
        assert drops["bad_magic"] == 8
        return
    assert sorted(h.cnt for h in heaps) == [1, 2, 3]
    if path == "kernel-bytes":
        return  # the kernel reports BAD_PACKET to its reader, which counts nothing more
    assert drops["bad_magic"] == 1


def test_nested_descriptors_do_not_recurse() -> None:
    """A descriptor inside a descriptor (200 deep) is skipped, not followed."""
    k = Kernel()
    for p in ENC.packets(
        Heap(
            7,
            [],
            descriptors=[
                nested_descriptors(200),
                ENC.descriptor(0x1001, "x", "", (2,), dtype=np.dtype("u1")),
            ],
        )
    ):
        k.datagram(p)
    k.stop()
    (heap,) = k.heaps()
    group = spead2.ItemGroup()
    assert isinstance(heap, spead2.recv.Heap)
    group.update(heap)
    assert "x" in group


# ---- memory ----------------------------------------------------------------------------------------


def flood(k: Kernel, n: int, length: int | None, rng: random.Random, spread: int) -> None:
    for _ in range(n):
        offset = 64 * rng.randrange(spread)
        assert k.datagram(claim(rng.randrange(1 << 40), length, offset)) == 0
        k.heaps()


@pytest.mark.parametrize("allocator", ["malloc", "mmap", "pool"])
def test_claims_do_not_touch_memory(allocator: str) -> None:
    """Thousands of heaps each claiming 1 GiB (out of order, 64 bytes at a random offset each):
    RSS grows by the pages written, not by the claims."""
    alloc = {
        "malloc": None,
        "mmap": spead2.MmapAllocator(),
        "pool": spead2.MemoryPool(1 << 20, 16 << 20, 4, 2),
    }[allocator]
    gc.collect()
    before = rss()
    k = Kernel(allocator=alloc, allow_out_of_order=True, max_heaps=8)
    flood(k, 4000, GiB, random.Random(1), (GiB - 64) // 64)
    grown = rss() - before
    stats = k.stats()
    assert stats["incomplete_heaps_evicted"] == 4000 - 8
    assert grown < 64 << 20, f"RSS grew by {grown >> 20} MiB for {4000} claims of 1 GiB"


def test_claims_above_limit_reserve_nothing() -> None:
    """With max_heap_size raised to 16 GiB, claims of 8 GiB are accepted: still no memory is
    touched.  Claims past what the machine can reserve fail allocation: counted, no hang."""
    gc.collect()
    before = rss()
    k = Kernel(allow_out_of_order=True, max_heaps=4, max_heap_size=1 << 41)
    flood(k, 200, 8 * GiB, random.Random(2), (8 * GiB - 64) // 64)
    for i in range(8):
        assert k.datagram(claim(1000 + i, MAX_ADDR, MAX_ADDR // 2)) == 0
    for cnt in (1, 2):
        for p in valid_heap(cnt)[0]:
            assert k.datagram(p) == 0
    k.stop()
    heaps = k.heaps()
    assert {1, 2} <= {h.cnt for h in heaps if isinstance(h, spead2.recv.Heap)}
    assert rss() - before < 64 << 20


def test_unsized_growth_is_bounded() -> None:
    """Unsized heaps grow with the data that arrives, up to max_heap_size: a packet far out is
    dropped, and growing copies only what was written."""
    k = Kernel(max_heap_size=1 << 20)
    before = rss()
    for i in range(200):
        assert k.datagram(claim(5, None, offset=1024 * i, plen=1024)) == 0
    assert k.datagram(claim(5, None, offset=(1 << 20) - 512, plen=1024)) == 0
    assert k.drops() == {"heap_too_large": 1}
    k.stop()
    (heap,) = k.heaps()
    assert isinstance(heap, spead2.recv.Heap) and heap.cnt == 5
    assert rss() - before < 16 << 20


@pytest.mark.parametrize("size", [64 << 10, 1 << 20, 16 << 20, GiB], ids=lambda s: f"{s >> 10}KiB")
def test_flood_rss_is_bounded(size: int) -> None:
    """A long flood of one-packet heaps with random cnts, each claiming `size` bytes and writing 64
    at a random offset.  Claims are never touched, so RSS is bounded by the pages packets wrote into
    buffers still in use: the live heaps, plus what the allocator keeps for reuse (the default
    allocator recycles buffers up to 64 MiB in all, glibc caches freed ones below 32 MiB)."""
    max_heaps = 4
    k = Kernel(allow_out_of_order=True, max_heaps=max_heaps)
    rng = random.Random(3)
    samples = []
    gc.collect()
    before = rss()
    for _ in range(5):
        flood(k, 4000, size, rng, size // 64 - 1)
        samples.append(rss() - before)
    bound = (16 << 20) if size > (32 << 20) else (max_heaps + 1) * size + (64 << 20) + (16 << 20)
    assert max(samples) < bound, [s >> 20 for s in samples]
    assert k.stats()["incomplete_heaps_evicted"] == 20000 - max_heaps


# ---- packets that claim more than arrives ---------------------------------------------------------


def test_kernel_bytes_huge_packet_claim() -> None:
    """A byte-stream packet whose header claims a 2^39-byte payload: with a max packet size the
    kernel says BAD_PACKET as soon as the header is there, instead of waiting for more."""
    head = packet(fields(9, None, 0, 1 << 39), b"")
    k = Kernel()
    status, consumed = k.feed(head[:20], max_packet=65536)
    assert (status, consumed) == (4, 0)  # partial: the header is not complete yet
    status, consumed = k.feed(head + bytes(1000), max_packet=65536)
    assert (status, consumed) == (3, 0)  # bad packet: the connection ends
    assert k.drops() == {"too_large": 1}


def test_tcp_huge_packet_claim() -> None:
    """The same over TCP: valid heaps, then a header claiming 2^39 bytes, then more data.  The
    heaps before it are delivered; as the reference, the reader skips what the header claims
    (discarding it as it comes, in a buffer that does not grow) until the connection ends."""
    if not HAS_TCP:
        pytest.skip("this build has no tcp reader")
    before = [p for cnt in (1, 2, 3) for p in valid_heap(cnt)[0]]
    after = [p for cnt in (4, 5, 6) for p in valid_heap(cnt)[0]]
    with spead2.ThreadPool() as pool:
        stream = spead2.recv.Stream(pool)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        stream.add_tcp_reader(listener, max_size=65536)
        addr = listener.getsockname()
        listener.close()
        with socket.create_connection(addr) as tx:
            tx.sendall(b"".join(before) + packet(fields(9, None, 0, 1 << 39), b""))
            for _ in range(100):
                tx.sendall(b"".join(after))
        heaps = list(stream)  # ends when the sender closes
        stream.stop()
    assert [h.cnt for h in heaps] == [1, 2, 3]
    assert stream.stats.drops["too_large"] == 1


@pytest.mark.parametrize("field", ["max_heap_pointers", "max_heap_ranges"])
def test_kernel_refuses_absurd_limits(field: str) -> None:
    """Limits past 2^28 would overflow the 32-bit growth of the pointer and range arrays."""
    with pytest.raises(ValueError):
        Kernel(**{field: 1 << 31})
    Kernel(**{field: 1 << 28})
