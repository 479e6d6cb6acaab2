"""Receiving heaps in Twisted programs.

Two ways in, depending on the reactor:

* **The asyncio reactor** (:class:`twisted.internet.asyncioreactor.AsyncioSelectorReactor`) runs
  on an asyncio event loop, so a :class:`spead2.recv.asyncio.Stream` runs on it directly.
  :func:`next_heap` gives a :class:`~twisted.internet.defer.Deferred` for the next heap
  (cancelling it cancels the wait and loses no heap), and :func:`heaps` an async iterator for
  ``async for`` in coroutines run by :func:`~twisted.internet.defer.ensureDeferred`.
* **Any reactor** (the default epoll/poll/select reactors included): :class:`HeapReader` watches
  the ``fd`` of a blocking :class:`spead2.recv.Stream` (whose readers run on its ThreadPool) and
  hands every heap to a callback on the reactor thread.

Importing this module does not install a reactor.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorFDSet, IReadDescriptor
from twisted.python.failure import Failure
from zope.interface import implementer

from spead2._errors import Empty, Stopped
from spead2.recv._stream import AnyHeap, _StreamBase

__all__ = ["HeapReader", "heaps", "next_heap"]

_logger = logging.getLogger("spead2")


def _asyncio_loop(stream: Any) -> asyncio.AbstractEventLoop:
    """The event loop to run ``stream.get()`` on: the running one, else the installed asyncio
    reactor's (before ``reactor.run()``)."""
    from spead2.recv.asyncio import Stream as AsyncioStream

    if not isinstance(stream, AsyncioStream):
        raise TypeError(
            f"expected a spead2.recv.asyncio.Stream, not {type(stream).__name__} "
            "(use HeapReader for a blocking spead2.recv.Stream)"
        )
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        pass
    reactor = sys.modules.get("twisted.internet.reactor")
    loop = getattr(reactor, "_asyncioEventloop", None)
    if isinstance(loop, asyncio.AbstractEventLoop):
        return loop
    raise RuntimeError(
        "spead2.recv.twisted.next_heap needs Twisted's asyncio reactor "
        "(twisted.internet.asyncioreactor.install()); with other reactors, use HeapReader "
        "with a blocking spead2.recv.Stream"
    )


def next_heap(stream: Any) -> Deferred[AnyHeap]:
    """A Deferred for the next heap of an asyncio ``stream`` (asyncio reactor only).

    It fails with :exc:`spead2.Stopped` once the stream has stopped and every heap has been
    taken.  Several may be outstanding; they fire in the order they were made.  Cancelling one
    cancels its wait: a heap it would have received goes to the next caller instead.
    """
    loop = _asyncio_loop(stream)
    return Deferred.fromFuture(loop.create_task(stream.get()))


class _DeferredHeaps:
    """Async iterator over the heaps of a stream, for coroutines driven by Twisted."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def __aiter__(self) -> _DeferredHeaps:
        return self

    async def __anext__(self) -> AnyHeap:
        try:
            return await next_heap(self._stream)
        except Stopped:
            raise StopAsyncIteration from None


def heaps(stream: Any) -> AsyncIterator[AnyHeap]:
    """Iterates over an asyncio ``stream`` in coroutines run by ``ensureDeferred`` (asyncio reactor).

    ``async for heap in heaps(stream)`` ends when the stream stops.  (Coroutines run by asyncio
    itself should use ``async for heap in stream``: Twisted's coroutine runner only awaits
    Deferreds, which is what this iterator hands it.)
    """
    return _DeferredHeaps(stream)


@implementer(IReadDescriptor)
class HeapReader:
    """Delivers the heaps of a stream to ``callback`` on the reactor thread (any reactor).

    The reactor watches ``stream.fd``, which holds one byte per heap ready; on each wake-up the
    reader takes up to ``max_per_read`` heaps with ``get_nowait`` and calls ``callback(heap)``
    for each.  Once the stream has stopped and is drained, the reader removes itself and
    :attr:`finished` fires with the number of heaps delivered.  If ``callback`` raises, the
    reader stops the stream and :attr:`finished` fails with the exception.

    Use a blocking :class:`spead2.recv.Stream` (its readers run on its ThreadPool); an asyncio
    stream works too under the asyncio reactor.  Call :meth:`start` (or let the constructor do
    it with ``start=True``) from the reactor thread.
    """

    def __init__(
        self,
        stream: _StreamBase,
        callback: Callable[[AnyHeap], object],
        reactor: Any = None,
        *,
        max_per_read: int = 64,
        start: bool = True,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        if not IReactorFDSet.providedBy(reactor):
            raise TypeError("the reactor does not support file descriptors (IReactorFDSet)")
        if max_per_read < 1:
            raise ValueError("max_per_read must be at least 1")
        self._stream = stream
        self._callback = callback
        self._reactor = reactor
        self._max_per_read = max_per_read
        self._fd = stream.fd
        self._reading = False
        self._done = False
        #: How many heaps have been handed to the callback.
        self.delivered = 0
        #: Fires with the number of heaps delivered once the stream has stopped and been drained.
        self.finished: Deferred[int] = Deferred()
        if start:
            self.start()

    def start(self) -> None:
        """Starts watching the stream (from the reactor thread)."""
        if not self._reading and not self._done:
            self._reading = True
            self._reactor.addReader(self)

    def pause(self) -> None:
        """Stops taking heaps for now (they wait in the stream's ring; its readers pause when it
        is full)."""
        if self._reading:
            self._reading = False
            self._reactor.removeReader(self)

    def stop(self) -> None:
        """Stops the stream; heaps already queued are still delivered, then :attr:`finished` fires."""
        self._stream.stop()

    # ---- IReadDescriptor ----

    def fileno(self) -> int:
        return self._fd

    def logPrefix(self) -> str:
        return "spead2.HeapReader"

    def doRead(self) -> None:
        self._deliver(self._max_per_read)

    def connectionLost(self, reason: Failure) -> None:
        # The reactor dropped the descriptor: poll-based reactors do so on the hang-up that
        # follows the last heap of a stopped stream (or at shutdown, e.g. reactor.removeAll).
        if self._done:
            return
        self._reading = False
        if not self._deliver(None):
            self._finish(reason)

    def _deliver(self, limit: int | None) -> bool:
        """Hands up to ``limit`` ready heaps to the callback.  True if the reader is done."""
        n = 0
        while limit is None or n < limit:
            try:
                heap = self._stream.get_nowait()
            except Empty:
                return False
            except Stopped:
                self._finish(None)
                return True
            try:
                self._callback(heap)
            except BaseException:
                failure = Failure()
                self._stream.stop()
                self._finish(failure)
                return True
            self.delivered += 1
            n += 1
            if self._done:
                return True
            if limit is not None and not self._reading:  # paused by the callback
                return False
        return False

    def _finish(self, failure: Failure | None) -> None:
        if self._done:
            return
        self._done = True
        if self._reading:
            self._reading = False
            self._reactor.removeReader(self)
        if failure is None:
            self.finished.callback(self.delivered)
        else:
            self.finished.errback(failure)
