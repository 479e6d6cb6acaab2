"""Descriptor items: the SPEAD packets inside a DESCRIPTOR_ID item, decoded into RawDescriptors.

The value of a DESCRIPTOR_ID item is itself a small SPEAD stream: normally one packet holding a whole
heap whose items are DESCRIPTOR_ID_ID, NAME, DESCRIPTION, SHAPE, FORMAT and DTYPE.  Like the reference,
the payload is read as a sequence of packets assembled into heaps (in order, one heap at a time), and
every complete heap gives one descriptor.  Anything malformed is logged on the ``spead2`` logger and
skipped; this module never raises on bad input.

The field widths inside a descriptor come from the heap address width in the header of the packet
that carries it, except that ``BUG_COMPAT_DESCRIPTOR_WIDTHS`` (PySPEAD 0.5.2) fixes them to the
SPEAD-64-40 format layout and 64-bit shape entries whatever the flavour.
"""

from __future__ import annotations

import logging
import operator
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from spead2._constants import (
    BUG_COMPAT_DESCRIPTOR_WIDTHS,
    BUG_COMPAT_SHAPE_BIT_1,
    CTRL_STREAM_STOP,
    DESCRIPTOR_DESCRIPTION_ID,
    DESCRIPTOR_DTYPE_ID,
    DESCRIPTOR_FORMAT_ID,
    DESCRIPTOR_ID_ID,
    DESCRIPTOR_NAME_ID,
    DESCRIPTOR_SHAPE_ID,
    HEAP_CNT_ID,
    HEAP_LENGTH_ID,
    NULL_ID,
    PAYLOAD_LENGTH_ID,
    PAYLOAD_OFFSET_ID,
    STREAM_CTRL_ID,
)

_logger = logging.getLogger("spead2")

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_IMMEDIATE_BIT = 1 << 63
_HEADER_SIZE = 8
_MAGIC = 0x53
_VERSION = 4


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
# Packets


@dataclass
class _Packet:
    heap_cnt: int
    heap_length: int  # -1 when the packet has no HEAP_LENGTH
    payload_offset: int
    payload_length: int
    heap_address_bits: int
    pointers: list[int]  # raw 64-bit item pointers, header items (ids 1-4) removed
    payload: memoryview
    size: int  # bytes the packet takes in the buffer

    @property
    def is_whole_heap(self) -> bool:
        return self.heap_length >= 0 and self.payload_offset == 0 and self.payload_length == self.heap_length

    def has_stream_stop(self) -> bool:
        return _has_stream_stop(self.pointers, self.heap_address_bits)


def _id_mask(heap_address_bits: int) -> int:
    return (1 << (63 - heap_address_bits)) - 1


def _has_stream_stop(pointers: list[int], heap_address_bits: int) -> bool:
    """Whether the pointers hold an immediate STREAM_CTRL item with value CTRL_STREAM_STOP."""
    stop = _IMMEDIATE_BIT | (STREAM_CTRL_ID << heap_address_bits) | CTRL_STREAM_STOP
    return stop in pointers


def _decode_packet(data: memoryview) -> _Packet | str:
    """Decodes the packet at the start of ``data``, or says why it is rejected."""
    size = len(data)
    if size < _HEADER_SIZE:
        return f"packet rejected because too small ({size} bytes)"
    if data[0] != _MAGIC or data[1] != _VERSION:
        return "packet rejected because magic or version did not match"
    item_pointer_bits = (data[2] + data[3]) * 8
    heap_address_bits = data[3] * 8
    if heap_address_bits == 0 or heap_address_bits >= item_pointer_bits:
        return "packet rejected because flavour is invalid"
    if item_pointer_bits != 64:
        return "packet rejected because flavour is not SPEAD-64-*"
    n_items = int.from_bytes(data[6:8], "big")
    header_end = _HEADER_SIZE + 8 * n_items
    if header_end > size:
        return "packet rejected because the items overflow the packet"

    address_mask = (1 << heap_address_bits) - 1
    id_mask = _id_mask(heap_address_bits)
    heap_cnt = heap_length = payload_offset = payload_length = -1
    pointers = []
    for word in struct.unpack_from(f">{n_items}Q", data, _HEADER_SIZE):
        item_id = (word >> heap_address_bits) & id_mask
        if HEAP_CNT_ID <= item_id <= PAYLOAD_LENGTH_ID:
            if word & _IMMEDIATE_BIT:
                value = word & address_mask
                if item_id == HEAP_CNT_ID:
                    heap_cnt = value
                elif item_id == HEAP_LENGTH_ID:
                    heap_length = value
                elif item_id == PAYLOAD_OFFSET_ID:
                    payload_offset = value
                else:
                    payload_length = value
        else:
            pointers.append(word)
    if heap_cnt < 0 or payload_offset < 0 or payload_length < 0:
        return "packet rejected because it does not have required items"
    packet_size = header_end + payload_length
    if packet_size > size:
        return f"packet rejected because payload length overflows packet size ({packet_size} > {size})"
    if heap_length >= 0 and payload_offset + payload_length > heap_length:
        return "packet rejected because payload would overflow given heap length"
    return _Packet(
        heap_cnt=heap_cnt,
        heap_length=heap_length,
        payload_offset=payload_offset,
        payload_length=payload_length,
        heap_address_bits=heap_address_bits,
        pointers=pointers,
        payload=data[header_end:packet_size],
        size=packet_size,
    )


# ---------------------------------------------------------------------------------------------
# Heaps


@dataclass
class _Heap:
    """A heap being assembled from in-order packets."""

    cnt: int
    heap_length: int
    heap_address_bits: int
    received: int = 0
    pointers: list[int] = field(default_factory=list)
    chunks: list[bytes] = field(default_factory=list)

    @classmethod
    def start(cls, packet: _Packet) -> _Heap:
        heap = cls(packet.heap_cnt, packet.heap_length, packet.heap_address_bits)
        heap.add(packet)
        return heap

    def add(self, packet: _Packet) -> None:
        self.pointers.extend(packet.pointers)
        self.chunks.append(bytes(packet.payload))
        self.received += packet.payload_length

    @property
    def is_complete(self) -> bool:
        return self.heap_length >= 0 and self.received == self.heap_length

    def has_stream_stop(self) -> bool:
        return _has_stream_stop(self.pointers, self.heap_address_bits)


@dataclass
class _Item:
    id: int
    is_immediate: bool
    data: bytes


def _heap_items(heap: _Heap) -> list[_Item] | None:
    """The items of a finished heap, in the reference's order (addressed items by address, then
    immediates by value), or None when an item points beyond the payload."""
    hab = heap.heap_address_bits
    address_mask = (1 << hab) - 1
    id_mask = _id_mask(hab)
    payload = b"".join(heap.chunks)
    # A stable sort on (immediate flag, address/value), as the reference orders Heap.get_items().
    words = sorted(heap.pointers, key=lambda w: w & (_IMMEDIATE_BIT | address_mask))
    addressed = [w for w in words if not w & _IMMEDIATE_BIT]
    if any(w & address_mask > len(payload) for w in addressed):
        return None
    bounds = pairwise([*(w & address_mask for w in addressed), len(payload)])
    items = []
    for word, (start, end) in zip(addressed, bounds, strict=True):
        item_id = (word >> hab) & id_mask
        if item_id != NULL_ID and end > start:
            items.append(_Item(item_id, False, payload[start:end]))
    for word in words[len(addressed) :]:
        item_id = (word >> hab) & id_mask
        if item_id != NULL_ID:
            items.append(_Item(item_id, True, (word & address_mask).to_bytes(hab // 8, "big")))
    return items


def _heaps(data: memoryview) -> Iterator[_Heap]:
    """Splits a buffer into packets and assembles them into heaps, as an in-order stream holding
    one heap at a time does: a packet that is a whole heap by itself is finished at once, a packet
    for another heap replaces the heap being assembled, and a stream-stop item ends the stream (the
    heap that holds it is dropped if it completes).  A heap of unknown length is finished when it
    is replaced or the stream ends."""
    live: _Heap | None = None
    offset = 0
    while offset < len(data):
        decoded = _decode_packet(data[offset:])
        if isinstance(decoded, str):
            _logger.info(decoded)
            break
        packet = decoded
        offset += packet.size
        finished: _Heap | None = None
        if packet.is_whole_heap:
            if live is not None and live.heap_length < 0:
                yield live
            live = None
            finished = _Heap.start(packet)
        elif live is not None and live.cnt == packet.heap_cnt:
            if packet.heap_length >= 0 and live.heap_length >= 0 and packet.heap_length != live.heap_length:
                _logger.info("packet rejected because its HEAP_LEN is inconsistent with the heap")
                continue
            if packet.payload_offset < live.received:
                _logger.warning(
                    "packet rejected because it is out-of-order in the heap "
                    "(you might need to set allow_out_of_order to false in the stream config)"
                )
                continue
            if packet.payload_offset > live.received:
                continue  # a gap: silently dropped, and the heap can no longer complete
            if live.heap_length < 0:
                live.heap_length = packet.heap_length
            live.add(packet)
        elif packet.payload_offset != 0:
            # The start of this heap was missed: an in-order stream drops the rest of it.
            continue
        else:
            if live is not None and live.heap_length < 0:
                yield live
            live = _Heap.start(packet)
        if live is not None and live.is_complete:
            finished, live = live, None
        if finished is not None and not finished.has_stream_stop():
            yield finished
        if packet.has_stream_stop():
            break
    if live is not None and live.heap_length < 0:
        yield live


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


def _descriptor_from_heap(heap: _Heap, bug_compat: int) -> RawDescriptor | None:
    items = _heap_items(heap)
    if items is None:
        return None
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
