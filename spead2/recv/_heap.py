"""Heap and IncompleteHeap: Python views of the finished heaps the kernel hands out.

A heap owns its kernel struct (``sp2_heap``) through ``ffi.gc``.  Item values are numpy views
of the payload, so the payload must outlive the heap object when views escape: the first call
that exposes the payload makes a cdata of the payload that holds the struct's owner, and every
view keeps that cdata alive through its buffer.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import numpy as np

from spead2._constants import CTRL_STREAM_START, CTRL_STREAM_STOP  # noqa: F401  (documentation)
from spead2._flavour import Flavour
from spead2._items import RawDescriptor
from spead2._kernel import ffi, lib
from spead2._rawitem import RawItem

_flavours: dict[tuple[int, int], Flavour] = {}

# sp2_item as plain fields: id, value, length, is_immediate (then padding).
_ITEM = struct.Struct("=QQQB" + "x" * (ffi.sizeof("sp2_item") - struct.calcsize("=QQQB")))
if [ffi.offsetof("sp2_item", f) for f in ("id", "value", "length", "is_immediate")] != [0, 8, 16, 24]:
    raise ImportError("the kernel's sp2_item layout changed: spead2.recv._heap._ITEM must follow it")


def _flavour(heap_address_bits: int, bug_compat: int) -> Flavour:
    key = (heap_address_bits, bug_compat)
    flavour = _flavours.get(key)
    if flavour is None:
        flavour = _flavours[key] = Flavour._make(heap_address_bits, bug_compat)
    return flavour


class _HeapBase:
    # _owner: the owning cdata of the kernel struct (through which fields are read);
    # _payload: the payload as a numpy array, made on first use.
    __slots__ = ("_owner", "_payload")
    _owner: Any
    _payload: np.ndarray | None

    def __init__(self) -> None:
        raise TypeError(f"{type(self).__name__} objects are made by streams, not constructed")

    @property
    def cnt(self) -> int:
        """Heap identifier."""
        return int(self._owner.cnt)

    @property
    def flavour(self) -> Flavour:
        """SPEAD flavour the heap was encoded with."""
        return _flavour(self._owner.heap_address_bits, self._owner.bug_compat)

    def is_start_of_stream(self) -> bool:
        """True if the heap holds a stream-control start item."""
        return bool(self._owner.start_of_stream)

    def is_end_of_stream(self) -> bool:
        """True if the heap holds a stream-control stop item."""
        return bool(self._owner.end_of_stream)

    def _payload_array(self) -> np.ndarray:
        payload = self._payload
        if payload is None:
            raw = self._owner
            pointer = raw.payload
            if not pointer:
                payload = np.zeros(0, np.uint8)
            else:
                # The payload's cdata holds the struct's owning cdata (through a bound method of
                # it, its "destructor", which does nothing), so every view keeps the struct alive
                # through its buffer.  Cheaper than moving ownership onto the payload's cdata
                # (a cast, a closure and two ffi.gc calls): 1 µs less on the first update of a heap.
                owner = _gc(pointer, raw.__eq__)
                payload = np.frombuffer(ffi.buffer(owner, raw.payload_size), np.uint8)  # dtype=: 140 ns
            self._payload = payload
        return payload

    def _raw_items(self, items: Any, count: int) -> list[RawItem]:
        out: list[RawItem] = []
        if count == 0:
            return out
        hab = self._owner.heap_address_bits
        payload = None
        for i in range(count):
            it = items[i]
            if it.is_immediate:
                out.append(RawItem.immediate(int(it.id), int(it.value), hab))
            else:
                if payload is None:
                    payload = self._payload_array()
                start = int(it.value)
                item = payload[start : start + int(it.length)].view(RawItem)
                item.id = int(it.id)
                out.append(item)
        return out

    def get_items(self) -> list[RawItem]:
        """The heap's raw items (item pointers other than the packet fields, descriptors and
        padding), ordered by address; values are views of the heap's payload."""
        return self._raw_items(self._owner.items, self._owner.n_items)

    def _planned_items(self) -> tuple[list[tuple[int, int, int, int]], Any, int, Any]:
        """What ItemGroup.update's plan needs (spead2._plan.apply): the items as plain tuples
        (id, immediate value or payload offset, length, is_immediate), the payload (a callable),
        heap_address_bits, and a callable making the RawItem of an item by index."""
        raw = self._owner
        n = raw.n_items
        items = raw.items
        records = list(_ITEM.iter_unpack(ffi.buffer(items, n * _ITEM.size))) if n else []
        return records, self._payload_array, raw.heap_address_bits, lambda i: self._raw_items(items + i, 1)[0]


class Heap(_HeapBase):
    """A complete heap (or a contiguous one of unknown length)."""

    __slots__ = ()

    def get_descriptors(self) -> list[RawDescriptor]:
        """The item descriptors the heap carries."""
        raw = self._owner
        if raw.n_descriptors == 0:
            return []
        from spead2._descriptors import parse_descriptors

        return parse_descriptors(self._raw_items(raw.descriptors, raw.n_descriptors), self.flavour)

    def __repr__(self) -> str:
        return f"<spead2.recv.Heap cnt={self.cnt}>"


class IncompleteHeap(_HeapBase):
    """A heap that was evicted or flushed before all its payload arrived.  Its payload is not
    kept: ``get_items`` returns only immediate items."""

    __slots__ = ()

    @property
    def heap_length(self) -> int:
        """Expected payload bytes, or -1 if no packet said."""
        return int(self._owner.heap_length)

    @property
    def received_length(self) -> int:
        """Payload bytes actually received."""
        return int(self._owner.received_length)

    @property
    def payload_ranges(self) -> list[tuple[int, int]]:
        """The received ``[start, end)`` byte ranges (only with incomplete_keep_payload_ranges)."""
        raw = self._owner
        r = raw.ranges
        return [(int(r[2 * i]), int(r[2 * i + 1])) for i in range(raw.n_ranges)]

    def __repr__(self) -> str:
        return f"<spead2.recv.IncompleteHeap cnt={self.cnt} {self.received_length}/{self.heap_length} bytes>"


_new: Callable[[type], Any] = object.__new__
_gc = ffi.gc
_heap_free = lib.sp2_heap_free


def wrap_heap(raw: Any) -> Heap | IncompleteHeap:
    """Owns a heap popped from the kernel's ring (the heap's only constructor: once per heap, so
    without a classmethod call or ``__init__``)."""
    heap: Heap | IncompleteHeap = _new(Heap if raw.complete else IncompleteHeap)
    heap._owner = _gc(raw, _heap_free)
    heap._payload = None
    return heap
