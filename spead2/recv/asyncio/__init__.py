"""asyncio Stream: the readers run on the caller's event loop; ``get`` is a coroutine."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator

from spead2._errors import Stopped
from spead2._portal import LoopPortal
from spead2._threadpool import ThreadPool
from spead2.recv._config import RingStreamConfig, StreamConfig
from spead2.recv._stream import AnyHeap, _StreamBase
from spead2.recv.asyncio._chunk import ChunkRingbuffer

__all__ = ["ChunkRingbuffer", "Stream"]


class Stream(_StreamBase):
    """A stream whose readers run on an asyncio event loop.

    The loop is the one running when the stream is created, or else the first one ``get`` is
    awaited on; readers added before there is a loop start then.  Several ``get`` calls may be
    in flight: they are served in the order they were made.  Cancelling one loses no heap.
    """

    def __init__(
        self,
        thread_pool: ThreadPool | None = None,
        config: StreamConfig | None = None,
        ring_config: RingStreamConfig | None = None,
    ) -> None:
        super().__init__(thread_pool, config, ring_config)
        self._portal = LoopPortal()
        self._waiters: deque[asyncio.Future[AnyHeap]] = deque()
        # Heaps popped for a waiter that was cancelled before it could take them.
        self._returned: deque[AnyHeap] = deque()
        self._core.on_heaps = self._wake_waiters
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._bind(loop)

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._portal.bind(loop, threading.get_ident())
        self._core.bind(loop)

    def _loop_for_get(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._portal.loop is None:
            self._bind(loop)
        elif loop is not self._portal.loop:
            raise RuntimeError("the stream is in use on another event loop")
        return loop

    def _try_pop(self) -> AnyHeap | None:
        """A heap if one is ready, None if not; raises Stopped once stopped and drained."""
        if self._returned:
            return self._returned.popleft()
        heap = self._core.pop(0)
        if heap is None and self._core.drained():
            raise Stopped("the stream has stopped")
        return heap

    def get_nowait(self) -> AnyHeap:
        if self._returned:
            return self._returned.popleft()
        return super().get_nowait()

    def _wake_waiters(self) -> None:
        """Loop thread: hand ready heaps (or the stop) to waiting ``get`` calls, oldest first."""
        while self._waiters:
            future = self._waiters[0]
            if future.done():  # cancelled
                self._waiters.popleft()
                continue
            try:
                heap = self._try_pop()
            except Stopped as exc:
                while self._waiters:
                    future = self._waiters.popleft()
                    if not future.done():
                        future.set_exception(Stopped(*exc.args))
                return
            if heap is None:
                return
            self._waiters.popleft()
            future.set_result(heap)

    def _ready(self) -> AnyHeap | None:
        """``get``'s fast path: a heap at once, if no earlier ``get`` waits and this is the loop's
        thread (checked without ``asyncio.get_running_loop``, which makes a system call); raises
        Stopped once stopped and drained."""
        if self._waiters or not self._portal.in_loop_thread():
            return None
        return self._try_pop()

    async def get(self) -> AnyHeap:
        """The next heap; raises spead2.Stopped once the stream has stopped and is drained."""
        heap = self._ready()
        if heap is not None:
            return heap
        loop = self._loop_for_get()
        if not self._waiters:
            heap = self._try_pop()
            if heap is not None:
                return heap
        future: asyncio.Future[AnyHeap] = loop.create_future()
        self._waiters.append(future)
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled() and future.exception() is None:
                self._returned.appendleft(future.result())
            elif future in self._waiters:
                self._waiters.remove(future)
            raise

    def __aiter__(self) -> AsyncIterator[AnyHeap]:
        return self

    async def __anext__(self) -> AnyHeap:
        try:
            heap = self._ready()  # without a second coroutine per heap
            return heap if heap is not None else await self.get()
        except Stopped:
            raise StopAsyncIteration from None
