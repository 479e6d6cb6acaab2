"""Streams inside Tornado: Tornado (6+) runs on asyncio, so the asyncio Stream needs no adapter.

Covered: ``await stream.get()`` in a request handler, ``async for`` in a consumer spawned on the
IOLoop, and a blocking stream consumed in a thread that hands values to the IOLoop with
``add_callback``, on a Tornado server on the loopback interface.  Async tests run on the stdlib
loop and on uvloop (conftest.py).
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import numpy as np
import pytest

pytest.importorskip("tornado")

import tornado.httpclient
import tornado.httpserver
import tornado.ioloop
import tornado.netutil
import tornado.web

import spead2
import spead2.recv
import spead2.recv.asyncio
from spead2.tools import demo


def summary(updated: dict[str, spead2.Item]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, item in updated.items():
        value = item.value
        out[name] = float(np.sum(np.abs(value))) if isinstance(value, np.ndarray) else value
    return out


def expected_summary(index: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in demo.heap_values(index).items():
        out[name] = float(np.sum(np.abs(value))) if isinstance(value, np.ndarray) else value
    return out


def approx(d: dict[str, Any]) -> dict[str, Any]:
    return {k: pytest.approx(v, rel=1e-6) if isinstance(v, float) else v for k, v in d.items()}


class Server:
    """A Tornado app on 127.0.0.1 with an ephemeral port, and a client for it."""

    def __init__(self, handlers: list[Any]) -> None:
        self.app = tornado.web.Application(handlers)
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        self.server = tornado.httpserver.HTTPServer(self.app)
        self.server.add_sockets(sockets)
        self.client = tornado.httpclient.AsyncHTTPClient(force_instance=True)

    async def get_json(self, path: str) -> Any:
        response = await self.client.fetch(f"http://127.0.0.1:{self.port}{path}", request_timeout=30)
        return json.loads(response.body)

    async def close(self) -> None:
        self.client.close()
        self.server.stop()
        await self.server.close_all_connections()


class NextHeapHandler(tornado.web.RequestHandler):
    """Answers each request with the next heap of the stream."""

    def initialize(self, stream: spead2.recv.asyncio.Stream, item_group: spead2.ItemGroup) -> None:
        self.stream = stream
        self.item_group = item_group

    async def get(self) -> None:
        try:
            heap = await self.stream.get()
        except spead2.Stopped:
            self.write({"stopped": True})
            return
        self.write({"cnt": heap.cnt, "items": summary(self.item_group.update(heap))})


@pytest.mark.asyncio
async def test_handler_awaits_get() -> None:
    stream = spead2.recv.asyncio.Stream()
    queue = spead2.InprocQueue()
    stream.add_inproc_reader(queue)
    server = Server([(r"/next", NextHeapHandler, {"stream": stream, "item_group": spead2.ItemGroup()})])
    try:
        groups = demo.heap_packets(3)
        # The request waits in the handler until the heap arrives.
        pending = asyncio.ensure_future(server.get_json("/next"))
        await asyncio.sleep(0.05)
        assert not pending.done()
        for packet in groups[0]:
            queue.add_packet(packet)
        reply = await pending
        assert reply["cnt"] == 1
        assert reply["items"] == approx(expected_summary(0))
        for group in groups[1:]:
            for packet in group:
                queue.add_packet(packet)
        queue.stop()
        for index in (1, 2):
            reply = await server.get_json("/next")
            assert reply["cnt"] == index + 1
            assert reply["items"] == approx(expected_summary(index))
        assert await server.get_json("/next") == {"stopped": True}
    finally:
        stream.stop()
        await server.close()


class LatestHandler(tornado.web.RequestHandler):
    def initialize(self, state: dict[str, Any]) -> None:
        self.state = state

    def get(self) -> None:
        self.write(self.state)


@pytest.mark.asyncio
async def test_consumer_on_ioloop() -> None:
    """A service: a consumer spawned on the IOLoop keeps the latest values, handlers serve them."""
    state: dict[str, Any] = {"heaps": 0, "done": False}
    stream = spead2.recv.asyncio.Stream(None, spead2.recv.StreamConfig(), spead2.recv.RingStreamConfig())
    stream.add_buffer_reader(b"".join(demo.packets(8)))

    async def consume() -> None:
        item_group = spead2.ItemGroup()
        async for heap in stream:
            state.update(summary(item_group.update(heap)))
            state["heaps"] += 1
        state["done"] = True

    ioloop = tornado.ioloop.IOLoop.current()
    assert ioloop.asyncio_loop is asyncio.get_running_loop()  # type: ignore[attr-defined]
    ioloop.spawn_callback(consume)
    server = Server([(r"/latest", LatestHandler, {"state": state})])
    try:
        for _ in range(200):
            reply = await server.get_json("/latest")
            if reply["done"]:
                break
            await asyncio.sleep(0.01)
        assert reply["heaps"] == 8
        assert {k: reply[k] for k in expected_summary(7)} == approx(expected_summary(7))
    finally:
        await server.close()


@pytest.mark.asyncio
async def test_blocking_stream_in_thread_feeds_ioloop(thread_pool: spead2.ThreadPool) -> None:
    """The pattern of existing code: a thread iterates a blocking stream and hands each result
    to the IOLoop with add_callback (the one IOLoop method that is safe from other threads)."""
    ioloop = tornado.ioloop.IOLoop.current()
    received: list[tuple[int, dict[str, Any]]] = []
    finished = asyncio.Event()
    stream = spead2.recv.Stream(thread_pool)
    queue = spead2.InprocQueue()
    stream.add_inproc_reader(queue)

    def worker() -> None:
        item_group = spead2.ItemGroup()
        for heap in stream:
            ioloop.add_callback(received.append, (heap.cnt, summary(item_group.update(heap))))
        ioloop.add_callback(finished.set)

    thread = threading.Thread(target=worker)
    thread.start()
    for group in demo.heap_packets(6):
        for packet in group:
            queue.add_packet(packet)
        await asyncio.sleep(0.002)
    queue.stop()
    await asyncio.wait_for(finished.wait(), 30)
    thread.join()
    assert [cnt for cnt, _ in received] == [1, 2, 3, 4, 5, 6]
    for index, (_, values) in enumerate(received):
        assert values == approx(expected_summary(index))


def test_ioloop_run_sync() -> None:
    """A plain Tornado program: IOLoop.run_sync drives a coroutine that reads a stream."""
    ioloop = tornado.ioloop.IOLoop(make_current=False)

    async def main() -> list[int]:
        stream = spead2.recv.asyncio.Stream()
        stream.add_buffer_reader(b"".join(demo.packets(4)))
        return [heap.cnt async for heap in stream]

    try:
        assert ioloop.run_sync(main, timeout=30) == [1, 2, 3, 4]
    finally:
        ioloop.close()
