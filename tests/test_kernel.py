"""The C kernel on its own: hand-built packets in, heaps and statistics out (no loop, no sockets)."""

from __future__ import annotations

import random
import resource

import pytest
from kernel_harness import EncHeap, Encoder, Item, Kernel, items_of, packet, pointer

import spead2
from spead2._kernel import ffi, lib
from spead2.recv import Heap, IncompleteHeap

HEAP_CNT, HEAP_LENGTH, PAYLOAD_OFFSET, PAYLOAD_LENGTH = 1, 2, 3, 4


def fields(cnt: int, offset: int, length: int, heap_length: int | None, hab: int = 40) -> list[int]:
    out = [pointer(HEAP_CNT, cnt, True, hab)]
    if heap_length is not None:
        out.append(pointer(HEAP_LENGTH, heap_length, True, hab))
    return out + [pointer(PAYLOAD_OFFSET, offset, True, hab), pointer(PAYLOAD_LENGTH, length, True, hab)]


def piece(
    cnt: int, payload: bytes, offset: int, heap_length: int | None, items: list[int] | None = None
) -> bytes:
    """One packet carrying ``payload`` at ``offset`` of heap ``cnt``."""
    return packet(fields(cnt, offset, len(payload), heap_length) + (items or []), payload)


def heap_pieces(cnt: int, payload: bytes, size: int, heap_length: bool = True) -> list[bytes]:
    """A heap with one addressed item 0x1000 covering ``payload``, in packets of ``size`` bytes."""
    total = len(payload) if heap_length else None
    out = []
    for offset in range(0, len(payload), size):
        items = [pointer(0x1000, 0, False)] if offset == 0 else []
        out.append(piece(cnt, payload[offset : offset + size], offset, total, items))
    return out


def decode(data: bytes, exact: bool = True) -> tuple[int, object]:
    info = ffi.new("sp2_packet_info *")
    ret = lib.sp2_decode_packet(ffi.from_buffer(data) if data else ffi.NULL, len(data), exact, info)
    return ret, info


def drop_reason(ret: int) -> str:
    return spead2.recv.DROP_REASONS[ret - 1]


# ---- decoding ----


def test_decode_valid_fields() -> None:
    data = piece(7, b"abcd", 10, 20, [pointer(0x1000, 0, False)])
    ret, info = decode(data)
    assert ret == 0
    assert (info.heap_cnt, info.heap_length, info.payload_offset, info.payload_length) == (7, 20, 10, 4)
    assert (info.size, info.n_items, info.heap_address_bits) == (len(data), 5, 40)


@pytest.mark.parametrize("hab", [8, 16, 24, 32, 40, 48, 56])
def test_decode_every_address_width(hab: int) -> None:
    cnt = (1 << hab) - 1
    data = packet(fields(cnt, 0, 3, 3, hab), b"xyz", hab)
    ret, info = decode(data)
    assert ret == 0
    assert info.heap_cnt == cnt and info.heap_address_bits == hab


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "too_short"),
        (b"\x53\x04\x03\x05\x00\x00\x00", "too_short"),
        (b"\x52" + piece(1, b"x", 0, 1)[1:], "bad_magic"),
        (b"\x53\x03" + piece(1, b"x", 0, 1)[2:], "bad_version"),
        (b"\x53\x04\x00\x08" + piece(1, b"x", 0, 1)[4:], "bad_flavour"),
        (b"\x53\x04\x08\x00" + piece(1, b"x", 0, 1)[4:], "bad_flavour"),
        (b"\x53\x04\x03\x04" + piece(1, b"x", 0, 1)[4:], "bad_flavour"),
        (packet(fields(1, 0, 1, 1), b"x", n_items=40), "too_short"),
        (
            packet(
                [
                    pointer(HEAP_LENGTH, 1, True),
                    pointer(PAYLOAD_OFFSET, 0, True),
                    pointer(PAYLOAD_LENGTH, 1, True),
                ],
                b"x",
            ),
            "missing_field",
        ),
        (packet([pointer(HEAP_CNT, 1, True), pointer(PAYLOAD_LENGTH, 1, True)], b"x"), "missing_field"),
        (packet([pointer(HEAP_CNT, 1, True), pointer(PAYLOAD_OFFSET, 0, True)], b"x"), "missing_field"),
        # the header fields only count as immediates
        (
            packet(
                [
                    pointer(HEAP_CNT, 1, False),
                    pointer(PAYLOAD_OFFSET, 0, True),
                    pointer(PAYLOAD_LENGTH, 1, True),
                ],
                b"x",
            ),
            "missing_field",
        ),
        (piece(1, b"abcd", 0, 4)[:-1], "size_mismatch"),
        (piece(1, b"abcd", 0, 4) + b"!", "size_mismatch"),
        (piece(1, b"abcd", 0, 3), "beyond_heap"),
        (piece(1, b"", 5, 0), "beyond_heap"),
    ],
)
def test_decode_rejects(data: bytes, reason: str) -> None:
    ret, _ = decode(data)
    assert ret > 0 and drop_reason(ret) == reason


def test_decode_last_header_field_wins() -> None:
    data = packet(fields(1, 0, 1, 1) + [pointer(HEAP_CNT, 9, True)], b"x")
    ret, info = decode(data)
    assert ret == 0 and info.heap_cnt == 9


def test_decode_in_a_buffer_allows_trailing_bytes() -> None:
    data = piece(1, b"abcd", 0, 4)
    ret, info = decode(data + b"next", exact=False)
    assert ret == 0 and info.size == len(data)


# ---- datagrams: counting and dropping ----


def test_malformed_datagrams_are_counted_not_fatal() -> None:
    k = Kernel(contiguous_only=0)
    assert k.datagram(b"\x52" + piece(1, b"x", 0, 1)[1:]) == lib.SP2_OK
    assert k.datagram(piece(1, b"x", 0, 1) + b"junk") == lib.SP2_OK
    assert k.datagram(piece(2, b"x", 0, 1, [pointer(0x1000, 0, False)])) == lib.SP2_OK
    k.stop()
    heaps = k.heaps()
    assert [h.cnt for h in heaps] == [2]
    stats = k.stats()
    assert stats["packets"] == 1  # only packets that decode count
    assert k.drops() == {"bad_magic": 1, "size_mismatch": 1}


def test_single_packet_heap() -> None:
    k = Kernel()
    k.datagram(piece(5, b"hello", 0, 5, [pointer(0x1000, 0, False), pointer(0x1001, 42, True)]))
    heap = k.pop()
    assert isinstance(heap, Heap) and heap.cnt == 5
    assert items_of(heap) == [(0x1000, False, b"hello"), (0x1001, True, (42).to_bytes(5, "big"))]
    stats = k.stats()
    assert stats["heaps"] == 1 and stats["single_packet_heaps"] == 1 and stats["packets"] == 1


# ---- reassembly ----


def test_in_order_heap_reassembles() -> None:
    payload = bytes(range(256)) * 20
    k = Kernel()
    for p in heap_pieces(1, payload, 1000):
        k.datagram(p)
    heap = k.pop()
    assert isinstance(heap, Heap)
    assert items_of(heap) == [(0x1000, False, payload)]
    assert k.stats()["single_packet_heaps"] == 0


def test_in_order_drops_out_of_order_and_duplicates() -> None:
    payload = bytes(3000)
    p = heap_pieces(1, payload, 1000)
    k = Kernel(contiguous_only=0, keep_payload_ranges=1)
    for x in (p[0], p[0], p[2], p[1]):
        k.datagram(x)
    k.stop()
    heap = k.pop()
    assert isinstance(heap, IncompleteHeap)
    assert (heap.heap_length, heap.received_length, heap.payload_ranges) == (3000, 2000, [(0, 2000)])
    assert k.drops() == {"duplicate": 1, "out_of_order": 1}
    assert k.stats()["packets"] == 4


def test_in_order_new_heap_must_start_at_offset_zero() -> None:
    p = heap_pieces(1, bytes(2000), 1000)
    k = Kernel(contiguous_only=0)
    k.datagram(p[1])
    k.stop()
    assert k.heaps() == []
    assert k.drops() == {"out_of_order": 1}


def test_out_of_order_reassembles_any_order_and_ignores_duplicates() -> None:
    payload = random.Random(1).randbytes(10000)
    packets = heap_pieces(3, payload, 700)
    shuffled = packets + packets[:3]
    random.Random(2).shuffle(shuffled)
    k = Kernel(allow_out_of_order=1)
    for x in shuffled:
        k.datagram(x)
    heap = k.pop()
    assert isinstance(heap, Heap) and items_of(heap) == [(0x1000, False, payload)]
    assert k.drops().get("duplicate", 0) >= 1


def test_out_of_order_payload_ranges_show_the_holes() -> None:
    p = heap_pieces(1, bytes(5000), 1000)
    k = Kernel(allow_out_of_order=1, contiguous_only=0, keep_payload_ranges=1)
    for x in (p[4], p[0], p[2]):
        k.datagram(x)
    k.stop()
    (heap,) = k.heaps()
    assert isinstance(heap, IncompleteHeap)
    assert heap.payload_ranges == [(0, 1000), (2000, 3000), (4000, 5000)]
    assert heap.received_length == 3000
    assert heap.get_items() == []  # addressed items of an incomplete heap are not kept


def test_incomplete_heap_keeps_immediates_and_no_ranges_unless_asked() -> None:
    k = Kernel(contiguous_only=0)
    k.datagram(piece(1, bytes(10), 0, 20, [pointer(0x1000, 0, False), pointer(0x1001, 7, True)]))
    k.stop()
    (heap,) = k.heaps()
    assert isinstance(heap, IncompleteHeap)
    assert items_of(heap) == [(0x1001, True, (7).to_bytes(5, "big"))]
    assert heap.payload_ranges == []


def test_contiguous_only_drops_incomplete_heaps_but_counts_them() -> None:
    k = Kernel()
    k.datagram(heap_pieces(1, bytes(2000), 1000)[0])
    k.stop()
    assert k.heaps() == []
    stats = k.stats()
    assert stats["heaps"] == 1 and stats["incomplete_heaps_flushed"] == 1


def test_eviction_is_fifo_per_substream() -> None:
    """max_heaps=2: a third heap evicts the oldest, even if a newer one's slot is free."""
    halves = {c: heap_pieces(c, bytes(200), 100) for c in (1, 2, 3)}
    k = Kernel(max_heaps=2, contiguous_only=0)
    for x in (halves[1][0], halves[2][0], halves[2][1], halves[3][0], halves[1][1]):
        k.datagram(x)
    k.stop()
    got = [(type(h).__name__, h.cnt) for h in k.heaps()]
    assert got == [("Heap", 2), ("IncompleteHeap", 1), ("IncompleteHeap", 3)]
    stats = k.stats()
    assert stats["incomplete_heaps_evicted"] == 1 and stats["incomplete_heaps_flushed"] == 1


def test_substreams_keep_producers_apart() -> None:
    """Interleaved heaps of two senders (odd and even cnts) with max_heaps=1."""
    a = heap_pieces(1, bytes(300), 100)
    b = heap_pieces(2, bytes(300), 100)
    interleaved = [x for pair in zip(a, b, strict=True) for x in pair]
    k = Kernel(max_heaps=1, substreams=2)
    for x in interleaved:
        k.datagram(x)
    assert sorted(h.cnt for h in k.heaps()) == [1, 2]
    k1 = Kernel(max_heaps=1, substreams=1)
    for x in interleaved:
        k1.datagram(x)
    k1.stop()
    assert [h.cnt for h in k1.heaps()] == [2]  # heap 1 was evicted by heap 2's first packet


def test_flush_order_is_oldest_first() -> None:
    k = Kernel(contiguous_only=0)
    for cnt in (5, 3, 9):
        k.datagram(heap_pieces(cnt, bytes(200), 100)[0])
    k.stop()
    assert [h.cnt for h in k.heaps()] == [5, 3, 9]


def test_unsized_heaps_grow_and_are_complete_when_contiguous() -> None:
    payload = random.Random(3).randbytes(20000)
    k = Kernel(contiguous_only=0)
    for x in heap_pieces(1, payload, 1400, heap_length=False):
        k.datagram(x)
    assert k.heaps() == []  # without a length it cannot be known complete before the flush
    k.stop()
    (heap,) = k.heaps()
    assert isinstance(heap, Heap) and items_of(heap) == [(0x1000, False, payload)]
    assert k.stats()["incomplete_heaps_flushed"] == 1


def test_unsized_heaps_rejected_when_disallowed() -> None:
    k = Kernel(allow_unsized_heaps=0)
    for x in heap_pieces(1, bytes(100), 50, heap_length=False):
        k.datagram(x)
    k.stop()
    assert k.heaps() == [] and k.drops() == {"unsized": 2} and k.stats()["packets"] == 2


def test_inconsistent_heap_length_is_dropped() -> None:
    k = Kernel()
    k.datagram(piece(1, bytes(100), 0, 200, [pointer(0x1000, 0, False)]))
    k.datagram(piece(1, bytes(100), 100, 300))
    k.datagram(piece(1, bytes(100), 100, 200))
    assert [h.cnt for h in k.heaps()] == [1]
    assert k.drops() == {"inconsistent_length": 1}


def test_items_sorted_by_address_then_immediates_by_value() -> None:
    data = bytes(range(100))
    items = [
        pointer(0x2000, 5, True),
        pointer(0x1000, 60, False),
        pointer(0x1500, 1, True),
        pointer(0x1001, 10, False),
        pointer(0x1002, 10, False),  # same address as 0x1001: 0x1001 is zero-length, left out
        pointer(0x1000, 60, False),  # a repeated pointer counts once
    ]
    k = Kernel()
    k.datagram(piece(1, data, 0, 100, items))
    heap = k.pop()
    assert heap is not None
    assert items_of(heap) == [
        (0x1002, False, data[10:60]),
        (0x1000, False, data[60:]),
        (0x1500, True, (1).to_bytes(5, "big")),
        (0x2000, True, (5).to_bytes(5, "big")),
    ]


def test_null_descriptor_and_header_pointers_are_not_items() -> None:
    data = bytes(range(30))
    items = [pointer(0x1000, 0, False), pointer(0, 10, False), pointer(5, 20, False), pointer(2, 25, False)]
    k = Kernel()
    k.datagram(piece(1, data, 0, 30, items))
    heap = k.pop()
    assert isinstance(heap, Heap)
    assert items_of(heap) == [(0x1000, False, data[:10])]  # NULL still ends the item before it
    raw = heap._owner
    assert raw.n_descriptors == 1 and raw.descriptors[0].value == 20 and raw.descriptors[0].length == 10


def test_item_address_beyond_the_heap_leaves_it_incomplete() -> None:
    k = Kernel(contiguous_only=0)
    k.datagram(piece(1, bytes(100), 0, 100, [pointer(0x1000, 50, False), pointer(0x1001, 150, False)]))
    assert k.heaps() == []
    k.stop()
    (heap,) = k.heaps()
    assert isinstance(heap, IncompleteHeap) and heap.received_length == 100


def test_repeated_pointers_in_every_packet() -> None:
    payload = bytes(range(250)) * 4
    items = [pointer(0x1000, 0, False), pointer(0x1001, 3, True)]
    k = Kernel()
    for offset in range(0, 1000, 200):
        k.datagram(piece(1, payload[offset : offset + 200], offset, 1000, items))
    heap = k.pop()
    assert heap is not None and items_of(heap) == [
        (0x1000, False, payload),
        (0x1001, True, (3).to_bytes(5, "big")),
    ]


def test_many_distinct_pointers_use_the_index() -> None:
    k = Kernel()
    ids = list(range(0x1000, 0x1000 + 500))
    k.datagram(piece(1, bytes(10), 0, 10, [pointer(i, i, True) for i in ids] * 2))
    heap = k.pop()
    assert heap is not None and [it[0] for it in items_of(heap)] == ids


# ---- stream control ----


def stop_packet(cnt: int) -> bytes:
    return piece(cnt, b"\0", 0, 1, [pointer(6, spead2.CTRL_STREAM_STOP, True)])


def test_stop_item_discards_its_heap_flushes_and_stops() -> None:
    k = Kernel(contiguous_only=0)
    k.datagram(heap_pieces(1, bytes(200), 100)[0])
    assert k.datagram(stop_packet(2)) == lib.SP2_STOPPED
    assert k.datagram(piece(3, b"x", 0, 1)) == lib.SP2_STOPPED
    assert [(type(h).__name__, h.cnt) for h in k.heaps()] == [("IncompleteHeap", 1)]
    assert lib.sp2_ring_drained(k.stream)
    stats = k.stats()
    assert stats["heaps"] == 1 and stats["packets"] == 2 and stats["single_packet_heaps"] == 1


def test_stop_item_kept_without_stop_on_stop_item() -> None:
    k = Kernel(stop_on_stop_item=0)
    k.datagram(stop_packet(2))
    k.datagram(piece(3, b"x", 0, 1, [pointer(0x1000, 0, False)]))
    heaps = k.heaps()
    assert [h.cnt for h in heaps] == [2, 3]
    assert heaps[0].is_end_of_stream() and not heaps[1].is_end_of_stream()


def test_start_item_marks_the_heap() -> None:
    k = Kernel()
    k.datagram(piece(1, b"\0", 0, 1, [pointer(6, spead2.CTRL_STREAM_START, True)]))
    heap = k.pop()
    assert heap is not None and heap.is_start_of_stream() and not heap.is_end_of_stream()
    assert items_of(heap) == [(6, True, (0).to_bytes(5, "big"))]


# ---- byte streams (buffers, TCP) ----


def test_bytes_frames_packets_and_reports_partial() -> None:
    enc = Encoder(max_packet_size=300)
    data = b"".join(enc.stream_packets([EncHeap(c, [Item(0x1000, bytes(1000))]) for c in (1, 2)]))
    k = Kernel(ring_heaps=10)
    status, consumed = k.feed(data[:-5])
    assert status == lib.SP2_PARTIAL and consumed < len(data) - 5
    status, rest = k.feed(data[consumed:])
    assert status == lib.SP2_OK and consumed + rest == len(data)
    assert [h.cnt for h in k.heaps()] == [1, 2]


def test_bytes_stop_at_an_undecodable_packet() -> None:
    good = piece(1, b"x", 0, 1, [pointer(0x1000, 0, False)])
    k = Kernel()
    status, consumed = k.feed(good + b"\x52" + good[1:] + good)
    assert status == lib.SP2_BAD_PACKET and consumed == len(good)
    assert k.drops() == {"bad_magic": 1}


def test_bytes_reject_packets_over_max_size() -> None:
    big = piece(1, bytes(5000), 0, 5000)
    k = Kernel()
    assert k.feed(big, max_packet=1000) == (lib.SP2_BAD_PACKET, 0)
    # a partial packet that can no longer fit in max_packet is rejected too, not waited for:
    # once max_packet bytes are there, or as soon as its header announces more
    assert k.feed(big[:2000], max_packet=1000)[0] == lib.SP2_BAD_PACKET
    assert k.feed(big[:100], max_packet=1000)[0] == lib.SP2_BAD_PACKET
    assert k.feed(big[:20], max_packet=1000)[0] == lib.SP2_PARTIAL  # header incomplete: wait
    assert k.drops() == {"too_large": 3}


# ---- the ring ----


def test_ring_full_pauses_input_and_space_wakes_it() -> None:
    enc = Encoder()
    data = b"".join(enc.stream_packets([EncHeap(c, [Item(0x1000, b"abc")]) for c in range(1, 101)]))
    k = Kernel(ring_heaps=4)
    status, consumed = k.feed(data)
    assert status == lib.SP2_FULL and 0 < consumed < len(data)
    # past a full ring the input's batch goes on, by a bounded number of heaps (60), uncounted
    queued = k.stats()["heaps"]
    assert queued == 4 + 60
    assert lib.sp2_ring_size(k.stream) == 4 and lib.sp2_ring_capacity(k.stream) == 4
    fd = lib.sp2_ring_space_fd(k.stream)
    assert fd >= 0
    import select

    assert select.select([fd], [], [], 0)[0] == []
    for _ in range(queued - 3):
        k.pop()
    assert select.select([fd], [], [], 0)[0] == []  # 3 left: above the resume level
    k.pop()
    assert select.select([fd], [], [], 0)[0] == [fd]  # 2 left: room again
    lib.sp2_ring_space_ack(k.stream)
    assert select.select([fd], [], [], 0)[0] == []
    assert k.stats()["worker_blocked"] == 1


def test_data_fd_holds_a_byte_per_heap_and_stays_readable_after_stop() -> None:
    import os
    import select

    k = Kernel(ring_heaps=8)
    k.datagram(piece(1, b"x", 0, 1))
    fd = lib.sp2_ring_data_fd(k.stream)  # created late: primed with the heaps already queued
    k.datagram(piece(2, b"x", 0, 1))
    os.set_blocking(fd, False)
    assert select.select([fd], [], [], 0)[0] == [fd]
    k.pop()
    k.pop()
    assert select.select([fd], [], [], 0)[0] == []
    k.stop()
    assert select.select([fd], [], [], 0)[0] == [fd]


def test_ring_stop_drops_later_heaps_but_keeps_queued_ones() -> None:
    k = Kernel(ring_heaps=8)
    k.datagram(piece(1, b"x", 0, 1))
    lib.sp2_ring_stop(k.stream)
    k.datagram(piece(2, b"x", 0, 1))
    assert [h.cnt for h in k.heaps()] == [1]
    assert lib.sp2_ring_drained(k.stream)


def test_blocking_pop_times_out() -> None:
    k = Kernel()
    assert lib.sp2_ring_pop(k.stream, 1_000_000) == ffi.NULL
    assert not lib.sp2_ring_drained(k.stream)


# ---- hostile sizes ----


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (resource.getpagesize() // 1024)


def test_huge_heap_length_is_dropped_without_allocating() -> None:
    k = Kernel()
    before = rss_kib()
    for cnt in range(100):
        k.datagram(piece(cnt, bytes(100), 0, (1 << 40) - 1, [pointer(0x1000, 0, False)]))
        k.datagram(piece(cnt + 1000, bytes(100), 0, None, [pointer(0x1000, (1 << 39), False)]))
        k.datagram(piece(cnt + 2000, bytes(100), 1 << 39, (1 << 39) + 100))
    k.stop()
    # the unsized heaps are accepted (their data fit) but never complete: the pointer is past the data
    assert k.heaps() == []
    assert k.drops() == {"heap_too_large": 200}
    assert rss_kib() - before < 8 * 1024


def test_packet_refused_for_memory_leaves_the_heap_as_it_was() -> None:
    """A packet whose payload cannot be allocated is dropped and changes nothing: its HEAP_LENGTH
    (a claim no address space holds) is not taken, so the heap's real length still fits."""
    hab = 56
    k = Kernel(max_heap_size=1 << 60)

    def part(offset: int, payload: bytes, heap_length: int | None) -> bytes:
        items = [pointer(0x10, 0, False, hab)] if offset == 0 else []
        return packet(fields(1, offset, len(payload), heap_length, hab) + items, payload, hab)

    first = bytes(4096)  # the buffer of an unsized heap starts this large: the next packet grows it
    assert k.datagram(part(0, first, None)) == lib.SP2_OK
    assert k.datagram(part(len(first), bytes(100), (1 << hab) - 1)) == lib.SP2_OK
    assert k.drops() == {"no_memory": 1}
    assert k.datagram(part(len(first), bytes(range(200)), len(first) + 200)) == lib.SP2_OK
    (heap,) = k.heaps()
    assert isinstance(heap, Heap) and items_of(heap) == [(0x10, False, first + bytes(range(200)))]
    assert k.drops() == {"no_memory": 1}


def test_large_claim_under_the_limit_touches_only_what_arrived() -> None:
    """A 512 MiB heap (under the 1 GiB default limit) of which one packet arrives costs the
    memory of that packet, not of the claim."""
    k = Kernel(contiguous_only=0)
    before = rss_kib()
    for cnt in range(8):
        k.datagram(piece(cnt, bytes(1000), 0, 512 << 20, [pointer(0x1000, 0, False)]))
    assert rss_kib() - before < 16 * 1024
    k.stop()
    assert len(k.heaps()) == 8


def test_max_heap_size_is_configurable() -> None:
    k = Kernel(max_heap_size=1000)
    k.datagram(piece(1, bytes(100), 0, 1001))
    k.datagram(piece(2, bytes(100), 0, 1000, [pointer(0x1000, 0, False)]))
    k.datagram(piece(3, bytes(100), 950, None))  # an unsized claim past the limit
    assert [h.cnt for h in k.heaps()] == []
    assert k.drops() == {"heap_too_large": 2}


def test_pointer_limit_drops_the_packet() -> None:
    k = Kernel(max_heap_pointers=10)
    k.datagram(piece(1, b"x", 0, 1, [pointer(0x1000 + i, i, True) for i in range(11)]))
    k.datagram(piece(2, b"x", 0, 1, [pointer(0x1000 + i, i, True) for i in range(10)]))
    assert [h.cnt for h in k.heaps()] == [2]
    assert k.drops() == {"too_complex": 1}


def test_range_limit_drops_fragmenting_packets() -> None:
    k = Kernel(allow_out_of_order=1, max_heap_ranges=3, contiguous_only=0, keep_payload_ranges=1)
    for offset in (0, 20, 40, 60, 10):
        k.datagram(piece(1, bytes(5), offset, 100))
    k.stop()
    (heap,) = k.heaps()
    assert isinstance(heap, IncompleteHeap)
    assert heap.payload_ranges == [(0, 5), (20, 25), (40, 45)]
    assert k.drops() == {"too_complex": 2}


def test_config_validation() -> None:
    for bad in (
        {"max_heaps": 0},
        {"substreams": 0},
        {"ring_heaps": 0},
        {"max_heaps": 1 << 13, "substreams": 1 << 13},
    ):
        with pytest.raises(ValueError):
            Kernel(**bad)


# ---- copying ----


@pytest.mark.parametrize("size", [1, 255, 256, 4097, 100_003])
def test_nontemporal_copy_is_a_copy(size: int) -> None:
    payload = random.Random(size).randbytes(size)
    k = Kernel(memcpy_nontemporal=1)
    for p in heap_pieces(1, payload, 9000):
        k.datagram(p)
    heap = k.pop()
    assert heap is not None and items_of(heap) == [(0x1000, False, payload)]


def test_data_fd_keeps_count_beyond_a_pipe_s_capacity() -> None:
    import select

    n = 70_000  # more heaps than a pipe holds bytes
    enc = Encoder()
    data = b"".join(enc.stream_packets([EncHeap(c, [Item(0x1000, b"x")]) for c in range(n)]))
    k = Kernel(ring_heaps=n + 10)
    fd = lib.sp2_ring_data_fd(k.stream)
    assert k.feed(data) == (lib.SP2_OK, len(data))
    for _ in range(n - 1):
        assert lib.sp2_ring_pop(k.stream, 0) != ffi.NULL
    assert select.select([fd], [], [], 0)[0] == [fd]
    k.pop()
    assert select.select([fd], [], [], 0)[0] == []


@pytest.mark.parametrize(
    ("heap_length", "contiguous_only", "expected"),
    [
        (None, 1, [(Heap, [(0x1000, False, b"abcd"), (6, True, (2).to_bytes(5, "big"))])]),
        (8, 1, []),
        (8, 0, [(IncompleteHeap, [(6, True, (2).to_bytes(5, "big"))])]),
        (4, 1, []),
    ],
    ids=["unsized", "incomplete", "incomplete-kept", "complete"],
)
def test_heap_holding_the_stop_is_flushed_unless_complete(
    heap_length: int | None, contiguous_only: int, expected: list[tuple[type, list[object]]]
) -> None:
    """As the reference (recorded from spead2 4.5.1): a heap that holds the stop item is not
    delivered when it completes; an incomplete one is finished with the other live heaps."""
    k = Kernel(contiguous_only=contiguous_only)
    stop = pointer(6, 2, True)
    assert k.datagram(piece(1, b"abcd", 0, heap_length, [pointer(0x1000, 0, False), stop])) == lib.SP2_STOPPED
    heaps = k.heaps()
    assert [(type(h), items_of(h)) for h in heaps] == expected
    assert all(h.is_end_of_stream() for h in heaps)
    assert k.stats()["heaps"] == (0 if heap_length == 4 else 1)
