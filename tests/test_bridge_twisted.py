"""spead2.recv.twisted under real Twisted reactors.

A reactor can be installed only once per process, so each reactor runs in a subprocess of its
own: this file is also the script it runs (``python test_bridge_twisted.py MODE``), which prints
the checks it passed as one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from typing import Any

import numpy as np
import pytest

import spead2
import spead2.recv
import spead2.recv.asyncio
from spead2.tools import demo

MODES = {
    "asyncio-reactor/asyncio": "AsyncioSelectorReactor",
    "asyncio-reactor/uvloop": "AsyncioSelectorReactor",
    "default-reactor": None,
    "select-reactor": "SelectReactor",
}
ASYNCIO_CHECKS = ["next_heap", "cancel", "inlineCallbacks", "async_for", "stopped", "heap_reader_asyncio"]
DEFAULT_CHECKS = ["heap_reader", "live_feed", "pause", "callback_error", "next_heap_refused"]


@pytest.mark.parametrize("mode", list(MODES))
def test_twisted_reactor(mode: str) -> None:
    pytest.importorskip("twisted")
    if mode.endswith("uvloop"):
        pytest.importorskip("uvloop")
    proc = subprocess.run(
        [sys.executable, "-W", "error", __file__, mode], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    expected_reactor = MODES[mode]
    if expected_reactor is None:
        assert result["reactor"] != "AsyncioSelectorReactor"
    else:
        assert result["reactor"] == expected_reactor
    assert result["checks"] == (ASYNCIO_CHECKS if mode.startswith("asyncio") else DEFAULT_CHECKS)


# ---------------------------------------------------------------- subprocess side


def check_values(item_group: spead2.ItemGroup, index: int) -> None:
    expected = demo.heap_values(index)
    for name, value in expected.items():
        got = item_group[name].value
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(got, value)
        else:
            assert got == value, (name, got, value)


def feed(queue: spead2.InprocQueue, packets: list[bytes]) -> None:
    for packet in packets:
        queue.add_packet(packet)


async def asyncio_reactor_checks(reactor: Any, checks: list[str]) -> None:
    from twisted.internet import defer
    from twisted.internet.task import deferLater

    from spead2.recv.twisted import HeapReader, heaps, next_heap

    groups = demo.heap_packets(6)  # heaps 1-6, then the stop heap
    queue = spead2.InprocQueue()
    stream = spead2.recv.asyncio.Stream(None, spead2.recv.StreamConfig(max_heaps=2))
    stream.add_inproc_reader(queue)
    item_group = spead2.ItemGroup()

    d = next_heap(stream)
    await deferLater(reactor, 0.02)
    assert not d.called
    feed(queue, groups[0])
    heap = await d
    assert heap.cnt == 1
    item_group.update(heap)
    check_values(item_group, 0)
    checks.append("next_heap")

    # Cancelling a wait loses no heap: the next waiter gets it.
    d1, d2 = next_heap(stream), next_heap(stream)
    d1.cancel()
    try:
        await d1
    except (defer.CancelledError, asyncio.CancelledError):
        pass
    else:
        raise AssertionError("a cancelled Deferred fired")
    feed(queue, groups[1])
    heap = await d2
    assert heap.cnt == 2
    item_group.update(heap)
    check_values(item_group, 1)
    checks.append("cancel")

    @defer.inlineCallbacks
    def take() -> Any:
        heap = yield next_heap(stream)
        return heap

    feed(queue, groups[2])
    heap = await take()
    assert heap.cnt == 3
    item_group.update(heap)
    checks.append("inlineCallbacks")

    for group in groups[3:]:
        feed(queue, group)
    queue.stop()
    seen = []
    async for heap in heaps(stream):
        item_group.update(heap)
        check_values(item_group, heap.cnt - 1)
        seen.append(heap.cnt)
    assert seen == [4, 5, 6], seen
    checks.append("async_for")

    try:
        await next_heap(stream)
    except spead2.Stopped:
        checks.append("stopped")

    # HeapReader also works on the asyncio reactor, with an asyncio stream.
    stream = spead2.recv.asyncio.Stream(None)
    stream.add_buffer_reader(b"".join(demo.packets(5)))
    cnts: list[int] = []
    reader = HeapReader(stream, lambda heap: cnts.append(heap.cnt), reactor)
    assert await reader.finished == 5
    assert cnts == [1, 2, 3, 4, 5]
    checks.append("heap_reader_asyncio")


async def default_reactor_checks(reactor: Any, checks: list[str]) -> None:
    from twisted.internet.task import deferLater

    from spead2.recv.twisted import HeapReader, next_heap

    pool = spead2.ThreadPool()

    # Heaps already there: all delivered, then `finished` fires with the count.
    stream = spead2.recv.Stream(pool, spead2.recv.StreamConfig(), spead2.recv.RingStreamConfig(heaps=2))
    stream.add_buffer_reader(b"".join(demo.packets(12)))
    item_group = spead2.ItemGroup()
    cnts: list[int] = []

    def on_heap(heap: Any) -> None:
        assert threading.current_thread() is threading.main_thread()
        item_group.update(heap)
        check_values(item_group, heap.cnt - 1)
        cnts.append(heap.cnt)

    reader = HeapReader(stream, on_heap, reactor, max_per_read=3)
    assert await reader.finished == 12
    assert cnts == list(range(1, 13))
    checks.append("heap_reader")

    # Heaps arriving while the reactor runs, fed from another thread.
    queue = spead2.InprocQueue()
    stream = spead2.recv.Stream(pool)
    stream.add_inproc_reader(queue)
    cnts = []
    reader = HeapReader(stream, lambda heap: cnts.append(heap.cnt), reactor)

    def sender() -> None:
        for group in demo.heap_packets(8, stop=False):
            feed(queue, group)
            threading.Event().wait(0.005)
        queue.stop()

    thread = threading.Thread(target=sender)
    thread.start()
    assert await reader.finished == 8
    thread.join()
    assert cnts == list(range(1, 9))
    checks.append("live_feed")

    # pause() holds heaps back; start() delivers them.
    stream = spead2.recv.Stream(pool, spead2.recv.StreamConfig(), spead2.recv.RingStreamConfig(heaps=8))
    queue = spead2.InprocQueue()
    stream.add_inproc_reader(queue)
    cnts = []
    reader = HeapReader(stream, lambda heap: cnts.append(heap.cnt), reactor, start=False)
    for group in demo.heap_packets(3, stop=False):
        feed(queue, group)
    await deferLater(reactor, 0.1)
    assert cnts == []
    reader.start()
    await deferLater(reactor, 0.1)
    assert cnts == [1, 2, 3]
    reader.pause()
    feed(queue, demo.heap_packets(4, stop=False)[3])
    await deferLater(reactor, 0.1)
    assert cnts == [1, 2, 3]
    reader.start()
    reader.stop()
    assert await reader.finished == 4
    checks.append("pause")

    # A callback that raises stops the stream and fails `finished`.
    stream = spead2.recv.Stream(pool)
    stream.add_buffer_reader(b"".join(demo.packets(5)))

    def bad(heap: Any) -> None:
        if heap.cnt == 2:
            raise ValueError("bad heap")

    reader = HeapReader(stream, bad, reactor)
    try:
        await reader.finished
    except ValueError as exc:
        assert str(exc) == "bad heap"
        assert reader.delivered == 1
        checks.append("callback_error")

    try:
        next_heap(spead2.recv.asyncio.Stream(None))
    except RuntimeError as exc:
        assert "asyncio reactor" in str(exc)
        try:
            next_heap(stream)
        except TypeError:
            checks.append("next_heap_refused")
    pool.stop()


def subprocess_main(mode: str) -> None:
    if mode.startswith("asyncio-reactor"):
        if mode.endswith("uvloop"):
            import uvloop

            loop = uvloop.new_event_loop()
        else:
            loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        from twisted.internet import asyncioreactor

        asyncioreactor.install(loop)
        scenario = asyncio_reactor_checks
    else:
        if mode == "select-reactor":
            from twisted.internet import selectreactor

            selectreactor.install()
        scenario = default_reactor_checks
    from twisted.internet import defer, task

    checks: list[str] = []

    async def main(reactor: Any) -> None:
        await scenario(reactor, checks)
        print(json.dumps({"reactor": type(reactor).__name__, "checks": checks}), flush=True)

    task.react(lambda reactor: defer.ensureDeferred(main(reactor)))


if __name__ == "__main__":
    subprocess_main(sys.argv[1])
