"""Helpers of the chunk-stream tests: hand-built packets and a numba place function."""

from __future__ import annotations

import importlib.util
import struct
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

import spead2
import spead2.recv

#: Heap payload size and heaps per chunk of the tests' layout: heap cnt c goes to chunk c // HEAPS,
#: index c % HEAPS, offset (c % HEAPS) * HEAP_SIZE.
HEAP_SIZE = 16
HEAPS = 4
#: An immediate item whose value 99 makes the place function reject the heap.
REJECT_ID = 0x1234

#: The place function's argument in C (spead2.recv.numba.chunk_place_data's layout), for place
#: functions compiled with cffi.
PLACE_DATA_C = """
#include <stddef.h>
#include <stdint.h>

typedef struct place_data {
    const uint8_t *packet;
    size_t packet_size;
    const int64_t *items;
    int64_t chunk_id;
    size_t heap_index;
    size_t heap_offset;
    uint64_t *batch_stats;
    uint8_t *extra;
    size_t extra_offset;
    size_t extra_size;
} place_data;
"""


#: A place function in C: heap cnt c goes to chunk c / HEAPS, index c % HEAPS, offset
#: index * HEAP_SIZE (macros), shifted by the context's int64 in ``place_context``.
PLACE_C = (
    PLACE_DATA_C
    + """
static void put(place_data *d, int64_t shift)
{
    int64_t cnt = d->items[0] + shift;
    if (cnt < 0)
        return;
    d->chunk_id = cnt / HEAPS;
    d->heap_index = (size_t) (cnt % HEAPS);
    d->heap_offset = d->heap_index * HEAP_SIZE;
}

void place(void *data, size_t size)
{
    if (size == sizeof(place_data))
        put((place_data *) data, 0);
}

void place_context(void *data, size_t size, void *context)
{
    if (size == sizeof(place_data))
        put((place_data *) data, *(const int64_t *) context);
}
"""
)


def compile_place(directory: Path, heaps: int, heap_size: int) -> Any:
    """PLACE_C compiled with cffi for this layout: the module (``lib.place``, ``lib.place_context``)."""
    import cffi

    name = f"_chunk_place_{heaps}_{heap_size}"
    ffi = cffi.FFI()
    ffi.cdef("void place(void *, size_t); void place_context(void *, size_t, void *);")
    ffi.set_source(name, PLACE_C, define_macros=[("HEAPS", str(heaps)), ("HEAP_SIZE", str(heap_size))])
    path = Path(ffi.compile(tmpdir=str(directory)))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules.setdefault(name, module)
    return module


def packet(
    cnt: int, heap_length: int | None, offset: int, payload: bytes, items: Iterable[tuple[int, int]] = ()
) -> bytes:
    """One SPEAD-64-48 packet with immediate items only."""
    pointers = [(1, cnt)] + ([(2, heap_length)] if heap_length is not None else [])
    pointers += [(3, offset), (4, len(payload)), *items]
    out = struct.pack(">BBBBxxH", 0x53, 4, 2, 6, len(pointers))
    for item_id, value in pointers:
        out += struct.pack(">Q", (1 << 63) | (item_id << 48) | value)
    return out + payload


def heap(
    cnt: int, size: int = HEAP_SIZE, per_packet: int | None = None, items: Iterable[tuple[int, int]] = ()
) -> list[bytes]:
    """The packets of a heap of ``size`` bytes, each byte cnt & 0xff."""
    step = per_packet or max(size, 1)
    data = bytes([cnt & 0xFF]) * size
    items = list(items)
    return [packet(cnt, size, o, data[o : o + step], items) for o in range(0, max(size, 1), step)]


def heaps(*cnts: int) -> bytes:
    return b"".join(p for c in cnts for p in heap(c))


def stop_packet() -> bytes:
    return packet(0x7FFF, 0, 0, b"", [(6, 2)])


def make_chunk(extra: bool = True) -> spead2.recv.Chunk:
    return spead2.recv.Chunk(
        present=np.zeros(HEAPS, np.uint8),
        data=np.zeros(HEAPS * HEAP_SIZE, np.uint8),
        extra=np.zeros(HEAPS, np.int64) if extra else None,
    )


def numba_place() -> tuple[Any, ...]:
    """The tests' place function as a numba cfunc in a scipy.LowLevelCallable: items are
    [HEAP_CNT, HEAP_LENGTH, REJECT_ID]; it writes the cnt as 8 bytes of extra, and counts placed
    heaps in the statistic after the chunk ones (when there is one)."""
    import numba
    import scipy
    from numba import types

    from spead2.numba import intp_to_voidptr
    from spead2.recv.numba import chunk_place_data

    @numba.cfunc(types.void(types.CPointer(chunk_place_data), types.size_t), nopython=True)
    def place(data_ptr: Any, data_size: Any) -> None:  # pragma: no cover - compiled
        data = numba.carray(data_ptr, 1)
        items = numba.carray(intp_to_voidptr(data[0].items), 3, dtype=np.int64)
        cnt = items[0]
        if items[2] == 99:
            return
        data[0].chunk_id = cnt // HEAPS
        data[0].heap_index = cnt % HEAPS
        data[0].heap_offset = (cnt % HEAPS) * HEAP_SIZE
        extra = numba.carray(intp_to_voidptr(data[0].extra), 1, dtype=np.int64)
        extra[0] = cnt
        data[0].extra_offset = (cnt % HEAPS) * 8
        data[0].extra_size = 8

    return scipy.LowLevelCallable(place.ctypes, signature="void (void *, size_t)")


def chunk_config(place: Any, max_chunks: int = 2) -> spead2.recv.ChunkStreamConfig:
    return spead2.recv.ChunkStreamConfig(
        items=[spead2.HEAP_CNT_ID, spead2.HEAP_LENGTH_ID, REJECT_ID],
        max_chunks=max_chunks,
        place=place,
        max_heap_extra=8,
    )


def summary(chunk: spead2.recv.Chunk) -> tuple[int, list[int], list[int]]:
    """(chunk_id, present, first byte of each heap's place)."""
    return chunk.chunk_id, list(np.asarray(chunk.present)), list(np.asarray(chunk.data)[::HEAP_SIZE])


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Polls a condition set by another thread (for states no event announces)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.005)
