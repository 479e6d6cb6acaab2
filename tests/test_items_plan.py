"""ItemGroup.update on received heaps (the planned fast path, spead2._plan) gives exactly what the
generic path gives on the same raw items: values, types, layouts, versions, errors and notes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fakeheap import FakeHeap
from kernel_harness import EncHeap, Encoder, Item

import spead2
import spead2.recv

F32x4, I16_F, F8, U48, I12, LABEL, CODE5, U8, NIBBLES, SHORT, REC, I40, U20 = range(0x1000, 0x100D)
REC_DTYPE = np.dtype([("a", "<u2"), ("b", ">f4")])


def descriptors(enc: Encoder) -> list[bytes]:
    d = enc.descriptor
    return [
        d(F32x4, "f32x4", "", (4,), dtype=np.dtype("<f4")),
        d(I16_F, "i16_f", "", (2, 3), dtype=np.dtype(">i2"), order="F"),
        d(F8, "f8", "", (), dtype=np.dtype("<f8")),
        d(U48, "u48", "", (), format=[("u", 48)]),
        d(I12, "i12", "", (), format=[("i", 12)]),
        d(LABEL, "label", "", (None,), format=[("c", 8)]),
        d(CODE5, "code5", "", (5,), format=[("c", 8)]),
        d(U8, "u8", "", (), format=[("u", 8)]),
        d(NIBBLES, "nibbles", "", (2,), format=[("u", 4), ("i", 4)]),
        d(SHORT, "short", "", (8,), dtype=np.dtype("<f4")),
        d(REC, "rec", "", (2,), dtype=REC_DTYPE),
        d(I40, "i40", "", (), format=[("i", 40)]),
        d(U20, "u20", "", (), format=[("u", 20)]),
    ]


def good_items(i: int) -> list[Item]:
    return [
        Item.array(F32x4, np.arange(4, dtype="<f4") + i),
        Item.array(I16_F, np.arange(6, dtype=">i2") - i),
        Item.array(F8, np.array(i / 3, "<f8")),
        Item(U48, ((1 << 47) + i).to_bytes(6, "big")),
        Item(I12, (0xFFE0 - 16 * i).to_bytes(2, "big")),  # 12 bits, then 4 of padding
        Item(LABEL, b"heap\0 %d\0" % i),
        Item(CODE5, b"ab\0cdXYZ"),
        Item(U8, 200 + i, immediate=True),
        Item(NIBBLES, bytes([0x1F, 0x8E])),
        Item(REC, np.array([(i, 1.5), (2, -i)], REC_DTYPE).tobytes()),
        Item(I40, (1 << 40) - 1 - i, immediate=True),
        Item(U20, 0x12345 + i, immediate=True),
    ]


def receive(heaps: list[EncHeap]) -> list[Any]:
    data = b"".join(Encoder().stream_packets(heaps))
    stream = spead2.recv.Stream(spead2.ThreadPool(), spead2.recv.StreamConfig(max_heaps=4))
    stream.add_buffer_reader(data)
    return list(stream)


def outcome(group: spead2.ItemGroup, heap: Any, new_order: str) -> Any:
    try:
        updated = group.update(heap, new_order)
    except Exception as exc:
        return ("error", type(exc), str(exc), getattr(exc, "__notes__", None))
    return [(name, item.version, describe(item.value)) for name, item in updated.items()]


def describe(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        flags = (value.flags.c_contiguous, value.flags.f_contiguous)
        return ("array", value.dtype, value.shape, flags, value.tobytes())
    return (type(value), value.tobytes() if isinstance(value, np.generic) else value)


def as_fake(heap: Any) -> FakeHeap:
    return FakeHeap(heap.get_items(), heap.get_descriptors(), cnt=heap.cnt, flavour=heap.flavour)


@pytest.mark.parametrize("new_order", ["=", "|", ">", "<", "x"])
def test_planned_update_matches_the_generic_one(new_order: str) -> None:
    enc = Encoder()
    heaps = [EncHeap(1, good_items(1), descriptors(enc))]
    heaps += [EncHeap(c, good_items(c)) for c in range(2, 5)]
    heaps.append(EncHeap(5, [Item(SHORT, bytes(12))]))  # 3 floats for 8: an error
    heaps.append(EncHeap(6, [Item(F8, 7, immediate=True)]))  # 5 bytes for 8: an error
    heaps.append(EncHeap(7, [Item(0x1234, b"x"), Item(F32x4, bytes(16))]))  # no descriptor
    heaps.append(EncHeap(8, [Item(I12, b"")]))  # an empty value: an error
    heaps.append(EncHeap(9, good_items(9)))
    received = receive(heaps)
    assert [h.cnt for h in received] == list(range(1, 10))
    fast, slow = spead2.ItemGroup(), spead2.ItemGroup()
    for heap in received:
        assert outcome(fast, heap, new_order) == outcome(slow, as_fake(heap), new_order)
        assert {n: i.version for n, i in fast.items()} == {n: i.version for n, i in slow.items()}


def test_a_changed_shape_is_planned_again() -> None:
    enc = Encoder()
    received = receive([EncHeap(c, good_items(c), descriptors(enc) if c == 1 else []) for c in (1, 2)])
    fast, slow = spead2.ItemGroup(), spead2.ItemGroup()
    assert outcome(fast, received[0], "=") == outcome(slow, as_fake(received[0]), "=")
    for group in (fast, slow):
        group["f32x4"].shape = (2, 2)
    assert outcome(fast, received[1], "=") == outcome(slow, as_fake(received[1]), "=")
    assert fast["f32x4"].value.shape == (2, 2)


def test_values_are_views_of_the_heap() -> None:
    enc = Encoder()
    (heap,) = receive([EncHeap(1, good_items(1), descriptors(enc))])
    group = spead2.ItemGroup()
    group.update(heap, "|")  # as received: no byte order conversion
    payload = heap._payload_array()
    for name in ("f32x4", "i16_f", "rec"):
        assert np.shares_memory(group[name].value, payload)
    del heap, payload
    np.testing.assert_array_equal(group["f32x4"].value, np.arange(4) + 1)  # still alive
