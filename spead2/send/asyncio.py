"""Send streams for asyncio: they run on the caller's event loop.

``async_send_heap`` and ``async_send_heaps`` queue at once (so order is kept) and return a
future that resolves to the bytes sent, or fails with OSError (for instance when more than
``max_heaps`` heaps would be in flight).  The ``thread_pool`` argument is accepted for
compatibility; nothing runs on it.
"""

from __future__ import annotations

import asyncio
import functools
import operator
import socket
import warnings
from collections.abc import Callable
from typing import Any, ClassVar

from spead2._threadpool import ThreadPool
from spead2.send._config import GroupMode, StreamConfig
from spead2.send._core import Done, SendCore
from spead2.send._heap import Heap
from spead2.send._sockets import TCP_DEFAULT_BUFFER_SIZE, tcp_args, tcp_socket
from spead2.send._streams import (
    Stream,
    _check_pool,
    _InprocStream,
    _mode,
    _references,
    _UdpStream,
    outcome_error,
    tcp_core,
)

__all__ = ["AsyncStream", "InprocStream", "TcpStream", "UdpStream"]


def _current_loop() -> asyncio.AbstractEventLoop:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return asyncio.get_event_loop()


def _runs_in(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _resolve(future: asyncio.Future[int], code: int, sent: int) -> None:
    if future.done():  # cancelled by its awaiter: the heap was sent (or failed) anyway
        return
    if code:
        future.set_exception(outcome_error(code))
    else:
        future.set_result(sent)


class AsyncStream(Stream):
    """What every asyncio send stream has."""

    __module__ = "spead2.send.asyncio"

    def _attach(self, thread_pool: ThreadPool, core: SendCore) -> None:
        _check_pool(thread_pool)
        self._core = core

    @property
    def fd(self) -> int:
        """-1: completions are delivered on the event loop itself, no file descriptor is needed."""
        return -1

    def async_send_heap(
        self, heap: Heap, cnt: int = -1, substream_index: int = 0, rate: float = -1.0
    ) -> asyncio.Future[int]:
        """Queues a heap; the future gives the bytes sent (not a coroutine: queueing is now)."""
        cnt, substream_index, rate = operator.index(cnt), operator.index(substream_index), float(rate)
        return self._queue(lambda done: self._core.submit_one(heap, cnt, substream_index, rate, done))

    def async_send_heaps(self, heaps: Any, mode: GroupMode) -> asyncio.Future[int]:
        """Queues a group of heaps; one future for all of them."""
        refs, group_mode = _references(heaps), _mode(mode)
        return self._queue(lambda done: self._core.submit(refs, group_mode, done))

    def _queue(self, submit: Callable[[Done], object]) -> asyncio.Future[int]:
        loop = _current_loop()
        self._core.bind(loop)
        future: asyncio.Future[int] = loop.create_future()
        try:
            submit(functools.partial(_resolve, future))
        except OSError as exc:
            future.set_exception(exc)
            return future
        self._core.last_done = future
        self._core.schedule()
        return future

    def flush(self) -> None:
        """Blocks until every queued heap is sent (or failed).  From another thread than the
        stream's loop (while that loop runs), it waits for the loop to send them."""
        loop = self._core.loop
        if loop is not None and loop.is_running() and not _runs_in(loop):
            asyncio.run_coroutine_threadsafe(self.async_flush(), loop).result()
        else:
            self._core.drain()

    async def async_flush(self) -> None:
        """Waits until the heaps queued before this call are sent (or failed)."""
        future = self._core.last_done
        if future is not None:
            await asyncio.wait([future])


class UdpStream(_UdpStream, AsyncStream):
    """SPEAD over UDP, with the constructor forms of :class:`spead2.send.UdpStream`."""

    __module__ = "spead2.send.asyncio"


class TcpStream(AsyncStream):
    """SPEAD over TCP: ``await TcpStream.connect(...)``, or the constructor with a connected
    socket."""

    __module__ = "spead2.send.asyncio"
    DEFAULT_BUFFER_SIZE: ClassVar[int] = TCP_DEFAULT_BUFFER_SIZE

    def __init__(
        self,
        thread_pool: ThreadPool,
        socket: socket.socket,
        config: StreamConfig = StreamConfig(),  # noqa: B008
    ) -> None:
        pool, spec = tcp_args((thread_pool, socket, config), {})
        sock, _ = tcp_socket(spec)
        self._attach(pool, tcp_core(sock, spec.config))

    @classmethod
    async def connect(cls, *args: Any, **kwargs: Any) -> TcpStream:
        """Connects (with the arguments of :class:`spead2.send.TcpStream`) and returns the stream."""
        thread_pool, spec = tcp_args(args, kwargs)
        _check_pool(thread_pool)
        sock, address = tcp_socket(spec)
        assert address is not None  # (tcp_args gave an endpoint form: connect to it)
        try:
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, address)
            return cls(thread_pool, sock, spec.config)
        finally:
            sock.close()


class InprocStream(_InprocStream, AsyncStream):
    """Sends to InprocQueues (one per substream)."""

    __module__ = "spead2.send.asyncio"
