"""Descriptor items: the SPEAD packets inside a DESCRIPTOR_ID item, decoded into RawDescriptors.

The value of a DESCRIPTOR_ID item is itself a small SPEAD stream: normally one packet holding a whole
heap whose items are DESCRIPTOR_ID_ID, NAME, DESCRIPTION, SHAPE, FORMAT and DTYPE.  Like the reference,
the payload is read as a sequence of packets assembled into heaps (in order, one heap at a time), and
every complete heap gives one descriptor.  The packets go through the C kernel (a throwaway in-order
kernel stream): only the descriptor fields are parsed here.  Anything malformed is logged on the
``spead2`` logger (the reference's lines) and skipped; this module never raises on bad input.

The field widths inside a descriptor come from the heap address width in the header of the packet
that carries it, except that ``BUG_COMPAT_DESCRIPTOR_WIDTHS`` (PySPEAD 0.5.2) fixes them to the
SPEAD-64-40 format layout and 64-bit shape entries whatever the flavour.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from spead2._constants import (
    BUG_COMPAT_DESCRIPTOR_WIDTHS,
    BUG_COMPAT_SHAPE_BIT_1,
    DESCRIPTOR_DESCRIPTION_ID,
    DESCRIPTOR_DTYPE_ID,
    DESCRIPTOR_FORMAT_ID,
    DESCRIPTOR_ID_ID,
    DESCRIPTOR_NAME_ID,
    DESCRIPTOR_SHAPE_ID,
)
from spead2._drops import drop_message
from spead2._kernel import ffi, lib
from spead2._kstream import kernel_config, new_stream, pop_heap

_logger = logging.getLogger("spead2")

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


def _int64(value: Any, what: str) -> int:
    value = operator.index(value)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise TypeError(f"{what} must fit in a signed 64-bit integer, not {value}")
    return value


def _check_bytes(value: Any, what: str) -> bytes:
    if not isinstance(value, bytes):
        raise TypeError(f"{what} must be bytes, not {type(value).__name__}")
    return value


class RawDescriptor:
    """A descriptor as it appears on the wire, before interpretation.

    Strings are raw bytes; ``shape`` holds ``None`` for a variable dimension (negative values are
    stored as ``None`` too); ``format`` is a list of ``(code, bits)`` pairs, empty when the
    descriptor uses a numpy header instead.
    """

    __slots__ = ("_description", "_format", "_id", "_name", "_numpy_header", "_shape")
    __module__ = "spead2"

    def __init__(self) -> None:
        self._id = 0
        self._name = b""
        self._description = b""
        self._numpy_header = b""
        self._format: list[tuple[str, int]] = []
        self._shape: list[int | None] = []

    @property
    def id(self) -> int:
        return self._id

    @id.setter
    def id(self, value: int) -> None:
        self._id = _int64(value, "id")

    @property
    def name(self) -> bytes:
        return self._name

    @name.setter
    def name(self, value: bytes) -> None:
        self._name = _check_bytes(value, "name")

    @property
    def description(self) -> bytes:
        return self._description

    @description.setter
    def description(self, value: bytes) -> None:
        self._description = _check_bytes(value, "description")

    @property
    def numpy_header(self) -> bytes:
        return self._numpy_header

    @numpy_header.setter
    def numpy_header(self, value: bytes) -> None:
        self._numpy_header = _check_bytes(value, "numpy_header")

    @property
    def format(self) -> list[tuple[str, int]]:
        return list(self._format)

    @format.setter
    def format(self, value: Iterable[Sequence[Any]]) -> None:
        fields = []
        for code, bits in value:
            if not isinstance(code, str):
                raise TypeError(f"format code must be a str, not {type(code).__name__}")
            if len(code) != 1:
                raise ValueError("Expected a character, but multi-character string found")
            fields.append((code, _int64(bits, "format length")))
        self._format = fields

    @property
    def shape(self) -> list[int | None]:
        return list(self._shape)

    @shape.setter
    def shape(self, value: Iterable[int | None]) -> None:
        dims: list[int | None] = []
        for dim in value:
            if dim is None:
                dims.append(None)
            else:
                dim = _int64(dim, "shape element")
                dims.append(None if dim < 0 else dim)
        self._shape = dims

    def __repr__(self) -> str:
        return (
            f"<RawDescriptor id={self._id:#x} name={self._name!r} shape={self._shape!r} "
            f"format={self._format!r} numpy_header={self._numpy_header!r}>"
        )


# ---------------------------------------------------------------------------------------------
# Heaps: the kernel assembles them (a throwaway in-order stream holding one heap at a time)


@dataclass
class _Item:
    id: int
    is_immediate: bool
    data: bytes


def _items(heap: Any) -> list[_Item]:
    """The items of a finished heap (``sp2_heap *``), in Heap.get_items order."""
    items = []
    for i in range(heap.n_items):
        it = heap.items[i]
        if it.is_immediate:
            data = int(it.value).to_bytes(int(it.length), "big")
        else:
            data = bytes(ffi.buffer(heap.payload + it.value, it.length))
        items.append(_Item(int(it.id), bool(it.is_immediate), data))
    return items


def _log_drop(reason: int, note: Any) -> None:
    level, message = drop_message(reason, note, allow_out_of_order=False)
    _logger.log(level, message)


def _log_new_drops(stream: Any, note: Any) -> None:
    for reason in range(1, lib.SP2_DROP_COUNT):
        # (a gap in a heap is dropped silently here: the reference's descriptor parsing does not
        # log it, though its streams do)
        if lib.sp2_stream_take_drop_note(stream, reason, note) and reason != lib.SP2_DROP_OUT_OF_ORDER:
            _log_drop(reason, note)


def _heaps(data: memoryview) -> Iterator[Any]:
    """Feeds the packets in ``data`` one by one to an in-order kernel stream of one live heap and
    yields its finished heaps (``sp2_heap *``): a heap of unknown length is finished when another
    (or a packet that is a whole heap) replaces it or the data ends; a stream-stop item ends the
    stream (and its heap is dropped).
    A packet that does not decode ends the data; every dropped packet is logged, as the reference
    logs it."""
    size = len(data)
    stream = new_stream(
        kernel_config(max_heaps=1, ring_heaps=4, max_heap_size=max(size, 1), plain_descriptors=1)
    )
    start = ffi.from_buffer(data)
    note = ffi.new("sp2_drop_note *")
    offset = 0
    stopped = False
    drops = 0
    while offset < size and not stopped:
        why = lib.sp2_decode_packet(start + offset, size - offset, 0, ffi.addressof(note, "info"))
        if why != lib.SP2_DROP_NONE:
            note.bytes = size - offset
            note.decoded = 0
            _log_drop(why, note)
            break
        packet_size = int(note.info.size)
        info = note.info
        if info.heap_length >= 0 and info.payload_offset == 0 and info.payload_length == info.heap_length:
            lib.sp2_stream_flush(stream)  # a whole heap replaces the one being assembled
        stopped = lib.sp2_stream_add_datagram(stream, start + offset, packet_size) == lib.SP2_STOPPED
        offset += packet_size
        if lib.sp2_stream_drops_total(stream) != drops:
            drops = lib.sp2_stream_drops_total(stream)
            _log_new_drops(stream, note)
        while (heap := pop_heap(stream)) is not None:
            yield heap
    lib.sp2_stream_stop_received(stream)
    while (heap := pop_heap(stream)) is not None:
        yield heap


# ---------------------------------------------------------------------------------------------
# Descriptors


def _decode_shape(data: bytes, entry_size: int, variable_flag: int) -> list[int | None]:
    shape: list[int | None] = []
    for pos in range(0, len(data) - entry_size + 1, entry_size):
        if data[pos] & variable_flag:
            shape.append(None)
        else:
            shape.append(int.from_bytes(data[pos + 1 : pos + entry_size], "big"))
    return shape


def _decode_format(data: bytes, entry_size: int) -> list[tuple[str, int]]:
    return [
        (chr(data[pos]), int.from_bytes(data[pos + 1 : pos + entry_size], "big"))
        for pos in range(0, len(data) - entry_size + 1, entry_size)
    ]


def _descriptor_from_heap(heap: Any, bug_compat: int) -> RawDescriptor | None:
    items = _items(heap)
    if bug_compat & BUG_COMPAT_DESCRIPTOR_WIDTHS:
        shape_entry, format_entry = 8, 4
    else:
        shape_entry, format_entry = 1 + heap.heap_address_bits // 8, 1 + (64 - heap.heap_address_bits) // 8
    variable_flag = 2 if bug_compat & BUG_COMPAT_SHAPE_BIT_1 else 1

    raw = RawDescriptor()
    descriptor_id: int | None = None
    for item in items:
        if item.id == DESCRIPTOR_ID_ID:
            if item.is_immediate:
                descriptor_id = int.from_bytes(item.data, "big")
            else:
                _logger.info("Ignoring descriptor ID that is not an immediate")
        elif item.id == DESCRIPTOR_NAME_ID:
            raw.name = item.data
        elif item.id == DESCRIPTOR_DESCRIPTION_ID:
            raw.description = item.data
        elif item.id == DESCRIPTOR_SHAPE_ID:
            raw.shape = _decode_shape(item.data, shape_entry, variable_flag)
        elif item.id == DESCRIPTOR_FORMAT_ID:
            raw.format = _decode_format(item.data, format_entry)
        elif item.id == DESCRIPTOR_DTYPE_ID:
            raw.numpy_header = item.data
        else:
            _logger.info("Unrecognised descriptor item ID %#x", item.id)
    if descriptor_id is None:
        _logger.info("incomplete descriptor (no ID)")
        return None
    raw.id = descriptor_id
    if raw.numpy_header:
        # A numpy header describes shape and type by itself: the legacy fields are dropped.
        raw.shape = []
        raw.format = []
    return raw


def parse_descriptors(buffers: Iterable[Any], flavour: Any) -> list[RawDescriptor]:
    """Decodes the values of a heap's DESCRIPTOR_ID items (one buffer each) into RawDescriptors.

    ``flavour`` is the heap's :class:`spead2.Flavour`: its ``bug_compat`` decides the descriptor
    layout.  Malformed packets and descriptors are logged and skipped.
    """
    bug_compat = flavour.bug_compat
    descriptors = []
    for buffer in buffers:
        data = memoryview(buffer).cast("B")
        for heap in _heaps(data):
            raw = _descriptor_from_heap(heap, bug_compat)
            if raw is not None:
                descriptors.append(raw)
    return descriptors
