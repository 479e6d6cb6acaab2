"""Test helpers for the item layer: a stand-in for spead2.recv.Heap, and hand-built SPEAD packets
(whole heaps in one packet, and descriptor payloads in any flavour / bug-compat layout)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import rawpackets

import spead2
from spead2._descriptors import parse_descriptors
from spead2._rawitem import RawItem


class FakeHeap:
    """Has the interface ItemGroup.update uses: ``cnt``, ``flavour``, ``get_items()`` and
    ``get_descriptors()``.  Descriptors are given either already parsed or as the payloads of
    DESCRIPTOR_ID items, which ``get_descriptors`` parses as the real Heap does."""

    def __init__(
        self,
        items: Sequence[RawItem] = (),
        descriptors: Sequence[spead2.RawDescriptor] = (),
        *,
        descriptor_payloads: Sequence[Any] = (),
        cnt: int = 1,
        flavour: spead2.Flavour | None = None,
        start_of_stream: bool = False,
        end_of_stream: bool = False,
    ) -> None:
        self.cnt = cnt
        self.flavour = spead2.Flavour() if flavour is None else flavour
        self._items = list(items)
        self._descriptors = list(descriptors)
        self._descriptor_payloads = list(descriptor_payloads)
        self._start_of_stream = start_of_stream
        self._end_of_stream = end_of_stream

    def get_items(self) -> list[RawItem]:
        return list(self._items)

    def get_descriptors(self) -> list[spead2.RawDescriptor]:
        return self._descriptors + parse_descriptors(self._descriptor_payloads, self.flavour)

    def is_start_of_stream(self) -> bool:
        return self._start_of_stream

    def is_end_of_stream(self) -> bool:
        return self._end_of_stream


def raw(id: int, data: bytes | bytearray) -> RawItem:
    """An addressed raw item over a writable copy of ``data``."""
    return RawItem.from_bytes(id, bytearray(data))


def immediate(id: int, value: int, heap_address_bits: int = 40) -> RawItem:
    return RawItem.immediate(id, value, heap_address_bits)


def raw_descriptor(
    id: int,
    name: bytes = b"x",
    description: bytes = b"",
    shape: Sequence[int | None] = (),
    format: Sequence[tuple[str, int]] = (),
    numpy_header: bytes = b"",
) -> spead2.RawDescriptor:
    rd = spead2.RawDescriptor()
    rd.id = id
    rd.name = name
    rd.description = description
    rd.shape = list(shape)
    rd.format = list(format)
    rd.numpy_header = numpy_header
    return rd


def numpy_header(descr: Any, shape: Sequence[int], fortran_order: bool = False) -> bytes:
    return repr({"descr": descr, "fortran_order": fortran_order, "shape": tuple(shape)}).encode()


# ---------------------------------------------------------------------------------------------
# Hand-built packets

#: An item of a hand-built heap: an int is sent as an immediate, bytes as an addressed item.
ItemSpec = tuple[int, "int | bytes"]

#: A packet size no hand-built heap here reaches: these heaps are fed to decoders, never sent.
_UNBOUNDED = 1 << 40


def pointer(id: int, value: int, immediate: bool, heap_address_bits: int = 40) -> bytes:
    return rawpackets.pointer(id, value, immediate, heap_address_bits).to_bytes(8, "big")


def packet_bytes(pointers: Sequence[bytes], payload: bytes, heap_address_bits: int = 40) -> bytes:
    """A packet from raw pointers and payload (no header items added)."""
    return rawpackets.packet([int.from_bytes(p, "big") for p in pointers], payload, heap_address_bits)


def heap_packets(
    items: Sequence[ItemSpec],
    heap_address_bits: int = 40,
    cnt: int = 1,
    *,
    split_at: int | None = None,
    heap_length: bool = True,
) -> list[bytes]:
    """A heap as one packet (or two, split at payload offset ``split_at``), with the HEAP_CNT,
    HEAP_LENGTH (unless ``heap_length`` is false), PAYLOAD_OFFSET and PAYLOAD_LENGTH items."""
    heap = rawpackets.Heap(cnt, [rawpackets.Item(i, v, immediate=isinstance(v, int)) for i, v in items])
    encoder = rawpackets.Encoder(heap_address_bits, max_packet_size=_UNBOUNDED)
    return encoder.packets(heap, heap_length=heap_length, pad=False, split_at=split_at)


def heap_packet(items: Sequence[ItemSpec], heap_address_bits: int = 40, cnt: int = 1) -> bytes:
    """A whole heap in a single packet."""
    return heap_packets(items, heap_address_bits, cnt)[0]


def descriptor_items(
    id: int,
    name: bytes = b"",
    description: bytes = b"",
    shape: Sequence[int | None] = (),
    format: Sequence[tuple[str, int]] = (),
    dtype: bytes | None = None,
    *,
    heap_address_bits: int = 40,
    bug_compat: int = 0,
) -> list[ItemSpec]:
    """The items of a descriptor heap, laid out as the given flavour and bug_compat say."""
    if bug_compat & spead2.BUG_COMPAT_DESCRIPTOR_WIDTHS:
        format_bytes, shape_bytes = 3, 7
    else:
        format_bytes, shape_bytes = (64 - heap_address_bits) // 8, heap_address_bits // 8
    variable = 2 if bug_compat & spead2.BUG_COMPAT_SHAPE_BIT_1 else 1
    fmt = b"".join(code.encode("latin-1") + bits.to_bytes(format_bytes, "big") for code, bits in format)
    shp = b"".join(
        bytes([variable]) + bytes(shape_bytes) if dim is None else b"\0" + dim.to_bytes(shape_bytes, "big")
        for dim in shape
    )
    items: list[ItemSpec] = [
        (spead2.DESCRIPTOR_ID_ID, id),
        (spead2.DESCRIPTOR_NAME_ID, name),
        (spead2.DESCRIPTOR_DESCRIPTION_ID, description),
        (spead2.DESCRIPTOR_FORMAT_ID, fmt),
        (spead2.DESCRIPTOR_SHAPE_ID, shp),
    ]
    if dtype is not None:
        items.append((spead2.DESCRIPTOR_DTYPE_ID, dtype))
    return items


def descriptor_packet(
    id: int,
    name: bytes = b"",
    description: bytes = b"",
    shape: Sequence[int | None] = (),
    format: Sequence[tuple[str, int]] = (),
    dtype: bytes | None = None,
    *,
    heap_address_bits: int = 40,
    bug_compat: int = 0,
    cnt: int = 1,
) -> bytes:
    """The value of a DESCRIPTOR_ID item: one packet holding the whole descriptor heap."""
    items = descriptor_items(
        id,
        name,
        description,
        shape,
        format,
        dtype,
        heap_address_bits=heap_address_bits,
        bug_compat=bug_compat,
    )
    return heap_packet(items, heap_address_bits, cnt)
