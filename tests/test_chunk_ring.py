"""ChunkRingbuffer (blocking) and spead2.recv.asyncio.ChunkRingbuffer."""

from __future__ import annotations

import asyncio
import select
import threading

import pytest
from chunk_support import make_chunk

import spead2
import spead2.recv
import spead2.recv.asyncio


def readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


def test_queue_semantics() -> None:
    ring = spead2.recv.ChunkRingbuffer(2)
    assert (ring.maxsize, ring.qsize(), ring.empty(), ring.full()) == (2, 0, True, False)
    with pytest.raises(spead2.Empty):
        ring.get_nowait()
    first, second = make_chunk(), make_chunk()
    ring.put_nowait(first)
    ring.put(second)
    assert ring.full() and ring.qsize() == 2
    with pytest.raises(spead2.Full):
        ring.put_nowait(make_chunk())
    assert ring.stop() is True
    assert ring.stop() is True  # as the reference's
    with pytest.raises(spead2.Stopped):
        ring.put_nowait(make_chunk())
    with pytest.raises(spead2.Stopped):
        ring.put(make_chunk())
    assert ring.get_nowait() is first
    assert list(ring) == [second]
    with pytest.raises(spead2.Stopped):
        ring.get()
    with pytest.raises(spead2.Stopped):
        ring.get_nowait()


def test_put_needs_a_usable_chunk() -> None:
    ring = spead2.recv.ChunkRingbuffer(2)
    with pytest.raises(TypeError):
        ring.put_nowait(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="data buffer"):
        ring.put_nowait(spead2.recv.Chunk(present=bytearray(1)))
    with pytest.raises(ValueError, match="present buffer"):
        ring.put_nowait(spead2.recv.Chunk(data=bytearray(1)))


def test_producers() -> None:
    ring = spead2.recv.ChunkRingbuffer(2)
    assert ring.remove_producer() is False  # no producer registered
    ring.add_producer()
    ring.add_producer()
    assert ring.remove_producer() is False
    ring.put_nowait(make_chunk())
    assert ring.remove_producer() is True
    assert ring.qsize() == 1
    with pytest.raises(spead2.Stopped):
        ring.put_nowait(make_chunk())


def test_fds_follow_state() -> None:
    ring = spead2.recv.ChunkRingbuffer(1)
    data_fd, space_fd = ring.data_fd, ring.space_fd
    assert data_fd == ring.data_fd
    assert not readable(data_fd) and readable(space_fd)
    ring.put_nowait(make_chunk())
    assert readable(data_fd) and not readable(space_fd)
    ring.get_nowait()
    assert not readable(data_fd) and readable(space_fd)
    ring.put_nowait(make_chunk())
    ring.stop()
    assert readable(data_fd) and readable(space_fd)
    ring.get_nowait()
    assert readable(data_fd)  # stopped: a get would not block


def test_blocking_get_and_put_wake_across_threads() -> None:
    ring = spead2.recv.ChunkRingbuffer(1)
    got: list[spead2.recv.Chunk] = []
    taker = threading.Thread(target=lambda: got.extend(ring))
    taker.start()
    chunks = [make_chunk() for _ in range(5)]
    for chunk in chunks:
        ring.put(chunk)  # waits for the taker when full
    ring.stop()
    taker.join(timeout=10)
    assert not taker.is_alive()
    assert got == chunks


@pytest.mark.asyncio
async def test_async_get_put_and_iteration() -> None:
    ring = spead2.recv.asyncio.ChunkRingbuffer(1)
    chunks = [make_chunk() for _ in range(4)]

    async def produce() -> None:
        for chunk in chunks:
            await ring.put(chunk)
        ring.stop()

    producer = asyncio.create_task(produce())
    got = [chunk async for chunk in ring]
    await producer
    assert got == chunks
    with pytest.raises(spead2.Stopped):
        await ring.get()
    with pytest.raises(spead2.Stopped):
        await ring.put(make_chunk())


@pytest.mark.asyncio
async def test_async_get_woken_by_another_thread() -> None:
    ring = spead2.recv.asyncio.ChunkRingbuffer(2)
    chunk = make_chunk()
    getter = asyncio.create_task(ring.get())
    await asyncio.sleep(0)
    thread = threading.Thread(target=ring.put_nowait, args=(chunk,))
    thread.start()
    assert await asyncio.wait_for(getter, 10) is chunk
    thread.join()


@pytest.mark.asyncio
async def test_async_cancel_loses_nothing() -> None:
    ring = spead2.recv.asyncio.ChunkRingbuffer(1)
    waiting = asyncio.create_task(ring.get())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    chunk = make_chunk()
    ring.put_nowait(chunk)
    assert ring.qsize() == 1
    assert await ring.get() is chunk
    ring.put_nowait(make_chunk())
    blocked = asyncio.create_task(ring.put(make_chunk()))
    await asyncio.sleep(0)
    blocked.cancel()
    with pytest.raises(asyncio.CancelledError):
        await blocked
    assert ring.qsize() == 1
