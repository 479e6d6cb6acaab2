"""Heaps to send: Heap, HeapReference, HeapReferenceList, PacketGenerator.

A Heap lists items by reference (numpy buffers are not copied) and builds its C description
(``sp2_send_heap``) once, when it is first sent; adding to the heap afterwards rebuilds it.  The
C packet iterator (``spead2/_native/packetize.c``) is the project's only SPEAD encoder; the
descriptor items inside a heap are encoded by it too.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from spead2._constants import (
    BUG_COMPAT_DESCRIPTOR_WIDTHS,
    BUG_COMPAT_SHAPE_BIT_1,
    CTRL_STREAM_START,
    CTRL_STREAM_STOP,
    DESCRIPTOR_DESCRIPTION_ID,
    DESCRIPTOR_DTYPE_ID,
    DESCRIPTOR_FORMAT_ID,
    DESCRIPTOR_ID,
    DESCRIPTOR_ID_ID,
    DESCRIPTOR_NAME_ID,
    DESCRIPTOR_SHAPE_ID,
    STREAM_CTRL_ID,
)
from spead2._flavour import Flavour
from spead2._kernel import ffi, lib

#: Messages of the C encoder's errors (sp2_send_error), as the reference words them.
_ENCODE_ERRORS = {
    lib.SP2_SEND_PACKET_TOO_SMALL: "packet size is too small",
    lib.SP2_SEND_REPEAT_TOO_SMALL: "packet size is too small to repeat item pointers",
    lib.SP2_SEND_HEAP_TOO_LARGE: "heap is too large for the flavour's heap address width",
    lib.SP2_SEND_ID_TOO_LARGE: "item ID is too large for the flavour",
    lib.SP2_SEND_IMMEDIATE_TOO_LARGE: "immediate value is too large for the flavour",
}


def encode_error(status: int) -> ValueError:
    """The error for an ``sp2_send_error`` status."""
    return ValueError(_ENCODE_ERRORS.get(status, f"heap cannot be encoded (status {status})"))


def init_packet_iter(it: Any, heap: Heap, cnt: int, max_packet_size: int) -> None:
    """Prepares the C iterator ``it`` over ``heap``; raises ValueError if it cannot be encoded."""
    status = lib.sp2_packet_iter_init(it, heap._c_heap(), cnt, max_packet_size)
    if status != lib.SP2_SEND_OK:
        raise encode_error(status)


class _Entry:
    """One item pointer of a heap: an immediate value, or a buffer addressed in the payload."""

    __slots__ = ("buffer", "id", "immediate")

    def __init__(self, item_id: int, immediate: int | None, buffer: Any = None) -> None:
        self.id = item_id
        self.immediate = immediate
        self.buffer = buffer


def _as_buffer(value: Any) -> Any:
    """A contiguous buffer over ``value`` (the same memory where it already is contiguous)."""
    if isinstance(value, np.ndarray):
        return value if value.flags.c_contiguous else np.ascontiguousarray(value)
    view = memoryview(value)
    return value if view.c_contiguous else bytes(view)


class Heap:
    """A heap to send: items (by reference), descriptors and stream control items."""

    __module__ = "spead2.send"

    def __init__(self, flavour: Flavour = Flavour()) -> None:  # noqa: B008 - Flavour is immutable
        if not isinstance(flavour, Flavour):
            raise TypeError(f"flavour must be a spead2.Flavour, not {type(flavour).__name__}")
        self._flavour = flavour
        self._entries: list[_Entry] = []
        self._repeat_pointers = False
        self._c: tuple[Any, ...] | None = None

    @property
    def flavour(self) -> Flavour:
        return self._flavour

    @property
    def repeat_pointers(self) -> bool:
        """Whether every packet carries all the item pointers (default False)."""
        return self._repeat_pointers

    @repeat_pointers.setter
    def repeat_pointers(self, value: bool) -> None:
        self._repeat_pointers = bool(value)
        self._c = None

    def _add(self, entry: _Entry) -> None:
        self._entries.append(entry)
        self._c = None

    def add_item(self, item: Any) -> None:
        """Adds an item's current value, by reference (no descriptor is sent with it)."""
        buffer = _as_buffer(item.to_buffer())
        size = memoryview(buffer).nbytes
        item_id = operator.index(item.id)
        if item.allow_immediate() and size <= self._flavour.heap_address_bits // 8:
            raw = memoryview(buffer).tobytes()
            self._add(_Entry(item_id, int.from_bytes(raw, "big")))
        else:
            self._add(_Entry(item_id, None, buffer))

    def add_descriptor(self, descriptor: Any) -> None:
        """Adds a descriptor (the item's metadata, encoded as the SPEAD spec says)."""
        if not 0 <= operator.index(descriptor.id) < 1 << (63 - self._flavour.heap_address_bits):
            raise ValueError("Item ID out of range")
        encoded = encode_descriptor(descriptor.to_raw(self._flavour), self._flavour)
        self._add(_Entry(DESCRIPTOR_ID, None, encoded))

    def add_start(self) -> None:
        """Adds a start-of-stream control item."""
        self._add(_Entry(STREAM_CTRL_ID, CTRL_STREAM_START))

    def add_end(self) -> None:
        """Adds an end-of-stream control item."""
        self._add(_Entry(STREAM_CTRL_ID, CTRL_STREAM_STOP))

    def _c_heap(self) -> Any:
        """The C description of the heap (``sp2_send_heap *``), built once per change."""
        if self._c is None:
            self._c = _build_c_heap(self._entries, self._flavour.heap_address_bits, self._repeat_pointers)
        return self._c[0]

    def __repr__(self) -> str:
        return f"<spead2.send.Heap with {len(self._entries)} items>"


def _build_c_heap(
    entries: Sequence[_Entry], heap_address_bits: int, repeat_pointers: bool
) -> tuple[Any, ...]:
    items = ffi.new("sp2_send_item[]", max(1, len(entries)))
    keep: list[Any] = [items]
    for c_item, entry in zip(items, entries, strict=False):
        c_item.id = entry.id
        if entry.immediate is not None:
            c_item.is_immediate = 1
            c_item.immediate = entry.immediate
        else:
            data = ffi.from_buffer("uint8_t[]", entry.buffer)
            keep.append(data)
            c_item.data = data
            c_item.length = len(data)
    heap = ffi.new("sp2_send_heap *")
    heap.items = items
    heap.n_items = len(entries)
    heap.heap_address_bits = heap_address_bits
    heap.repeat_pointers = repeat_pointers
    return (heap, keep, list(entries))


# ---------------------------------------------------------------------------------------------
# Descriptors: a DESCRIPTOR_ID item's value is itself a SPEAD packet (heap cnt 1) holding the
# descriptor's fields.


def _field_widths(flavour: Flavour) -> tuple[int, int]:
    """Bytes per shape entry and per format entry."""
    if flavour.bug_compat & BUG_COMPAT_DESCRIPTOR_WIDTHS:
        return 8, 4
    hab = flavour.heap_address_bits
    return 1 + hab // 8, 1 + (64 - hab) // 8


def encode_descriptor(raw: Any, flavour: Flavour) -> bytes:
    shape_entry, format_entry = _field_widths(flavour)
    variable = 2 if flavour.bug_compat & BUG_COMPAT_SHAPE_BIT_1 else 1
    shape = b"".join(
        bytes([variable]) + bytes(shape_entry - 1)
        if dim is None
        else b"\0" + operator.index(dim).to_bytes(shape_entry - 1, "big")
        for dim in raw.shape
    )
    format_ = b"".join(
        code.encode("ascii") + bits.to_bytes(format_entry - 1, "big") for code, bits in raw.format
    )
    entries = [
        _Entry(DESCRIPTOR_ID_ID, raw.id),
        _Entry(DESCRIPTOR_NAME_ID, None, raw.name),
        _Entry(DESCRIPTOR_DESCRIPTION_ID, None, raw.description),
        _Entry(DESCRIPTOR_FORMAT_ID, None, format_),
        _Entry(DESCRIPTOR_SHAPE_ID, None, shape),
    ]
    if raw.numpy_header:
        entries.append(_Entry(DESCRIPTOR_DTYPE_ID, None, raw.numpy_header))
    heap, _keep, _ = _build_c_heap(entries, flavour.heap_address_bits, False)
    payload = sum(len(e.buffer) for e in entries if e.buffer is not None)
    # One packet holds it all: room for the header, every pointer and the payload.
    packet_size = 8 * (len(entries) + 8) + payload + 8
    it = ffi.new("sp2_packet_iter *")
    lib.sp2_packet_iter_init(it, heap, 1, packet_size)
    out = ffi.new("uint8_t[]", packet_size)
    size = lib.sp2_packet_iter_next_copy(it, out)
    return ffi.buffer(out, size)[:]


# ---------------------------------------------------------------------------------------------


class HeapReference:
    """A heap with the cnt, substream and rate to send it with (for ``send_heaps``)."""

    __module__ = "spead2.send"
    __slots__ = ("_heap", "cnt", "rate", "substream_index")

    def __init__(self, heap: Heap, *, cnt: int = -1, substream_index: int = 0, rate: float = -1.0) -> None:
        if not isinstance(heap, Heap):
            raise TypeError(f"heap must be a spead2.send.Heap, not {type(heap).__name__}")
        self._heap = heap
        self.cnt = operator.index(cnt)
        self.substream_index = operator.index(substream_index)
        self.rate = float(rate)

    @property
    def heap(self) -> Heap:
        return self._heap


class HeapReferenceList:
    """An immutable list of HeapReferences, converted once and reusable; slicing gives another."""

    __module__ = "spead2.send"

    def __init__(self, heaps: Sequence[HeapReference]) -> None:
        refs = list(heaps)
        for ref in refs:
            if not isinstance(ref, HeapReference):
                raise TypeError(f"expected HeapReference, not {type(ref).__name__}")
        self._refs = tuple(refs)

    def __len__(self) -> int:
        return len(self._refs)

    def __getitem__(self, index: slice) -> HeapReferenceList:
        if not isinstance(index, slice):
            raise TypeError("HeapReferenceList can only be indexed with a slice")
        return HeapReferenceList(self._refs[index])


class PacketGenerator:
    """The packets of one heap, as ``bytes``, for sending them by other means."""

    __module__ = "spead2.send"

    def __init__(self, heap: Heap, cnt: int, max_packet_size: int) -> None:
        cnt = operator.index(cnt)
        max_packet_size = operator.index(max_packet_size)
        if cnt < 0 or max_packet_size < 0:
            raise TypeError("cnt and max_packet_size must be non-negative integers")
        if cnt >= 1 << heap.flavour.heap_address_bits:
            raise ValueError("cnt is out of range")
        self._heap = heap
        self._it = ffi.new("sp2_packet_iter *")
        init_packet_iter(self._it, heap, cnt, max_packet_size)
        self._buffer = ffi.new("uint8_t[]", self._it.packet_size)

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        size = lib.sp2_packet_iter_next_copy(self._it, self._buffer)
        if size == 0:
            raise StopIteration
        return ffi.buffer(self._buffer, size)[:]
