"""ChunkRingStream with a numba place function over hand-built packets (buffer and inproc readers)."""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np
import pytest
from chunk_support import (
    HEAP_SIZE,
    HEAPS,
    REJECT_ID,
    chunk_config,
    heap,
    heaps,
    make_chunk,
    packet,
    stop_packet,
    summary,
)

import spead2
import spead2.recv

pytest.importorskip("numba")
pytest.importorskip("scipy")


@pytest.fixture(scope="module")
def place() -> Any:
    from chunk_support import numba_place

    return numba_place()


def make_stream(
    thread_pool: spead2.ThreadPool,
    place: Any,
    *,
    max_chunks: int = 2,
    free: int = 8,
    data_size: int = 16,
    config: spead2.recv.StreamConfig | None = None,
    chunk_cfg: spead2.recv.ChunkStreamConfig | None = None,
) -> spead2.recv.ChunkRingStream:
    stream = spead2.recv.ChunkRingStream(
        thread_pool,
        config or spead2.recv.StreamConfig(max_heaps=4),
        chunk_cfg or chunk_config(place, max_chunks),
        spead2.recv.ChunkRingbuffer(data_size),
        spead2.recv.ChunkRingbuffer(free),
    )
    for _ in range(free):
        stream.add_free_chunk(make_chunk(extra=True))
    return stream


def receive(stream: spead2.recv.ChunkRingStream, data: bytes) -> list[tuple[int, list[int], list[int]]]:
    stream.add_buffer_reader(data)
    return [summary(chunk) for chunk in stream.data_ringbuffer]


def test_heaps_fill_chunks_in_order(thread_pool: spead2.ThreadPool, place: Any) -> None:
    stream = make_stream(thread_pool, place)
    stream.add_buffer_reader(heaps(0, 1, 2, 3, 5))
    chunks = list(stream.data_ringbuffer)
    assert [summary(c) for c in chunks] == [(0, [1, 1, 1, 1], [0, 1, 2, 3]), (1, [0, 1, 0, 0], [0, 5, 0, 0])]
    assert list(chunks[0].extra) == [0, 1, 2, 3]
    assert list(chunks[1].extra) == [0, 5, 0, 0]
    assert all(c.stream_id == 0 for c in chunks)
    stats = stream.stats
    assert (stats["heaps"], stats["packets"], stats["too_old_heaps"], stats["rejected_heaps"]) == (5, 5, 0, 0)
    assert [s.name for s in stream.config.stats][-2:] == ["too_old_heaps", "rejected_heaps"]


def test_multi_packet_heaps_and_payload(thread_pool: spead2.ThreadPool, place: Any) -> None:
    stream = make_stream(thread_pool, place)
    stream.add_buffer_reader(b"".join(heap(1, per_packet=4) + heap(2, per_packet=5)))
    (chunk,) = list(stream.data_ringbuffer)
    assert list(chunk.present) == [0, 1, 1, 0]
    assert bytes(chunk.data[HEAP_SIZE : 3 * HEAP_SIZE]) == bytes([1]) * HEAP_SIZE + bytes([2]) * HEAP_SIZE
    assert stream.stats["packets"] == 4 + 4


def test_first_chunk_backfills_window(thread_pool: spead2.ThreadPool, place: Any) -> None:
    stream = make_stream(thread_pool, place)
    assert receive(stream, heaps(21, 22)) == [
        (4, [0, 0, 0, 0], [0, 0, 0, 0]),
        (5, [0, 1, 1, 0], [0, 21, 22, 0]),
    ]


def test_jump_skips_chunks_outside_window(thread_pool: spead2.ThreadPool, place: Any) -> None:
    stream = make_stream(thread_pool, place)
    got = receive(stream, heaps(0, 12, 1, 13))
    assert [c[0] for c in got] == [0, 2, 3]
    assert got[2] == (3, [1, 1, 0, 0], [12, 13, 0, 0])
    assert stream.stats["too_old_heaps"] == 1


def test_too_old_and_rejected(thread_pool: spead2.ThreadPool, place: Any) -> None:
    stream = make_stream(thread_pool, place)
    data = heaps(0, 9, 1, 2) + b"".join(heap(3, items=[(REJECT_ID, 99)]))
    got = receive(stream, data)
    assert [c[0] for c in got] == [0, 1, 2]
    assert got[2] == (2, [0, 1, 0, 0], [0, 9, 0, 0])
    stats = stream.stats
    assert (stats["heaps"], stats["too_old_heaps"], stats["rejected_heaps"]) == (5, 2, 1)


def test_incomplete_heap_not_present(thread_pool: spead2.ThreadPool, place: Any) -> None:
    stream = make_stream(thread_pool, place)
    got = receive(stream, b"".join(heap(0, per_packet=4)[:2] + heap(1, per_packet=4)))
    assert got == [(0, [0, 1, 0, 0], [0, 1, 0, 0])]
    stats = stream.stats
    assert (stats["heaps"], stats["incomplete_heaps_flushed"], stats["packets"]) == (2, 1, 6)


def test_lost_and_reordered_packets(thread_pool: spead2.ThreadPool, place: Any) -> None:
    config = spead2.recv.StreamConfig(max_heaps=4, allow_out_of_order=True)
    stream = make_stream(thread_pool, place, config=config)
    h1, h2 = heap(1, per_packet=4), heap(2, per_packet=4)
    order = [h1[3], h2[1], h1[0], h1[0], h2[0], h1[2], h1[1], h2[3]]  # h2[2] lost, h1[0] duplicated
    got = receive(stream, b"".join(order))
    assert got == [(0, [0, 1, 0, 0], [0, 1, 2, 0])]
    stats = stream.stats
    assert stats.drops["duplicate"] == 1
    assert stats["incomplete_heaps_flushed"] == 1


def test_in_order_mode_drops_reordered_packet(thread_pool: spead2.ThreadPool, place: Any) -> None:
    stream = make_stream(thread_pool, place)
    h1 = heap(1, per_packet=4)
    got = receive(stream, b"".join([h1[0], h1[2], h1[1], h1[3]]))
    assert got == [(0, [0, 0, 0, 0], [0, 1, 0, 0])]
    assert stream.stats.drops["out_of_order"] == 2


def test_packet_presence(thread_pool: spead2.ThreadPool, place: Any) -> None:
    cfg = chunk_config(place)
    cfg.enable_packet_presence(4)
    assert cfg.packet_presence_payload_size == 4
    config = spead2.recv.StreamConfig(max_heaps=4, allow_out_of_order=True)
    stream = spead2.recv.ChunkRingStream(
        thread_pool, config, cfg, spead2.recv.ChunkRingbuffer(4), spead2.recv.ChunkRingbuffer(4)
    )
    # presence index = heap_index + payload offset // 4
    for _ in range(4):
        chunk = make_chunk(extra=True)
        chunk.present = np.zeros(8, np.uint8)
        stream.add_free_chunk(chunk)
    pkts = heap(0, per_packet=4)
    stream.add_buffer_reader(b"".join([pkts[0], pkts[2], pkts[3]]))
    (chunk,) = list(stream.data_ringbuffer)
    assert list(chunk.present) == [1, 0, 1, 1, 0, 0, 0, 0]


def test_place_outside_chunk_is_dropped(
    thread_pool: spead2.ThreadPool, place: Any, caplog: pytest.LogCaptureFixture
) -> None:
    stream = make_stream(thread_pool, place)
    hostile = [
        packet(1, 1000, 0, b"x" * 64),  # heap larger than its place
        packet(2, None, 30, b"y" * 8),  # unsized heap running past the chunk
        packet(3, 2**40, 2**39, b"z" * 8),  # hostile heap size and offset
    ]
    with caplog.at_level(logging.WARNING, logger="spead2"):
        got = receive(stream, heaps(0) + b"".join(hostile))
    assert got == [(0, [1, 0, 0, 0], [0, 0, 0, 0])]
    assert "placed outside their chunk" in caplog.text
    assert stream.stats.drops["beyond_heap"] == 1


def test_stop_item_ends_stream(thread_pool: spead2.ThreadPool, place: Any) -> None:
    stream = make_stream(thread_pool, place)
    got = receive(stream, heaps(0) + stop_packet() + heaps(1))
    assert got == [(0, [1, 0, 0, 0], [0, 0, 0, 0])]
    assert stream.stats["packets"] == 2


def test_user_stop_stops_both_rings(thread_pool: spead2.ThreadPool, place: Any) -> None:
    stream = make_stream(thread_pool, place)
    queue = spead2.InprocQueue()
    stream.add_inproc_reader(queue)
    for pkt in heap(1) + heap(6):
        queue.add_packet(pkt)
    stream.stop()
    assert list(stream.data_ringbuffer) == []  # chunks being filled are dropped, as the reference's
    with pytest.raises(spead2.Stopped):
        stream.free_ringbuffer.put_nowait(make_chunk())
    stream.add_free_chunk(make_chunk())  # silently ignored once stopped


def test_shared_data_ring_stops_with_last_stream(thread_pool: spead2.ThreadPool, place: Any) -> None:
    data_ring, free_ring = spead2.recv.ChunkRingbuffer(8), spead2.recv.ChunkRingbuffer(8)
    cfg = chunk_config(place)
    first = spead2.recv.ChunkRingStream(thread_pool, spead2.recv.StreamConfig(), cfg, data_ring, free_ring)
    config = spead2.recv.StreamConfig(stream_id=7)
    second = spead2.recv.ChunkRingStream(thread_pool, config, cfg, data_ring, free_ring)
    for _ in range(4):
        first.add_free_chunk(make_chunk())
    first.add_buffer_reader(heaps(1))
    chunk = data_ring.get()
    assert (chunk.chunk_id, chunk.stream_id) == (0, 0)
    second.add_buffer_reader(heaps(2))
    chunk = data_ring.get()
    assert (chunk.chunk_id, chunk.stream_id, list(chunk.present)) == (0, 7, [0, 0, 1, 0])
    with pytest.raises(spead2.Stopped):
        data_ring.get()
    free_ring.put_nowait(make_chunk())  # a network stop leaves the free ring alone


def test_waits_for_free_chunks(thread_pool: spead2.ThreadPool, place: Any) -> None:
    stream = make_stream(thread_pool, place, free=1, max_chunks=1)
    stream.add_buffer_reader(heaps(0, 4, 8))
    chunk = stream.data_ringbuffer.get()
    assert summary(chunk) == (0, [1, 0, 0, 0], [0, 0, 0, 0])
    stream.add_free_chunk(chunk)  # the stream was waiting for it
    assert summary(stream.data_ringbuffer.get())[0] == 1
    assert stream.free_ringbuffer.empty()


def test_chunks_taken_early_go_back_to_free_ring(thread_pool: spead2.ThreadPool, place: Any) -> None:
    # A stream alone on its free ring takes spare chunks ahead of need (the kernel then moves
    # the window by itself); those it did not use go back when it ends, stopped or not.
    stream = make_stream(thread_pool, place, free=8, max_chunks=2)
    assert [s[0] for s in receive(stream, heaps(*range(0, 24, 2)))] == [0, 1, 2, 3, 4, 5]
    assert stream.free_ringbuffer.qsize() == 2
    stream = make_stream(thread_pool, place, free=8, max_chunks=2)
    queue = spead2.InprocQueue()
    stream.add_inproc_reader(queue)
    for pkt in heap(0) + heap(4) + heap(8):
        queue.add_packet(pkt)
    chunk = stream.data_ringbuffer.get()
    assert summary(chunk)[0] == 0
    stream.stop()
    free = []
    with pytest.raises(spead2.Stopped):
        while True:
            free.append(stream.free_ringbuffer.get_nowait())
    assert len(free) == 8 - 3  # chunks 1 and 2 were being filled: dropped, as the reference's


def test_reused_chunk_with_new_buffers(thread_pool: spead2.ThreadPool, place: Any) -> None:
    stream = make_stream(thread_pool, place, free=1, max_chunks=1)
    queue = spead2.InprocQueue()
    stream.add_inproc_reader(queue)
    for pkt in heap(1) + heap(5):
        queue.add_packet(pkt)
    chunk = stream.data_ringbuffer.get()
    old_data = chunk.data
    chunk.data = np.zeros(HEAPS * HEAP_SIZE, np.uint8)  # the stream must write here from now on
    stream.add_free_chunk(chunk)
    queue.stop()
    assert summary(stream.data_ringbuffer.get()) == (1, [0, 1, 0, 0], [0, 5, 0, 0])
    assert list(old_data[::HEAP_SIZE]) == [0, 1, 0, 0]


def test_waits_for_room_in_data_ring(thread_pool: spead2.ThreadPool, place: Any) -> None:
    stream = make_stream(thread_pool, place, free=8, max_chunks=1, data_size=1)
    stream.add_buffer_reader(heaps(*range(0, 24, 4)))
    got = [summary(chunk)[0] for chunk in stream.data_ringbuffer]
    assert got == list(range(6))


def test_custom_statistic_from_place(thread_pool: spead2.ThreadPool) -> None:
    import numba
    import scipy
    from numba import types

    from spead2.numba import intp_to_voidptr
    from spead2.recv.numba import chunk_place_data

    config = spead2.recv.StreamConfig(max_heaps=4)
    index = config.add_stat("placed")

    @numba.cfunc(types.void(types.CPointer(chunk_place_data), types.size_t), nopython=True)
    def counting_place(data_ptr: Any, data_size: Any) -> None:  # pragma: no cover - compiled
        data = numba.carray(data_ptr, 1)
        stats = numba.carray(intp_to_voidptr(data[0].batch_stats), index + 1, dtype=np.uint64)
        stats[index] += 1
        data[0].chunk_id = 0

    llc = scipy.LowLevelCallable(counting_place.ctypes, signature="void (void *, size_t)")
    cfg = spead2.recv.ChunkStreamConfig(items=[], place=llc)
    stream = spead2.recv.ChunkRingStream(
        thread_pool, config, cfg, spead2.recv.ChunkRingbuffer(2), spead2.recv.ChunkRingbuffer(2)
    )
    stream.add_free_chunk(make_chunk())
    stream.add_buffer_reader(heaps(0, 1, 2))
    assert len(list(stream.data_ringbuffer)) == 1
    assert stream.stats["placed"] == 3
    assert [s.name for s in stream.config.stats][-3:] == ["placed", "too_old_heaps", "rejected_heaps"]


def test_consumer_on_another_thread(thread_pool: spead2.ThreadPool, place: Any) -> None:
    stream = make_stream(thread_pool, place, free=3, max_chunks=2, data_size=4)
    n_chunks = 50
    seen: list[int] = []

    def consume() -> None:
        for chunk in stream.data_ringbuffer:
            seen.append(chunk.chunk_id)
            assert list(chunk.present) == [1, 1, 1, 1]
            stream.add_free_chunk(chunk)

    consumer = threading.Thread(target=consume)
    consumer.start()
    stream.add_buffer_reader(heaps(*range(n_chunks * HEAPS)))
    consumer.join(timeout=30)
    assert not consumer.is_alive()
    assert seen == list(range(n_chunks))


def test_config_validation(place: Any) -> None:
    with pytest.raises(ValueError, match="max_chunks"):
        spead2.recv.ChunkStreamConfig(max_chunks=0)
    with pytest.raises(TypeError):
        spead2.recv.ChunkStreamConfig(place=("not a capsule",))
    cfg = spead2.recv.ChunkStreamConfig(items=[1, 2], place=place, max_heap_extra=5)
    items = cfg.items
    items.append(3)
    assert cfg.items == [1, 2]
    assert cfg.place is not None and cfg.max_heap_extra == 5
    assert spead2.recv.ChunkStreamConfig.DEFAULT_MAX_CHUNKS == 2
    cfg.disable_packet_presence()
    assert cfg.packet_presence_payload_size == 0
    with pytest.raises(ValueError, match="place is not set"):
        spead2.recv.ChunkRingStream(
            spead2.ThreadPool(),
            spead2.recv.StreamConfig(),
            spead2.recv.ChunkStreamConfig(),
            spead2.recv.ChunkRingbuffer(2),
            spead2.recv.ChunkRingbuffer(2),
        )


def test_chunk_buffers() -> None:
    chunk = spead2.recv.Chunk()
    assert (chunk.chunk_id, chunk.stream_id, chunk.present, chunk.data, chunk.extra) == (
        -1,
        0,
        None,
        None,
        None,
    )
    with pytest.raises(BufferError):
        spead2.recv.Chunk(data=b"read-only")
    with pytest.raises(ValueError, match="C-contiguous"):
        spead2.recv.Chunk(data=np.zeros((4, 4))[:, 0])

    class MyChunk(spead2.recv.Chunk):
        pass

    mine = MyChunk(data=bytearray(4), present=memoryview(bytearray(2)))
    mine.label = "kept"  # type: ignore[attr-defined]
    ring = spead2.recv.ChunkRingbuffer(1)
    ring.put(mine)
    back = ring.get()
    assert back is mine and back.label == "kept"  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_asyncio_rings(place: Any) -> None:
    import spead2.recv.asyncio

    data_ring = spead2.recv.asyncio.ChunkRingbuffer(2)
    free_ring = spead2.recv.asyncio.ChunkRingbuffer(4)
    pool = spead2.ThreadPool()
    try:
        stream = spead2.recv.ChunkRingStream(
            pool, spead2.recv.StreamConfig(), chunk_config(place), data_ring, free_ring
        )
        for _ in range(3):
            stream.add_free_chunk(make_chunk())
        stream.add_buffer_reader(heaps(*range(12 * HEAPS)))
        seen = []
        async for chunk in data_ring:
            seen.append(summary(chunk)[:2])
            stream.add_free_chunk(chunk)
        assert seen == [(i, [1] * HEAPS) for i in range(12)]
    finally:
        pool.stop()
