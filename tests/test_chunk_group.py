"""ChunkStreamRingGroup: member streams on threads of their own sharing one window."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from chunk_support import HEAPS, chunk_config, heap, heaps, make_chunk, summary, wait_for

import spead2
import spead2.recv

pytest.importorskip("numba")
pytest.importorskip("scipy")

Mode = spead2.recv.ChunkStreamGroupConfig.EvictionMode


@pytest.fixture(scope="module")
def place() -> Any:
    from chunk_support import numba_place

    return numba_place()


@pytest.fixture
def pools() -> Iterator[list[spead2.ThreadPool]]:
    made = [spead2.ThreadPool() for _ in range(2)]
    yield made
    for pool in made:
        pool.stop()


def make_group(
    pools: list[spead2.ThreadPool], place: Any, mode: Mode, max_chunks: int = 2, free: int = 8
) -> spead2.recv.ChunkStreamRingGroup:
    config = spead2.recv.ChunkStreamGroupConfig(max_chunks=max_chunks, eviction_mode=mode)
    group = spead2.recv.ChunkStreamRingGroup(
        config, spead2.recv.ChunkRingbuffer(16), spead2.recv.ChunkRingbuffer(free)
    )
    for i, pool in enumerate(pools):
        group.emplace_back(pool, spead2.recv.StreamConfig(stream_id=i), chunk_config(place, max_chunks))
    for _ in range(free):
        group.add_free_chunk(make_chunk())
    return group


def test_members_fill_shared_chunks(pools: list[spead2.ThreadPool], place: Any) -> None:
    group = make_group(pools, place, Mode.LOSSLESS, free=10)
    n = 10 * HEAPS
    group[0].add_buffer_reader(heaps(*range(0, n, 2)))
    group[1].add_buffer_reader(heaps(*range(1, n, 2)))
    got = [summary(chunk) for chunk in group.data_ringbuffer]  # ends when both members have ended
    assert [c[0] for c in got] == list(range(10))
    assert all(c[1] == [1] * HEAPS for c in got)
    assert sum(member.stats["heaps"] for member in group) == n


def group_with_lagging_member(pools: list[spead2.ThreadPool], place: Any, mode: Any) -> tuple[Any, Any]:
    """A group whose member 1 reads heap 1 (chunk 0) from an inproc queue left open, so that it
    holds chunk 0 until the queue stops."""
    group = make_group(pools, place, mode)
    queue = spead2.InprocQueue()
    group[1].add_inproc_reader(queue)
    for pkt in heap(1):
        queue.add_packet(pkt)
    return group, queue


def test_lossy_forces_lagging_member_to_let_go(pools: list[spead2.ThreadPool], place: Any) -> None:
    group, queue = group_with_lagging_member(pools, place, Mode.LOSSY)
    wait_for(lambda: group[1].stats["packets"] == 1)  # member 1 holds chunk 0
    group[0].add_buffer_reader(heaps(2, 3, 9, 13, 17))
    ring = group.data_ringbuffer
    got = [summary(ring.get()) for _ in range(3)]
    assert got == [
        (0, [0, 1, 1, 1], [0, 1, 2, 3]),
        (1, [0, 0, 0, 0], [0, 0, 0, 0]),
        (2, [0, 1, 0, 0], [0, 9, 0, 0]),
    ]
    queue.stop()  # the last member ends: the rest is flushed and the data ring stops
    assert [summary(chunk)[0] for chunk in ring] == [3, 4]


def test_lossless_waits_for_lagging_member(pools: list[spead2.ThreadPool], place: Any) -> None:
    group, queue = group_with_lagging_member(pools, place, Mode.LOSSLESS)
    wait_for(lambda: group[1].stats["packets"] == 1)
    group[0].add_buffer_reader(heaps(2, 3, 9, 13, 17))
    ring = group.data_ringbuffer
    # member 0 takes heaps 2 and 3, then waits with heap 9 (chunk 2) until member 1 lets chunk 0 go
    wait_for(lambda: group[0].stats["packets"] == 2 and group[1].stats["packets"] == 1)
    assert ring.empty()
    queue.stop()  # member 1 ends, and lets go
    got = [summary(chunk) for chunk in ring]
    assert got[0] == (0, [0, 1, 1, 1], [0, 1, 2, 3])
    assert [c[0] for c in got] == [0, 1, 2, 3, 4]
    assert group[0].stats["too_old_heaps"] == 0


def test_sequence_and_errors(pools: list[spead2.ThreadPool], place: Any) -> None:
    group = make_group(pools, place, Mode.LOSSY)
    assert len(group) == 2 and list(group) == [group[0], group[1]] and group[0:1] == [group[0]]
    assert group.config.max_chunks == 2 and group.config.eviction_mode is Mode.LOSSY
    with pytest.raises(ValueError, match="max_chunks"):
        group.emplace_back(pools[0], spead2.recv.StreamConfig(), chunk_config(place, 3))
    group[0].add_buffer_reader(heaps(0, 8))  # chunk 2 moves the window past chunk 0
    assert group.data_ringbuffer.get().chunk_id == 0
    with pytest.raises(RuntimeError, match="started receiving"):
        group.emplace_back(pools[0], spead2.recv.StreamConfig(), chunk_config(place))
    with pytest.raises(ValueError, match="max_chunks"):
        spead2.recv.ChunkStreamGroupConfig(max_chunks=0)
    assert spead2.recv.ChunkStreamGroupConfig().eviction_mode is Mode.LOSSY


def test_member_stop_stops_group(pools: list[spead2.ThreadPool], place: Any) -> None:
    group = make_group(pools, place, Mode.LOSSY)
    queue = spead2.InprocQueue()
    group[0].add_inproc_reader(queue)
    for pkt in heap(1):
        queue.add_packet(pkt)
    group[1].stop()
    assert list(group.data_ringbuffer) == []
    with pytest.raises(spead2.Stopped):
        group.free_ringbuffer.put_nowait(make_chunk())
    group.add_free_chunk(make_chunk())  # ignored once stopped
    group.stop()  # again: harmless
