"""MemoryAllocator, MmapAllocator and MemoryPool."""

from __future__ import annotations

import gc
import logging
import time

import pytest
from kernel_harness import EncHeap, Encoder, Item

import spead2
import spead2.recv
from spead2._kernel import ffi, lib
from spead2.recv import RingStreamConfig, StreamConfig

ENC = Encoder()


def stream_bytes(n: int, size: int) -> bytes:
    return b"".join(
        ENC.stream_packets([EncHeap(c, [Item(0x1000, bytes([c]) * size)]) for c in range(1, n + 1)])
    )


def roundtrip(allocator: spead2.MemoryAllocator, size: int) -> None:
    token = ffi.new("void **")
    ptr = lib.sp2_allocator_alloc(allocator._handle, size, token)
    assert ptr != ffi.NULL
    ffi.memmove(ptr, b"x" * size, size)
    lib.sp2_allocator_free(allocator._handle, ptr, size, token[0])


@pytest.mark.parametrize(
    "allocator",
    [
        spead2.MemoryAllocator(),
        spead2.MmapAllocator(),
        spead2.MmapAllocator(0, True),
        spead2.MmapAllocator(flags=0),
    ],
)
def test_allocators_allocate(allocator: spead2.MemoryAllocator) -> None:
    for size in (1, 4096, 100_000, 3 << 20):
        roundtrip(allocator, size)


@pytest.mark.parametrize("allocator", [spead2.MemoryAllocator(), spead2.MmapAllocator(prefer_huge=True)])
def test_streams_decode_with_any_allocator(
    thread_pool: spead2.ThreadPool, allocator: spead2.MemoryAllocator
) -> None:
    stream = spead2.recv.Stream(thread_pool, StreamConfig(memory_allocator=allocator))
    stream.add_buffer_reader(stream_bytes(20, 50_000))
    heaps = list(stream)
    assert [bytes(h.get_items()[0][:1]) for h in heaps] == [bytes([c]) for c in range(1, 21)]


def test_pool_constructor_forms() -> None:
    assert spead2.MemoryPool(10, 20, 4, 2)._free_count == 2
    assert spead2.MemoryPool(lower=10, upper=20, max_free=4, initial=3)._free_count == 3
    assert spead2.MemoryPool(10, 20, 4, 2, spead2.MmapAllocator())._free_count == 2
    assert spead2.MemoryPool(10, 20, 4, 2, allocator=None)._free_count == 2
    with spead2.ThreadPool() as tp:
        assert spead2.MemoryPool(tp, 10, 20, 4, 2, 1)._free_count == 2
        assert spead2.MemoryPool(thread_pool=tp, lower=10, upper=20, max_free=4, initial=2, low_water=1)
    # like the reference, no consistency checks between the sizes
    spead2.MemoryPool(20, 10, 4, 2)
    spead2.MemoryPool(0, 0, 0, 0)
    with pytest.raises(TypeError):
        spead2.MemoryPool(-1, 10, 4, 2)
    with pytest.raises(TypeError):
        spead2.MemoryPool(1, 10, 4, 2, allocator=object())  # type: ignore[arg-type]


def test_pool_serves_its_range_and_keeps_at_most_max_free() -> None:
    pool = spead2.MemoryPool(100, 200, 3, 1)
    token = ffi.new("void **")
    ptrs = []
    for _ in range(5):
        ptr = lib.sp2_allocator_alloc(pool._handle, 150, token)
        ptrs.append((ptr, token[0]))
    assert pool._free_count == 0
    for ptr, tok in ptrs:
        lib.sp2_allocator_free(pool._handle, ptr, 150, tok)
    assert pool._free_count == 3
    roundtrip(pool, 50)  # outside the range: straight to the underlying allocator
    roundtrip(pool, 500)
    assert pool._free_count == 3


def test_pool_warns_when_empty(caplog: pytest.LogCaptureFixture, thread_pool: spead2.ThreadPool) -> None:
    pool = spead2.MemoryPool(1000, 2000, 2, 0)
    assert pool.warn_on_empty is True
    stream = spead2.recv.Stream(thread_pool, StreamConfig(memory_allocator=pool), RingStreamConfig(heaps=10))
    with caplog.at_level(logging.WARNING, logger="spead2"):
        stream.add_buffer_reader(stream_bytes(3, 1500))
        heaps = list(stream)
    assert len(heaps) == 3
    assert any("memory pool was empty" in r.getMessage() for r in caplog.records)
    pool.warn_on_empty = False
    assert pool.warn_on_empty is False
    before = pool._empty_events
    roundtrip(pool, 1500)
    roundtrip(pool, 1500)
    assert pool._empty_events == before


def test_pool_refills_in_the_background() -> None:
    with spead2.ThreadPool() as tp:
        pool = spead2.MemoryPool(tp, 100, 200, 10, 6, 3)
        token = ffi.new("void **")
        taken = []
        for _ in range(4):  # 6 -> 2 free: below low water
            taken.append((lib.sp2_allocator_alloc(pool._handle, 150, token), token[0]))
        deadline = time.monotonic() + 5
        while pool._free_count < 6 and time.monotonic() < deadline:
            time.sleep(0.001)
        assert pool._free_count == 6
        for ptr, tok in taken:
            lib.sp2_allocator_free(pool._handle, ptr, 150, tok)
        assert pool._free_count == 10
        del pool
        gc.collect()  # joins the refill thread


def test_pool_outlives_its_python_object(thread_pool: spead2.ThreadPool) -> None:
    pool = spead2.MemoryPool(1000, 2000, 4, 2)
    stream = spead2.recv.Stream(thread_pool, StreamConfig(memory_allocator=pool))
    del pool
    gc.collect()
    stream.add_buffer_reader(stream_bytes(3, 1500))
    heaps = list(stream)
    del stream
    gc.collect()
    assert [bytes(h.get_items()[0][:1]) for h in heaps] == [b"\x01", b"\x02", b"\x03"]
