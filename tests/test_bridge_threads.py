"""A blocking stream read in a thread that feeds an asyncio application (the pattern existing
spead2 users have), in the forms the documentation shows.  Async tests run on the stdlib loop
and on uvloop; the ThreadPool's own loop is both as well (conftest.py).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np
import pytest

import spead2
import spead2.recv
from spead2.tools import demo


def feed_all(queue: spead2.InprocQueue, n_heaps: int, stop: bool = True) -> None:
    for group in demo.heap_packets(n_heaps, stop=False):
        for packet in group:
            queue.add_packet(packet)
    if stop:
        queue.stop()


@pytest.mark.asyncio
async def test_thread_hands_values_to_loop(thread_pool: spead2.ThreadPool) -> None:
    """call_soon_threadsafe(queue.put_nowait, ...) from the receiving thread; None marks the end."""
    loop = asyncio.get_running_loop()
    results: asyncio.Queue[tuple[int, dict[str, Any]] | None] = asyncio.Queue()
    stream = spead2.recv.Stream(thread_pool)
    stream.add_buffer_reader(b"".join(demo.packets(10)))

    def receive() -> None:
        item_group = spead2.ItemGroup()
        try:
            for heap in stream:
                updated = item_group.update(heap)
                # Copy what crosses threads: item values are views of the heap's memory, which
                # is fine to share, but the item objects themselves are updated in place.
                values = {name: item.value for name, item in updated.items()}
                loop.call_soon_threadsafe(results.put_nowait, (heap.cnt, values))
        finally:
            loop.call_soon_threadsafe(results.put_nowait, None)

    thread = threading.Thread(target=receive, name="receiver")
    thread.start()
    seen = []
    while (entry := await asyncio.wait_for(results.get(), 30)) is not None:
        cnt, values = entry
        for name, value in demo.heap_values(cnt - 1).items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(values[name], value)
            else:
                assert values[name] == value
        seen.append(cnt)
    thread.join()
    assert seen == list(range(1, 11))


@pytest.mark.asyncio
async def test_get_in_executor(thread_pool: spead2.ThreadPool) -> None:
    """await loop.run_in_executor(None, stream.get): blocking get without a dedicated thread."""
    loop = asyncio.get_running_loop()
    stream = spead2.recv.Stream(thread_pool)
    queue = spead2.InprocQueue()
    stream.add_inproc_reader(queue)
    pending = loop.run_in_executor(None, stream.get)
    await asyncio.sleep(0.02)
    assert not pending.done()
    feed_all(queue, 3)
    cnts = [(await pending).cnt]
    while True:
        try:
            heap = await loop.run_in_executor(None, stream.get)
        except spead2.Stopped:
            break
        cnts.append(heap.cnt)
    assert cnts == [1, 2, 3]


@pytest.mark.asyncio
async def test_stop_from_loop_ends_thread(thread_pool: spead2.ThreadPool) -> None:
    """Shutting down: stream.stop() from the asyncio side ends the thread's ``for`` loop."""
    loop = asyncio.get_running_loop()
    stream = spead2.recv.Stream(thread_pool)
    queue = spead2.InprocQueue()
    stream.add_inproc_reader(queue)
    first = asyncio.Event()
    count = 0

    def receive() -> None:
        nonlocal count
        for _heap in stream:
            count += 1
            loop.call_soon_threadsafe(first.set)

    thread = threading.Thread(target=receive)
    thread.start()
    feed_all(queue, 2, stop=False)
    await asyncio.wait_for(first.wait(), 30)
    stream.stop()
    await loop.run_in_executor(None, thread.join, 30)
    assert not thread.is_alive()
    assert count >= 1
