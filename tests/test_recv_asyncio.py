"""The asyncio Stream (runs on the stdlib loop and on uvloop: see conftest)."""

from __future__ import annotations

import asyncio

import pytest
from kernel_harness import EncHeap, Encoder, Item

import spead2
import spead2.recv
import spead2.recv.asyncio
from spead2._kernel import ffi
from spead2.recv import RingStreamConfig, StreamConfig

ENC = Encoder()


def heaps_bytes(cnts: range | list[int], size: int = 100) -> bytes:
    return b"".join(ENC.stream_packets([EncHeap(c, [Item(0x1000, bytes(size))]) for c in cnts]))


def add_heap(queue: spead2.InprocQueue, cnt: int) -> None:
    for p in ENC.packets(EncHeap(cnt, [Item(0x1000, bytes(100))])):
        queue.add_packet(p)


async def wait_for(predicate: object, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():  # type: ignore[operator]
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.001)


@pytest.mark.asyncio
async def test_async_for_over_a_buffer() -> None:
    stream = spead2.recv.asyncio.Stream(spead2.ThreadPool())
    stream.add_buffer_reader(heaps_bytes(range(1, 101)))
    assert [heap.cnt async for heap in stream] == list(range(1, 101))
    with pytest.raises(spead2.Stopped):
        await stream.get()
    with pytest.raises(spead2.Stopped):
        stream.get_nowait()


@pytest.mark.asyncio
async def test_several_gets_in_flight_are_served_in_order() -> None:
    queue = spead2.InprocQueue()
    stream = spead2.recv.asyncio.Stream(None, StreamConfig(), RingStreamConfig(heaps=8))
    stream.add_inproc_reader(queue)
    tasks = [asyncio.ensure_future(stream.get()) for _ in range(3)]
    await asyncio.sleep(0)
    for cnt in (7, 8, 9):
        add_heap(queue, cnt)
    assert [(await t).cnt for t in tasks] == [7, 8, 9]
    # a later get queues behind waiting ones, even if a heap is already there
    first = asyncio.ensure_future(stream.get())
    await asyncio.sleep(0)
    add_heap(queue, 10)
    add_heap(queue, 11)
    second = asyncio.ensure_future(stream.get())
    assert ((await first).cnt, (await second).cnt) == (10, 11)
    stream.stop()


@pytest.mark.asyncio
async def test_cancelled_get_loses_nothing() -> None:
    queue = spead2.InprocQueue()
    stream = spead2.recv.asyncio.Stream(None)
    stream.add_inproc_reader(queue)
    waiting = asyncio.ensure_future(stream.get())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    add_heap(queue, 1)
    assert (await asyncio.wait_for(stream.get(), 5)).cnt == 1
    stream.stop()


@pytest.mark.asyncio
async def test_get_cancelled_after_its_heap_arrived_gives_the_heap_back() -> None:
    data = heaps_bytes([5])
    stream = spead2.recv.asyncio.Stream(None)
    loop = asyncio.get_running_loop()
    waiting = asyncio.ensure_future(stream.get())
    await asyncio.sleep(0)

    def deliver_then_cancel() -> None:
        stream._core.feed_datagram(ffi.from_buffer(data), len(data))  # resolves the waiter's future
        waiting.cancel()  # ... and the task is cancelled before it could run

    loop.call_soon(deliver_then_cancel)
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert stream.get_nowait().cnt == 5
    stream.stop()


@pytest.mark.asyncio
async def test_stop_wakes_waiters_with_stopped() -> None:
    stream = spead2.recv.asyncio.Stream(None)
    stream.add_inproc_reader(spead2.InprocQueue())
    tasks = [asyncio.ensure_future(stream.get()) for _ in range(2)]
    await asyncio.sleep(0)
    stream.stop()
    for task in tasks:
        with pytest.raises(spead2.Stopped):
            await task


@pytest.mark.asyncio
async def test_get_nowait_empty() -> None:
    stream = spead2.recv.asyncio.Stream(None)
    stream.add_inproc_reader(spead2.InprocQueue())
    with pytest.raises(spead2.Empty):
        stream.get_nowait()
    stream.stop()


def test_created_outside_a_loop_runs_on_the_first_one_awaiting() -> None:
    stream = spead2.recv.asyncio.Stream(spead2.ThreadPool())
    stream.add_buffer_reader(heaps_bytes([1, 2, 3]))

    async def consume() -> list[int]:
        return [heap.cnt async for heap in stream]

    assert asyncio.run(consume()) == [1, 2, 3]


@pytest.mark.asyncio
async def test_busy_stream_does_not_starve_the_loop() -> None:
    """A large buffer decodes in slices: other tasks keep running meanwhile."""
    stream = spead2.recv.asyncio.Stream(None, StreamConfig(), RingStreamConfig(heaps=64))
    stream.add_buffer_reader(heaps_bytes(range(1, 20001), size=1000))
    ticks = 0
    done = False

    async def ticker() -> None:
        nonlocal ticks
        while not done:
            ticks += 1
            await asyncio.sleep(0)

    tick_task = asyncio.ensure_future(ticker())
    n = 0
    async for _heap in stream:
        n += 1
    done = True
    await tick_task
    assert n == 20000
    assert ticks > 10


@pytest.mark.asyncio
async def test_explicit_start() -> None:
    queue = spead2.InprocQueue()
    add_heap(queue, 1)
    stream = spead2.recv.asyncio.Stream(None, StreamConfig(explicit_start=True))
    stream.add_inproc_reader(queue)
    await asyncio.sleep(0.01)
    with pytest.raises(spead2.Empty):
        stream.get_nowait()
    stream.start()
    with pytest.raises(RuntimeError):
        stream.add_inproc_reader(queue)
    assert (await asyncio.wait_for(stream.get(), 5)).cnt == 1
    stream.stop()


@pytest.mark.asyncio
async def test_full_ring_pauses_and_resumes_on_the_same_loop() -> None:
    stream = spead2.recv.asyncio.Stream(None, StreamConfig(), RingStreamConfig(heaps=2))
    stream.add_buffer_reader(heaps_bytes(range(1, 101)))
    got = []
    async for heap in stream:
        assert stream.ringbuffer.size() <= 2
        got.append(heap.cnt)
        await asyncio.sleep(0)
    assert got == list(range(1, 101))
    assert stream.stats["worker_blocked"] > 0


@pytest.mark.asyncio
async def test_used_from_another_loop_is_refused() -> None:
    stream = spead2.recv.asyncio.Stream(None)

    async def elsewhere() -> None:
        await stream.get()

    def run_other_loop() -> None:
        with pytest.raises(RuntimeError, match="another event loop"):
            asyncio.run(elsewhere())

    await asyncio.get_running_loop().run_in_executor(None, run_other_loop)
    stream.stop()


@pytest.mark.asyncio
async def test_readers_added_from_another_thread() -> None:
    queue = spead2.InprocQueue()
    stream = spead2.recv.asyncio.Stream(None)
    await asyncio.get_running_loop().run_in_executor(None, stream.add_inproc_reader, queue)
    add_heap(queue, 3)
    assert (await asyncio.wait_for(stream.get(), 5)).cnt == 3
    await asyncio.get_running_loop().run_in_executor(None, stream.stop)
    with pytest.raises(spead2.Stopped):
        await stream.get()
