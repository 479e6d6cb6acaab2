"""The blocking Stream over the buffer and in-process readers."""

from __future__ import annotations

import gc
import os
import select
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest
from kernel_harness import EncHeap, Encoder, Item

import spead2
import spead2.recv
from spead2._kernel import lib
from spead2.recv import RingStreamConfig, StreamConfig

ENC = Encoder()


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Waits for a state that no event announces (a thread asleep inside C)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def heaps_bytes(cnts: range | list[int], size: int = 100) -> bytes:
    return b"".join(ENC.stream_packets([EncHeap(c, [Item(0x1000, bytes([c % 256]) * size)]) for c in cnts]))


def heap_packets(cnt: int, size: int = 100) -> list[bytes]:
    return ENC.packets(EncHeap(cnt, [Item(0x1000, bytes([cnt % 256]) * size)]))


def test_iterate_a_buffer(thread_pool: spead2.ThreadPool) -> None:
    stream = spead2.recv.Stream(thread_pool)
    stream.add_buffer_reader(heaps_bytes(range(1, 51)))
    assert [h.cnt for h in stream] == list(range(1, 51))
    with pytest.raises(spead2.Stopped):
        stream.get()
    with pytest.raises(spead2.Stopped):
        stream.get_nowait()
    assert stream.stats["heaps"] == 50
    assert stream.stats.payload_bytes == 50 * 100


def test_buffer_is_read_in_place(thread_pool: spead2.ThreadPool) -> None:
    data = bytearray(heaps_bytes([1]))
    stream = spead2.recv.Stream(thread_pool, StreamConfig(explicit_start=True))
    stream.add_buffer_reader(memoryview(data))
    # any buffer-protocol object, e.g. a numpy array
    other = spead2.recv.Stream(thread_pool)
    other.add_buffer_reader(np.frombuffer(heaps_bytes([2]), dtype=np.uint8))
    assert [h.cnt for h in other] == [2]
    stream.start()
    assert [h.cnt for h in stream] == [1]


def test_non_contiguous_buffer_is_refused(thread_pool: spead2.ThreadPool) -> None:
    stream = spead2.recv.Stream(thread_pool)
    with pytest.raises(ValueError, match="contiguous"):
        stream.add_buffer_reader(memoryview(bytearray(100))[::2])


def test_get_nowait_and_empty(thread_pool: spead2.ThreadPool) -> None:
    queue = spead2.InprocQueue()
    stream = spead2.recv.Stream(thread_pool)
    stream.add_inproc_reader(queue)
    with pytest.raises(spead2.Empty):
        stream.get_nowait()
    for p in heap_packets(1):
        queue.add_packet(p)
    assert stream.get().cnt == 1
    queue.stop()
    with pytest.raises(spead2.Stopped):
        stream.get()


def filled_queue(*cnts: int) -> spead2.InprocQueue:
    queue = spead2.InprocQueue()
    for cnt in cnts:
        for p in heap_packets(cnt):
            queue.add_packet(p)
    return queue


def test_explicit_start(thread_pool: spead2.ThreadPool) -> None:
    queue = filled_queue(1, 2)
    stream = spead2.recv.Stream(thread_pool, StreamConfig(explicit_start=True))
    stream.add_inproc_reader(queue)
    # A stream without explicit_start on the same loop, given its reader later, gets its heaps:
    # had the first stream's reader been started, the loop would have run it first.
    control = spead2.recv.Stream(thread_pool)
    control.add_inproc_reader(filled_queue(1, 2))
    assert [control.get().cnt, control.get().cnt] == [1, 2]
    control.stop()
    with pytest.raises(spead2.Empty):
        stream.get_nowait()
    assert stream.stats["packets"] == 0
    stream.start()
    with pytest.raises(RuntimeError, match="after start"):
        stream.add_buffer_reader(heaps_bytes([3]))
    queue.stop()
    assert [h.cnt for h in stream] == [1, 2]


def test_start_is_harmless_without_explicit_start(thread_pool: spead2.ThreadPool) -> None:
    stream = spead2.recv.Stream(thread_pool)
    stream.start()
    stream.add_buffer_reader(heaps_bytes([1]))
    stream.start()
    assert [h.cnt for h in stream] == [1]


def test_stop_returns_queued_heaps_first(thread_pool: spead2.ThreadPool) -> None:
    queue = spead2.InprocQueue()
    stream = spead2.recv.Stream(thread_pool, StreamConfig(), RingStreamConfig(heaps=8, contiguous_only=False))
    stream.add_inproc_reader(queue)
    for cnt in (1, 2):
        for p in heap_packets(cnt):
            queue.add_packet(p)
    queue.add_packet(ENC.packets(EncHeap(3, [Item(0x1000, bytes(3000))]))[0])  # incomplete
    while stream.ringbuffer.size() < 2:
        time.sleep(0.001)
    stream.stop()
    # queued heaps come out; the live incomplete heap is flushed into the stopped ring (counted)
    assert [h.cnt for h in stream] == [1, 2]
    stats = stream.stats
    assert stats["heaps"] == 3 and stats["incomplete_heaps_flushed"] == 1
    with pytest.raises(RuntimeError, match="stopped"):
        stream.add_buffer_reader(b"")
    stream.stop()  # twice is fine


def test_stop_unblocks_a_waiting_get(thread_pool: spead2.ThreadPool) -> None:
    queue = spead2.InprocQueue()
    stream = spead2.recv.Stream(thread_pool)
    stream.add_inproc_reader(queue)
    result: list[object] = []

    def consume() -> None:
        try:
            stream.get()
        except spead2.Stopped as exc:
            result.append(exc)

    t = threading.Thread(target=consume)
    t.start()
    wait_until(lambda: lib.sp2_ring_waiters(stream._core.kernel) == 1)  # asleep in get()
    stream.stop()
    t.join(5)
    assert not t.is_alive() and isinstance(result[0], spead2.Stopped)


def test_ring_bounds_a_slow_consumer(thread_pool: spead2.ThreadPool) -> None:
    stream = spead2.recv.Stream(thread_pool, StreamConfig(), RingStreamConfig(heaps=3))
    stream.add_buffer_reader(heaps_bytes(range(1, 201)))
    got = []
    for heap in stream:
        assert stream.ringbuffer.size() <= stream.ringbuffer.capacity() == 3
        got.append(heap.cnt)
        if len(got) % 20 == 0:
            time.sleep(0.005)
    assert got == list(range(1, 201))
    assert stream.stats["worker_blocked"] > 0


def test_fd_is_readable_per_heap_and_after_stop(thread_pool: spead2.ThreadPool) -> None:
    queue = spead2.InprocQueue()
    stream = spead2.recv.Stream(thread_pool)
    stream.add_inproc_reader(queue)
    fd = stream.fd
    assert stream.fd == fd
    assert select.select([fd], [], [], 0)[0] == []
    for p in heap_packets(1):
        queue.add_packet(p)
    assert select.select([fd], [], [], 5)[0] == [fd]
    assert stream.get_nowait().cnt == 1
    assert select.select([fd], [], [], 0.01)[0] == []
    queue.stop()
    assert select.select([fd], [], [], 5)[0] == [fd]
    with pytest.raises(spead2.Stopped):
        stream.get_nowait()


def test_get_on_the_loop_thread_is_refused(thread_pool: spead2.ThreadPool) -> None:
    stream = spead2.recv.Stream(thread_pool)
    with pytest.raises(RuntimeError, match="wait forever"):
        stream._portal.call(stream.get)
    stream.stop()


def test_stats_snapshot_from_another_thread(thread_pool: spead2.ThreadPool) -> None:
    stream = spead2.recv.Stream(thread_pool, StreamConfig(), RingStreamConfig(heaps=2))
    stream.add_buffer_reader(heaps_bytes(range(1, 301)))
    snapshots = []
    for i, _heap in enumerate(stream):
        if i % 50 == 0:
            s = stream.stats
            snapshots.append((s["heaps"], s["packets"]))
    for heaps, packets in snapshots:
        assert packets >= heaps  # one packet per heap here: counts never run ahead of each other
    assert snapshots == sorted(snapshots)


def test_config_and_ring_config_are_copies(thread_pool: spead2.ThreadPool) -> None:
    config = StreamConfig(max_heaps=3)
    ring = RingStreamConfig(heaps=5)
    stream = spead2.recv.Stream(thread_pool, config, ring)
    config.max_heaps = 9
    assert stream.config.max_heaps == 3 and stream.ring_config.heaps == 5
    stream.config.max_heaps = 7
    assert stream.config.max_heaps == 3
    assert stream.ringbuffer.capacity() == 5
    stream.stop()


def test_constructor_checks_types(thread_pool: spead2.ThreadPool) -> None:
    with pytest.raises(TypeError):
        spead2.recv.Stream(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        spead2.recv.Stream(thread_pool, RingStreamConfig())  # type: ignore[arg-type]


def test_mixed_readers(thread_pool: spead2.ThreadPool) -> None:
    queue = spead2.InprocQueue()
    stream = spead2.recv.Stream(thread_pool, StreamConfig(explicit_start=True), RingStreamConfig(heaps=10))
    stream.add_inproc_reader(queue)
    for p in heap_packets(1):
        queue.add_packet(p)
    stream.add_buffer_reader(heaps_bytes([2]))  # the end of the buffer ends the stream
    stream.start()
    assert sorted(h.cnt for h in stream) in ([1, 2], [2])


def test_item_values_outlive_the_heap(thread_pool: spead2.ThreadPool) -> None:
    heap_desc = ENC.descriptor(0x1000, "x", "", (1000,), np.dtype(np.uint8))
    data = b"".join(ENC.packets(EncHeap(1, [Item(0x1000, bytes(range(250)) * 4)], [heap_desc])))
    stream = spead2.recv.Stream(thread_pool)
    stream.add_buffer_reader(data)
    heap = stream.get()
    ig = spead2.ItemGroup()
    ig.update(heap)
    value = ig["x"].value
    del heap, stream
    gc.collect()
    assert value.tobytes() == bytes(range(250)) * 4  # still the heap's memory, still valid
    value[:] = 7  # and writable, as the reference's
    assert int(value.sum()) == 7000


def test_an_item_value_holds_the_heap_memory_until_it_goes(thread_pool: spead2.ThreadPool) -> None:
    pool = spead2.MemoryPool(1000, 2000, 8, 4)
    heap_desc = ENC.descriptor(0x1000, "x", "", (1500,), np.dtype(np.uint8))
    data = b"".join(ENC.packets(EncHeap(1, [Item(0x1000, bytes(1500))], [heap_desc])))
    stream = spead2.recv.Stream(thread_pool, StreamConfig(memory_allocator=pool))
    stream.add_buffer_reader(data)
    (heap,) = list(stream)
    ig = spead2.ItemGroup()
    ig.update(heap)
    held = pool._free_count
    del heap, stream
    gc.collect()
    assert pool._free_count == held  # the value still uses the heap's buffer
    del ig
    gc.collect()
    assert pool._free_count == held + 1  # and gives it back with the last view


def test_heaps_use_the_configured_pool(thread_pool: spead2.ThreadPool) -> None:
    pool = spead2.MemoryPool(1000, 2000, 8, 4)
    stream = spead2.recv.Stream(thread_pool, StreamConfig(memory_allocator=pool), RingStreamConfig(heaps=8))
    stream.add_buffer_reader(heaps_bytes([1, 2], size=1500))
    heaps = list(stream)
    assert pool._free_count == 2
    del heaps
    gc.collect()
    assert pool._free_count == 4
    del pool  # heaps and streams keep the pool alive in C: nothing dangles


def test_thread_pool_stop_stops_its_streams() -> None:
    pool = spead2.ThreadPool(2)
    queue = spead2.InprocQueue()
    streams = [spead2.recv.Stream(pool) for _ in range(3)]
    for s in streams:
        s.add_inproc_reader(queue)
    pool.stop()
    for s in streams:
        with pytest.raises(spead2.Stopped):
            s.get()
    with pytest.raises(RuntimeError):
        spead2.recv.Stream(pool)


def test_thread_pool_arguments() -> None:
    with pytest.raises(ValueError, match="at least one thread"):
        spead2.ThreadPool(0)
    cores = sorted(os.sched_getaffinity(0))
    with spead2.ThreadPool(2, [cores[0]]) as pool:
        assert len(pool._workers) == 2
    spead2.ThreadPool.set_affinity(cores[-1])
    os.sched_setaffinity(0, cores)


def test_dropped_stream_releases_its_readers(thread_pool: spead2.ThreadPool) -> None:
    queue = spead2.InprocQueue()
    stream = spead2.recv.Stream(thread_pool)
    stream.add_inproc_reader(queue)
    assert len(queue._listeners) == 1
    del stream
    gc.collect()
    deadline = time.monotonic() + 5
    while queue._listeners and time.monotonic() < deadline:
        time.sleep(0.01)
    assert queue._listeners == []


def test_iteration_keeps_an_unnamed_stream(thread_pool: spead2.ThreadPool) -> None:
    # ``for heap in make_stream()``: only the iterator holds the stream, and a dropped stream
    # stops; as with the reference, the iteration must keep it (it got a handful of 2000 heaps)
    def make_stream() -> spead2.recv.Stream:
        stream = spead2.recv.Stream(thread_pool, StreamConfig(max_heaps=4), RingStreamConfig(heaps=4))
        stream.add_buffer_reader(heaps_bytes(range(1, 2001)))
        return stream

    cnts = []
    for heap in make_stream():
        if not cnts:
            gc.collect()  # (also where reference cycles are what holds the stream)
        cnts.append(heap.cnt)
    assert cnts == list(range(1, 2001))
