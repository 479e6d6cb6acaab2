"""asyncio ChunkRingbuffer: awaitable get/put over the same ring as the blocking one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from spead2._errors import Stopped
from spead2.recv._chunk_config import Chunk
from spead2.recv._chunk_ring import _check_chunk, _ChunkRingbuffer

__all__ = ["ChunkRingbuffer"]


def _waker(loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> Callable[[], None]:
    def resolve() -> None:
        if not future.done():
            future.set_result(None)

    def wake() -> None:
        loop.call_soon_threadsafe(resolve)

    return wake


class ChunkRingbuffer(_ChunkRingbuffer):
    """A ChunkRingbuffer whose ``get`` and ``put`` are coroutines (and an async iterator until
    stopped).  Cancelling a ``get`` or ``put`` loses no chunk."""

    async def get(self) -> Chunk:
        """The next chunk; raises spead2.Stopped once stopped and drained."""
        loop = asyncio.get_running_loop()
        while True:
            future: asyncio.Future[None] = loop.create_future()
            chunk = self._take_or_notify(_waker(loop, future))
            if chunk is not None:
                return chunk
            await future

    async def put(self, chunk: Chunk) -> None:
        """Adds a chunk, waiting for room; raises spead2.Stopped if the ring is stopped."""
        _check_chunk(chunk)
        loop = asyncio.get_running_loop()
        while True:
            future: asyncio.Future[None] = loop.create_future()
            if self._give_or_notify(chunk, _waker(loop, future)):
                return
            await future

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Chunk:
        try:
            return await self.get()
        except Stopped:
            raise StopAsyncIteration from None
