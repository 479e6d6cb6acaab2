"""Drives the C kernel directly (no event loop, no sockets) for tests and the fuzz corpus."""

from __future__ import annotations

from typing import Any

from rawpackets import Encoder, Item, packet, pointer
from rawpackets import Heap as EncHeap

from spead2._drops import drops_from_kernel
from spead2._kernel import ffi, lib
from spead2._kstream import kernel_config, new_stream
from spead2.recv._config import CORE_STATS as CORE_STAT_CONFIGS
from spead2.recv._heap import Heap, IncompleteHeap, wrap_heap

__all__ = ["EncHeap", "Encoder", "Item", "Kernel", "packet", "pointer"]

CORE_STATS = tuple(stat.name for stat in CORE_STAT_CONFIGS)


class Kernel:
    """One kernel stream, configured by keyword (fields of sp2_config)."""

    def __init__(self, allocator: Any = None, **config: Any) -> None:
        handle = allocator._handle if allocator is not None else None
        self.stream = new_stream(kernel_config(**config), handle)

    def datagram(self, data: bytes) -> int:
        return int(lib.sp2_stream_add_datagram(self.stream, data, len(data)))

    def datagrams(self, packets: list[bytes]) -> tuple[int, int]:
        ptrs = ffi.new("const uint8_t *[]", [ffi.from_buffer(p) for p in packets])
        sizes = ffi.new("size_t[]", [len(p) for p in packets])
        consumed = ffi.new("size_t *")
        status = lib.sp2_stream_add_datagrams(self.stream, ptrs, sizes, len(packets), consumed)
        return int(status), int(consumed[0])

    def feed(self, data: bytes, max_packet: int = 0) -> tuple[int, int]:
        consumed = ffi.new("size_t *")
        status = lib.sp2_stream_add_bytes(self.stream, ffi.from_buffer(data), len(data), max_packet, consumed)
        return int(status), int(consumed[0])

    def stop(self) -> None:
        lib.sp2_stream_stop_received(self.stream)

    def pop(self) -> Heap | IncompleteHeap | None:
        raw = lib.sp2_ring_pop(self.stream, 0)
        return None if raw == ffi.NULL else wrap_heap(raw)

    def heaps(self) -> list[Heap | IncompleteHeap]:
        out = []
        while (heap := self.pop()) is not None:
            out.append(heap)
        return out

    def stats(self) -> dict[str, int]:
        raw = ffi.new("sp2_stats *")
        lib.sp2_stream_get_stats(self.stream, raw)
        stats = {name: int(getattr(raw, name)) for name in CORE_STATS}
        stats.update({f"drop_{name}": n for name, n in drops_from_kernel(raw.drops).items()})
        return stats

    def drops(self) -> dict[str, int]:
        return {k[5:]: v for k, v in self.stats().items() if k.startswith("drop_") and v}


def items_of(heap: Heap | IncompleteHeap) -> list[tuple[int, bool, bytes]]:
    return [(it.id, it.is_immediate, bytes(it)) for it in heap.get_items()]
