"""Landing (udp.c): a UDP reader receives the payloads that continue a heap in order straight
into the heap.  Over real loopback sockets, every sequence of datagrams must give what the same
datagrams give with landing off: the same heaps, the same bytes, the same statistics."""

from __future__ import annotations

import os
import random
import socket
import sys
import threading
import time
from typing import Any

import numpy as np
import pytest
from chunk_support import compile_place
from rawpackets import Encoder, Heap, Item
from spead2._native_kernel import lib

import spead2
import spead2.recv
import spead2.recv.asyncio
from spead2.recv._readers import udp

pytestmark = pytest.mark.skipif(
    not (sys.platform.startswith("linux") and udp.USE_NATIVE), reason="landing needs Linux's recvmmsg"
)

ITEM = 0x1000
MAX_SIZE = 9200
Received = list[tuple[int, list[tuple[int, bytes]]]]


def heaps_of(sizes: list[int], seed: int) -> list[Heap]:
    rng = random.Random(seed)
    return [Heap(cnt, [Item(ITEM, rng.randbytes(size))]) for cnt, size in enumerate(sizes, 1)]


def filled_socket(datagrams: list[bytes]) -> socket.socket:
    """A bound socket already holding the datagrams (so the reader's batches are the same each run)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", 0))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        for datagram in datagrams:
            out.sendto(datagram, sock.getsockname())
    return sock


def native_reader(stream: Any) -> Any:
    """The stream's C UDP reader (kept alive by the caller, to count its landings after the stop)."""
    assert len(stream._core.readers) == 1
    return native_reader_at(stream, 0)


def native_reader_at(stream: Any, index: int) -> Any:
    reader = stream._core.readers[index]
    assert isinstance(reader, udp.UdpReader)
    return reader._native


def comparable(stats: Any) -> dict[str, int]:
    """The statistics that say what arrived.  (How the datagrams were batched is the reader's
    business: landing may read a batch short, to land the next heap's payloads; and whether the
    reader had to wait for the consumer is a matter of timing.)"""
    return {
        name: value for name, value in stats.items() if name not in ("batches", "max_batch", "worker_blocked")
    }


def contents(heap: Any) -> tuple[int, list[tuple[int, bytes]]]:
    return heap.cnt, [(item.id, bytes(memoryview(item))) for item in heap.get_items()]


def receive(
    thread_pool: spead2.ThreadPool, monkeypatch: pytest.MonkeyPatch, datagrams: list[bytes], landing: bool
) -> tuple[Received, dict[str, int], int]:
    """What a blocking stream delivers from the datagrams (and a stop), its statistics, and the
    number of payloads that landed."""
    monkeypatch.setattr(udp, "LANDING", landing)
    sock = filled_socket([*datagrams, *Encoder(max_packet_size=1472).stop_packets(1 << 30)])
    stream = spead2.recv.Stream(thread_pool, spead2.recv.StreamConfig(max_heaps=4, explicit_start=True))
    stream.add_udp_reader(sock, max_size=MAX_SIZE)
    native = native_reader(stream)
    stream.start()
    got = [contents(heap) for heap in stream]
    stream.stop()
    sock.close()
    return got, comparable(stream.stats), int(lib.sp2_udp_reader_landed(native))


def expected(heaps: list[Heap]) -> Received:
    return [(h.cnt, [(ITEM, bytes(h.items[0].value))]) for h in heaps]


@pytest.mark.parametrize(
    ("packet_size", "sizes"), [(1472, [100_000] * 6), (9000, [300_000, 70_001, 8960, 250_000])]
)
def test_in_order_heaps_land(
    thread_pool: spead2.ThreadPool, monkeypatch: pytest.MonkeyPatch, packet_size: int, sizes: list[int]
) -> None:
    heaps = heaps_of(sizes, seed=packet_size)
    datagrams = Encoder(max_packet_size=packet_size).stream_packets(heaps)
    got, stats, landed = receive(thread_pool, monkeypatch, datagrams, landing=True)
    assert got == expected(heaps)
    # (a heap's first packet never lands, nor do those after it in the same batch)
    assert 0 < landed <= len(datagrams) - len(heaps)
    off, off_stats, off_landed = receive(thread_pool, monkeypatch, datagrams, landing=False)
    assert (off, off_stats, off_landed) == (got, stats, 0)


def test_each_large_heap_lands_after_a_pause(
    thread_pool: spead2.ThreadPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """64 KiB heaps in 9000 B datagrams (8 a heap), each sent once the one before is received, so
    the socket is empty at every heap's end: the reader reads each heap's first datagram alone (a
    full batch would copy the datagrams of the heap already in), then lands the rest of the heap."""
    monkeypatch.setattr(udp, "LANDING", True)
    heaps = heaps_of([65536] * 6, seed=64)
    encoder = Encoder(max_packet_size=9000)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    stream = spead2.recv.Stream(thread_pool, spead2.recv.StreamConfig(max_heaps=4))
    stream.add_udp_reader(sock, max_size=MAX_SIZE)
    native = native_reader(stream)
    got = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        for heap in heaps:
            datagrams = encoder.packets(heap)
            for datagram in datagrams:
                out.sendto(datagram, sock.getsockname())
            got.append(contents(stream.get()))
    stream.stop()
    sock.close()
    assert got == expected(heaps)
    # every heap's but the first: its first datagram is copied, the other 7 land
    assert len(datagrams) == 8
    assert int(lib.sp2_udp_reader_landed(native)) >= 7 * (len(heaps) - 1)


def receive_on_one_cpu(datagrams: list[bytes], ring_heaps: int) -> tuple[Received, int]:
    """What a blocking stream delivers from the datagrams (and a stop), its loop thread and its
    consumer pinned to one CPU, and the stream's worker_blocked."""
    got: list[tuple[Received, int]] = []

    def body() -> None:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        thread_pool = spead2.ThreadPool()  # (its loop thread inherits the pinning)
        sock = filled_socket([*datagrams, *Encoder(max_packet_size=1472).stop_packets(1 << 30)])
        stream = spead2.recv.Stream(
            thread_pool,
            spead2.recv.StreamConfig(max_heaps=4, explicit_start=True),
            spead2.recv.RingStreamConfig(heaps=ring_heaps),
        )
        stream.add_udp_reader(sock, max_size=MAX_SIZE)
        stream.start()
        got.append(([contents(heap) for heap in stream], stream.stats["worker_blocked"]))
        stream.stop()
        sock.close()
        thread_pool.stop()

    thread = threading.Thread(target=body)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert len(got) == 1
    return got[0]


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity")
def test_one_cpu_small_ring() -> None:
    # Where the loop thread shares the consumer's one CPU, it keeps the consumer's wake-ups until
    # it sleeps (sp2_ring_hold), and a small ring fills and pauses it over and over: every heap
    # must still come, whole and in order.
    heaps = heaps_of([5000] * 300, seed=7)
    got, _ = receive_on_one_cpu(Encoder(max_packet_size=1472).stream_packets(heaps), ring_heaps=2)
    assert got == expected(heaps)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity")
def test_one_cpu_reader_does_not_wait_at_each_batch_end() -> None:
    # On the consumer's one CPU the consumer cannot run before the loop thread sleeps, so a reader
    # past a full ring goes on to the end of its wake-up (here two batches of datagrams, 40 heaps
    # into a ring of 8) rather than wait for the consumer at the end of the first batch.
    heaps = heaps_of([2000] * 40, seed=8)
    datagrams = Encoder(max_packet_size=1472).stream_packets(heaps)
    assert 64 < len(datagrams) <= 128  # (a batch is 64 datagrams)
    assert receive_on_one_cpu(datagrams, ring_heaps=8) == (expected(heaps), 0)


def perturbed(datagrams: list[bytes], rng: random.Random, foreign_cnt: int = 999) -> list[bytes]:
    """The datagrams with what a network or a hostile sender may do to them."""
    out = list(datagrams)
    foreign = Encoder(max_packet_size=1472).packets(Heap(foreign_cnt, [Item(ITEM, rng.randbytes(20_000))]))
    other = Encoder(max_packet_size=1472).packets(
        Heap(2, [Item(ITEM, rng.randbytes(30_000))]), repeat_pointers=True
    )
    for _ in range(12):
        i = rng.randrange(1, len(out) - 1)
        action = rng.randrange(7)
        if action == 0:  # swap neighbours
            out[i], out[i + 1] = out[i + 1], out[i]
        elif action == 1:  # duplicate
            out.insert(i, out[rng.randrange(len(out))])
        elif action == 2:  # lose
            del out[i]
        elif action == 3:  # another heap's packets in between
            out[i:i] = foreign[:3]
        elif action == 4:  # garbage and an oversized datagram
            out[i:i] = [rng.randbytes(rng.randrange(1, 100)), rng.randbytes(MAX_SIZE + 10)]
        elif action == 5:  # the same offsets under another header size (a heap resent with every pointer)
            out[i:i] = other[1:4]
        else:  # the header of the next packet with a payload of another length
            head, body = out[i][:48], out[i][48:]
            out[i] = head + body[: len(body) // 2]
    return out


def test_perturbed_traffic_same_as_without_landing(
    thread_pool: spead2.ThreadPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    landed_per_seed = []
    for seed in range(10):
        rng = random.Random(seed)
        heaps = heaps_of([rng.randrange(20_000, 200_000) for _ in range(5)], seed)
        datagrams = perturbed(Encoder(max_packet_size=1472).stream_packets(heaps), rng)
        got, stats, landed = receive(thread_pool, monkeypatch, datagrams, landing=True)
        assert receive(thread_pool, monkeypatch, datagrams, landing=False) == (got, stats, 0), seed
        # what the perturbations left whole still arrives whole, byte for byte
        whole = dict(expected(heaps))
        assert all(items == whole[cnt] for cnt, items in got if cnt in whole)
        landed_per_seed.append(landed)
    # (a perturbation early in a heap leaves nothing to predict until the next one)
    assert sum(n > 0 for n in landed_per_seed) >= 5, landed_per_seed


def test_interleaved_heaps_at_the_predicted_offsets(
    thread_pool: spead2.ThreadPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two heaps of one layout, interleaved: the next datagram has the offset and length predicted
    for the other heap, and must not be taken as its payload (nor land in the other heap)."""
    encoder = Encoder(max_packet_size=1472)
    # the first batch's rest: a heap of many packets (that sets the sizes to predict), then small ones
    fillers = encoder.stream_packets(heaps_of([85_000, *[100] * 62], seed=1))[: udp.N_SLOTS - 2]
    pair = heaps_of([40_000, 40_000], seed=2)
    first, second = (encoder.packets(Heap(cnt, h.items)) for cnt, h in zip((500, 501), pair, strict=True))
    datagrams = fillers + [d for two in zip(first, second, strict=True) for d in two]
    got, stats, _ = receive(thread_pool, monkeypatch, datagrams, landing=True)
    assert got[-2:] == [
        (500, [(ITEM, bytes(pair[0].items[0].value))]),
        (501, [(ITEM, bytes(pair[1].items[0].value))]),
    ]
    assert receive(thread_pool, monkeypatch, datagrams, landing=False)[:2] == (got, stats)


def test_two_readers_of_one_stream(thread_pool: spead2.ThreadPool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two sockets of one stream, each with heaps of its own, and a small ring, so that readers
    pause with landed payloads not fed yet while the other reads: each heap arrives whole."""
    heaps = heaps_of([200_000, 150_000, 300_000, 90_000, 120_000, 250_000, 80_000, 170_000], seed=11)
    encoder = Encoder(max_packet_size=9000)
    halves = [encoder.stream_packets(heaps[:4]), encoder.stream_packets(heaps[4:])]

    def run(landing: bool) -> tuple[Received, int]:
        monkeypatch.setattr(udp, "LANDING", landing)
        socks = [filled_socket(half) for half in halves]
        config = spead2.recv.StreamConfig(max_heaps=4, explicit_start=True)
        stream = spead2.recv.Stream(thread_pool, config, spead2.recv.RingStreamConfig(heaps=2))
        for sock in socks:
            stream.add_udp_reader(sock, max_size=MAX_SIZE)
        natives = [native_reader_at(stream, i) for i in range(2)]
        stream.start()
        got = []
        for heap in stream:
            got.append(contents(heap))
            if len(got) == len(heaps):
                break
        stream.stop()
        for sock in socks:
            sock.close()
        return sorted(got), sum(int(lib.sp2_udp_reader_landed(native)) for native in natives)

    got, landed = run(True)
    assert got == sorted(expected(heaps))
    assert landed > 0
    assert run(False) == (got, 0)


@pytest.mark.asyncio
async def test_asyncio_stream_lands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(udp, "LANDING", True)
    heaps = heaps_of([500_000, 123_457], seed=3)
    sock = filled_socket(Encoder(max_packet_size=9000).stream_packets(heaps) + Encoder().stop_packets(9))
    stream = spead2.recv.asyncio.Stream(config=spead2.recv.StreamConfig(explicit_start=True))
    stream.add_udp_reader(sock, max_size=MAX_SIZE)
    native = native_reader(stream)
    stream.start()
    got = [contents(heap) async for heap in stream]
    stream.stop()
    sock.close()
    assert got == expected(heaps)
    assert lib.sp2_udp_reader_landed(native) > 0


# ---- chunk streams ----

CHUNK_HEAPS = 4
CHUNK_HEAP_SIZE = 40_000
N_CHUNKS = 4
Chunks = list[tuple[int, list[int], bytes]]


@pytest.fixture(scope="module")
def c_place(tmp_path_factory: pytest.TempPathFactory) -> Any:
    module = compile_place(tmp_path_factory.mktemp("landing_place"), CHUNK_HEAPS, CHUNK_HEAP_SIZE)
    return module.ffi.addressof(module.lib, "place")


def receive_chunks(
    thread_pool: spead2.ThreadPool,
    monkeypatch: pytest.MonkeyPatch,
    place: Any,
    datagrams: list[bytes],
    landing: bool,
) -> tuple[Chunks, dict[str, int], int]:
    """What a chunk stream (chunk c // 4 gets heap c at (c % 4) * 40000) makes of the datagrams
    and a stop, its statistics, and the number of payloads that landed."""
    monkeypatch.setattr(udp, "LANDING", landing)
    sock = filled_socket([*datagrams, *Encoder(max_packet_size=1472).stop_packets(1 << 30)])
    stream = chunk_stream(thread_pool, place, sock)
    native = native_reader(stream)
    stream.start()
    got = chunks_of(stream)
    stream.stop()
    sock.close()
    return got, comparable(stream.stats), int(lib.sp2_udp_reader_landed(native))


def chunk_stream(thread_pool: spead2.ThreadPool, place: Any, sock: socket.socket) -> Any:
    """A chunk stream (explicit start) reading sock, with its free chunks."""
    ring = N_CHUNKS + 2
    stream = spead2.recv.ChunkRingStream(
        thread_pool,
        spead2.recv.StreamConfig(max_heaps=4, explicit_start=True),
        spead2.recv.ChunkStreamConfig(items=[spead2.HEAP_CNT_ID], max_chunks=2, place=place),
        spead2.recv.ChunkRingbuffer(ring),
        spead2.recv.ChunkRingbuffer(ring),
    )
    for _ in range(ring):
        stream.add_free_chunk(
            spead2.recv.Chunk(
                present=np.zeros(CHUNK_HEAPS, np.uint8),
                data=np.zeros(CHUNK_HEAPS * CHUNK_HEAP_SIZE, np.uint8),
            )
        )
    stream.add_udp_reader(sock, max_size=MAX_SIZE)
    return stream


def chunks_of(stream: Any) -> Chunks:
    return [
        (c.chunk_id, list(np.asarray(c.present)), bytes(np.asarray(c.data))) for c in stream.data_ringbuffer
    ]


def present_only(chunks: Chunks) -> Chunks:
    """The chunks with the places of absent heaps blanked."""
    size = CHUNK_HEAP_SIZE
    return [
        (
            cid,
            present,
            b"".join(data[i * size : (i + 1) * size] if p else b"-" for i, p in enumerate(present)),
        )
        for cid, present, data in chunks
    ]


def test_chunk_stream_lands(
    thread_pool: spead2.ThreadPool, monkeypatch: pytest.MonkeyPatch, c_place: Any
) -> None:
    heaps = heaps_of([CHUNK_HEAP_SIZE] * (N_CHUNKS * CHUNK_HEAPS), seed=5)
    for cnt, h in enumerate(heaps):
        h.cnt = cnt
    datagrams = Encoder(max_packet_size=1472).stream_packets(heaps)
    got, stats, landed = receive_chunks(thread_pool, monkeypatch, c_place, datagrams, landing=True)
    payloads = [bytes(h.items[0].value) for h in heaps]
    want = [
        (c, [1] * CHUNK_HEAPS, b"".join(payloads[c * CHUNK_HEAPS : (c + 1) * CHUNK_HEAPS]))
        for c in range(N_CHUNKS)
    ]
    assert got == want
    assert landed > len(heaps)  # (the rest of each heap after its first batch)
    assert receive_chunks(thread_pool, monkeypatch, c_place, datagrams, landing=False) == (got, stats, 0)


def test_chunk_stream_lands_each_large_heap_after_a_pause(
    thread_pool: spead2.ThreadPool, monkeypatch: pytest.MonkeyPatch, c_place: Any
) -> None:
    """As test_each_large_heap_lands_after_a_pause, into chunks: heaps of 40000 B in 9000 B
    datagrams (5 a heap), each sent once the stream has taken the one before."""
    monkeypatch.setattr(udp, "LANDING", True)
    heaps = heaps_of([CHUNK_HEAP_SIZE] * (2 * CHUNK_HEAPS), seed=6)
    for cnt, h in enumerate(heaps):
        h.cnt = cnt
    encoder = Encoder(max_packet_size=9000)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    stream = chunk_stream(thread_pool, c_place, sock)
    native = native_reader(stream)
    stream.start()
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        for heap in heaps:
            datagrams = encoder.packets(heap)
            for datagram in datagrams:
                out.sendto(datagram, sock.getsockname())
            sent += len(datagrams)
            deadline = time.monotonic() + 30
            while stream.stats["packets"] < sent:  # (no event says so: the reader is in C)
                assert time.monotonic() < deadline, "timed out"
                time.sleep(0.001)
        for datagram in encoder.stop_packets(len(heaps)):
            out.sendto(datagram, sock.getsockname())
    got = chunks_of(stream)
    stream.stop()
    sock.close()
    payloads = [bytes(h.items[0].value) for h in heaps]
    assert got == [
        (c, [1] * CHUNK_HEAPS, b"".join(payloads[c * CHUNK_HEAPS : (c + 1) * CHUNK_HEAPS])) for c in range(2)
    ]
    # every heap's but the first: its first datagram is copied, the other 4 land
    assert int(lib.sp2_udp_reader_landed(native)) >= 4 * (len(heaps) - 1)


def test_chunk_stream_perturbed_same_as_without_landing(
    thread_pool: spead2.ThreadPool, monkeypatch: pytest.MonkeyPatch, c_place: Any
) -> None:
    landed_per_seed = []
    for seed in range(6):
        rng = random.Random(seed)
        heaps = heaps_of([CHUNK_HEAP_SIZE] * (N_CHUNKS * CHUNK_HEAPS), seed)
        for cnt, h in enumerate(heaps):
            h.cnt = cnt
        datagrams = perturbed(Encoder(max_packet_size=1472).stream_packets(heaps), rng, foreign_cnt=7)
        got, stats, landed = receive_chunks(thread_pool, monkeypatch, c_place, datagrams, landing=True)
        off, off_stats, _ = receive_chunks(thread_pool, monkeypatch, c_place, datagrams, landing=False)
        # (an absent heap's place may hold some bytes, as the reference documents: with landing,
        # bytes of packets that were not its own)
        assert (present_only(got), stats) == (present_only(off), off_stats), seed
        landed_per_seed.append(landed)
    assert sum(n > 0 for n in landed_per_seed) >= 3, landed_per_seed
