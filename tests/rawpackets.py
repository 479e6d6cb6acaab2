"""The tests' raw packet builder: packets laid out by hand, for what the receiver must cope
with but the send side's encoder (spead2.send, the project's one encoder) never writes --
every item pointer in the first packet whatever its size, heaps without HEAP_LENGTH
(``heap_length=False``) or without padding (``pad=False``), and any pointer or header by hand
(:func:`pointer`, :func:`packet`).  Valid traffic in tests comes from spead2.send; descriptors
here are encoded by it too.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

import spead2
from spead2._constants import (
    CTRL_STREAM_STOP,
    DESCRIPTOR_ID,
    HEAP_CNT_ID,
    HEAP_LENGTH_ID,
    NULL_ID,
    PAYLOAD_LENGTH_ID,
    PAYLOAD_OFFSET_ID,
    STREAM_CTRL_ID,
)
from spead2.send._heap import encode_descriptor

_Q = struct.Struct(">Q")


def pointer(item_id: int, value: int, immediate: bool, heap_address_bits: int = 40) -> int:
    """One 64-bit item pointer."""
    return (int(immediate) << 63) | (item_id << heap_address_bits) | value


def packet(
    pointers: Sequence[int], payload: bytes = b"", heap_address_bits: int = 40, *, n_items: int | None = None
) -> bytes:
    """A packet from raw pointers and payload (``n_items`` overrides the header's count)."""
    header = (
        (0x53 << 56) | (4 << 48) | (((64 - heap_address_bits) // 8) << 40) | ((heap_address_bits // 8) << 32)
    )
    header |= len(pointers) if n_items is None else n_items
    return _Q.pack(header) + b"".join(_Q.pack(p) for p in pointers) + payload


@dataclass
class Item:
    """An item of a heap: bytes to be addressed in the payload, or an immediate integer."""

    id: int
    value: bytes | int
    immediate: bool = False

    @classmethod
    def array(cls, item_id: int, value: np.ndarray) -> Item:
        return cls(item_id, np.ascontiguousarray(value).tobytes())


@dataclass
class Heap:
    cnt: int
    items: list[Item] = field(default_factory=list)
    descriptors: list[bytes] = field(default_factory=list)


class Encoder:
    """Splits heaps into packets of at most ``max_packet_size`` bytes."""

    def __init__(self, heap_address_bits: int = 40, max_packet_size: int = 1472) -> None:
        if heap_address_bits % 8 or not 0 < heap_address_bits < 64:
            raise ValueError("heap_address_bits must be a multiple of 8 in (0, 64)")
        self.heap_address_bits = heap_address_bits
        self.max_packet_size = max_packet_size

    def _p(self, item_id: int, value: int, immediate: bool) -> int:
        return pointer(item_id, value, immediate, self.heap_address_bits)

    def packets(
        self,
        heap: Heap,
        *,
        repeat_pointers: bool = False,
        heap_length: bool = True,
        pad: bool = True,
        split_at: int | None = None,
    ) -> list[bytes]:
        """The packets of one heap, in order; ``split_at`` ends the first packet's payload there."""
        payload = bytearray()
        pointers: list[int] = []
        for desc in heap.descriptors:
            pointers.append(self._p(DESCRIPTOR_ID, len(payload), False))
            payload += desc
        for item in heap.items:
            if item.immediate:
                assert isinstance(item.value, int)
                pointers.append(self._p(item.id, item.value, True))
            else:
                assert isinstance(item.value, bytes | bytearray)
                pointers.append(self._p(item.id, len(payload), False))
                payload += item.value
        if pad and not payload:
            # A heap with no payload still gets one byte (as common senders do), so that the
            # last item has a length.
            pointers.append(self._p(NULL_ID, 0, False))
            payload += b"\0"
        total = len(payload)

        def fields(offset: int, length: int) -> list[int]:
            f = [self._p(HEAP_CNT_ID, heap.cnt, True)]
            if heap_length:
                f.append(self._p(HEAP_LENGTH_ID, total, True))
            f += [self._p(PAYLOAD_OFFSET_ID, offset, True), self._p(PAYLOAD_LENGTH_ID, length, True)]
            return f

        out = []
        offset = 0
        first = True
        while first or offset < total:
            extra = pointers if first or repeat_pointers else []
            room = self.max_packet_size - 8 - 8 * (len(extra) + 3 + int(heap_length))
            if room <= 0 and total > offset:
                raise ValueError("max_packet_size is too small for the item pointers")
            length = min(room, total - offset)
            if first and split_at is not None:
                length = min(length, split_at)
            out.append(
                packet(
                    fields(offset, length) + extra,
                    bytes(payload[offset : offset + length]),
                    self.heap_address_bits,
                )
            )
            offset += length
            first = False
        return out

    def stream_packets(self, heaps: Iterable[Heap], **kwargs: bool) -> list[bytes]:
        out: list[bytes] = []
        for heap in heaps:
            out += self.packets(heap, **kwargs)
        return out

    def stop_packets(self, cnt: int) -> list[bytes]:
        """A heap holding a stream-control stop item."""
        return self.packets(Heap(cnt, [Item(STREAM_CTRL_ID, CTRL_STREAM_STOP, immediate=True)]))

    def descriptor(
        self,
        item_id: int,
        name: str,
        description: str,
        shape: Sequence[int | None],
        dtype: np.dtype | None = None,
        order: str = "C",
        format: Sequence[tuple[str, int]] | None = None,
    ) -> bytes:
        """A descriptor (itself a packet) with a numpy header, or a legacy format list, as the
        send side encodes it."""
        descriptor = spead2.Descriptor(item_id, name, description, shape, dtype, order, format)
        flavour = spead2.Flavour(4, 64, self.heap_address_bits, 0)
        return encode_descriptor(descriptor.to_raw(flavour), flavour)
