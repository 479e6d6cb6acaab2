"""The send side's encoder (spead2/_native/packetize.c through PacketGenerator and BytesStream),
pinned with hand-computed packets, and its output decoded by our own receiver."""

from __future__ import annotations

import struct

import numpy as np
import pytest

import spead2
import spead2.recv
import spead2.send

IMM = 1 << 63
F48 = spead2.Flavour(4, 64, 48, 0)
F40 = spead2.Flavour(4, 64, 40, 0)


def decode(packet: bytes) -> tuple[int, list[int], bytes]:
    """(heap address bits, item pointers, payload) of one packet."""
    magic, version, _, address_bytes, _, n = struct.unpack(">BBBBHH", packet[:8])
    assert (magic, version) == (0x53, 4)
    pointers = list(struct.unpack(f">{n}Q", packet[8 : 8 + 8 * n]))
    return address_bytes * 8, pointers, packet[8 + 8 * n :]


def pointer(item_id: int, value: int, immediate: bool = True, bits: int = 48) -> int:
    return (IMM if immediate else 0) | (item_id << bits) | value


def standard(cnt: int, length: int, offset: int, size: int, bits: int = 48) -> list[int]:
    return [
        pointer(1, cnt, bits=bits),
        pointer(2, length, bits=bits),
        pointer(3, offset, bits=bits),
        pointer(4, size, bits=bits),
    ]


def packets(heap: spead2.send.Heap, cnt: int = 1, size: int = 1472) -> list[bytes]:
    return list(spead2.send.PacketGenerator(heap, cnt, size))


def item(item_id: int, value: object, **kwargs: object) -> spead2.Item:
    return spead2.Item(item_id, f"item{item_id}", "", value=value, **kwargs)  # type: ignore[arg-type]


def test_one_packet_layout() -> None:
    heap = spead2.send.Heap(F48)
    heap.add_item(item(0x1000, 0x01020304, shape=(), format=[("u", 32)]))  # immediate
    heap.add_item(item(0x1001, np.arange(10, dtype=np.uint8), shape=(10,), dtype=np.uint8))
    heap.add_item(item(0x1002, np.array([1, 2], ">u4"), shape=(2,), dtype=">u4"))
    (packet,) = packets(heap, cnt=7)
    bits, pointers, payload = decode(packet)
    assert bits == 48
    assert pointers == standard(7, 18, 0, 18) + [
        pointer(0x1000, 0x01020304),
        pointer(0x1001, 0, immediate=False),
        pointer(0x1002, 10, immediate=False),
    ]
    assert payload == bytes(range(10)) + bytes([0, 0, 0, 1, 0, 0, 0, 2])


def test_immediate_is_the_value_bytes_right_aligned() -> None:
    heap = spead2.send.Heap(F48)
    heap.add_item(item(0x1000, 0x0102, shape=(), dtype="<u2"))
    _, pointers, _ = decode(packets(heap)[0])
    assert pointers[4] == pointer(0x1000, 0x0201)


def test_heap_of_immediates_is_padded() -> None:
    """No payload: a NULL item addresses one byte of padding, so the heap has a length."""
    heap = spead2.send.Heap(F40)
    heap.add_end()
    (packet,) = packets(heap)
    _, pointers, payload = decode(packet)
    assert pointers == standard(1, 1, 0, 1, bits=40) + [pointer(6, 2, bits=40), pointer(0, 0, False, bits=40)]
    assert payload == b"\0"


def test_large_heap_fills_packets() -> None:
    heap = spead2.send.Heap(F48)
    data = np.arange(3000, dtype=np.uint16).view(np.uint8)[:3000]
    heap.add_item(item(0x1000, data, shape=(3000,), dtype=np.uint8))
    out = packets(heap, size=1479)  # rounded down to a multiple of 8
    assert [len(p) for p in out] == [1472, 1472, 3000 - 1424 - 1432 + 40]
    assert b"".join(decode(p)[2] for p in out) == data.tobytes()
    offsets = [decode(p)[1][2] & ((1 << 48) - 1) for p in out]
    assert offsets == [0, 1424, 2856]


def test_pointers_spread_over_packets_and_padding_at_its_address() -> None:
    """19 item pointers fit in a 200-byte packet: 30 immediates need two packets, so the heap is
    padded to 9 bytes (8 in the first packet, 1 in the second), at the NULL item's address."""
    heap = spead2.send.Heap(F48)
    for i in range(30):
        heap.add_item(item(0x1000 + i, i, shape=(), format=[("u", 32)]))
    heap.add_item(item(0x2000, np.arange(1, 8, dtype=np.uint8), shape=(7,), dtype=np.uint8))
    first, second = packets(heap, size=200)
    _, p1, pay1 = decode(first)
    _, p2, pay2 = decode(second)
    assert len(first) == 200 and len(p1) == 4 + 19
    assert p2[4:] == [pointer(0x1000 + i, i) for i in range(19, 30)] + [
        pointer(0x2000, 0, False),
        pointer(0, 7, False),
    ]
    assert pay1 + pay2 == bytes(range(1, 8)) + b"\0\0"


def test_padding_decodes_to_the_right_values() -> None:
    """Where padding and item bytes share a packet, the item bytes stay where their pointer says
    (the reference shifts them; see docs/differences.rst)."""
    heap = spead2.send.Heap(F40)
    heap.add_item(item(0x1000, np.arange(1, 7, dtype=np.uint8), shape=(6,), dtype=np.uint8))
    data = b"".join(packets(heap, size=56))
    stream = spead2.recv.Stream(spead2.ThreadPool())
    stream.add_buffer_reader(data)
    (received,) = list(stream)
    group = spead2.ItemGroup()
    group.add_item(0x1000, "x", "", (6,), np.uint8)
    group.update(received)
    assert group["x"].value.tolist() == [1, 2, 3, 4, 5, 6]


def test_repeat_pointers() -> None:
    heap = spead2.send.Heap(F48)
    for i in range(3):
        heap.add_item(item(0x1000 + i, i, shape=(), format=[("u", 32)]))
    heap.add_item(item(0x2000, np.zeros(300, np.uint8), shape=(300,), dtype=np.uint8))
    heap.repeat_pointers = True
    out = packets(heap, size=200)
    assert len(out) == 3
    assert all(decode(p)[1][4:] == decode(out[0])[1][4:] for p in out)
    for n in (19, 18):
        many = spead2.send.Heap(F48)
        for i in range(n):
            many.add_item(item(0x1000 + i, i, shape=(), format=[("u", 32)]))
        many.repeat_pointers = True
        if n >= 19:
            with pytest.raises(ValueError, match="too small to repeat item pointers"):
                packets(many, size=200)
        else:
            assert len(packets(many, size=200)) == 1


@pytest.mark.parametrize("size", [0, 40, 55])
def test_packet_size_too_small(size: int) -> None:
    heap = spead2.send.Heap(F48)
    heap.add_end()
    with pytest.raises(ValueError, match="packet size is too small"):
        packets(heap, size=size)
    assert len(packets(heap, size=56)) == 2  # one pointer per packet, and room kept for the NULL item


def test_out_of_range_ids() -> None:
    flavour = spead2.Flavour(4, 64, 56, 0)  # 7 bits of item id
    heap = spead2.send.Heap(flavour)
    with pytest.raises(ValueError, match="Item ID out of range"):
        heap.add_descriptor(item(0x80, 1, shape=(), format=[("u", 8)]))
    heap.add_item(item(0x80, 1, shape=(), format=[("u", 8)]))
    with pytest.raises(ValueError, match="item ID is too large"):
        packets(heap)


def test_cnt_out_of_range() -> None:
    heap = spead2.send.Heap(F48)
    heap.add_end()
    assert decode(packets(heap, cnt=2**48 - 1)[0])[1][0] == pointer(1, 2**48 - 1)
    with pytest.raises(ValueError, match="cnt is out of range"):
        packets(heap, cnt=2**48)


def test_item_memory_is_referenced_not_copied() -> None:
    value = np.zeros(100, np.uint8)
    heap = spead2.send.Heap(F48)
    heap.add_item(item(0x1000, value, shape=(100,), dtype=np.uint8))
    value[:] = 7
    assert decode(packets(heap)[0])[2] == bytes([7]) * 100


@pytest.mark.parametrize(
    "flavour",
    [F48, F40, spead2.Flavour(4, 64, 40, spead2.BUG_COMPAT_PYSPEAD_0_5_2), spead2.Flavour(4, 64, 56, 0)],
    ids=["48", "40", "pyspead", "56"],
)
def test_descriptors_round_trip(flavour: spead2.Flavour) -> None:
    """Descriptors of every kind, sent and received back into an ItemGroup."""
    descriptors = [
        spead2.Item(0x11, "numpy", "a numpy item", (3, 4), dtype=">i2", order="F"),
        spead2.Item(0x12, "legacy", "legacy fields", (None,), format=[("u", 32), ("f", 64)]),
        spead2.Item(0x13, "text", "", (None,), format=[("c", 8)]),
        spead2.Item(0x14, "record", "rec", (2,), dtype=[("a", "<u2"), ("b", ">f4")]),
    ]
    heap = spead2.send.Heap(flavour)
    for descriptor in descriptors:
        heap.add_descriptor(descriptor)
    config = spead2.recv.StreamConfig(bug_compat=flavour.bug_compat)
    stream = spead2.recv.Stream(spead2.ThreadPool(), config)
    stream.add_buffer_reader(b"".join(packets(heap)))
    group = spead2.ItemGroup()
    for received in stream:
        group.update(received)
    for sent in descriptors:
        got = group[sent.name]
        assert (got.id, got.description, got.shape, got.format, got.order) == (
            sent.id,
            sent.description,
            sent.shape,
            sent.format,
            sent.order,
        )
        assert got.dtype == sent.dtype


def test_bytes_stream_is_packet_generator_output() -> None:
    group = spead2.send.ItemGroup(flavour=F40)
    group.add_item(0x1000, "x", "x", (5000,), np.uint8, value=np.arange(5000, dtype=np.uint8) % 251)
    heap = group.get_heap()
    stream = spead2.send.BytesStream(spead2.ThreadPool(), spead2.send.StreamConfig(max_packet_size=1000))
    stream.set_cnt_sequence(5, 3)
    assert stream.send_heap(heap) == sum(len(p) for p in packets(heap, cnt=5, size=1000))
    stream.send_heap(heap)
    assert stream.getvalue() == b"".join(packets(heap, 5, 1000) + packets(heap, 8, 1000))
