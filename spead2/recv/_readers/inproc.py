"""add_inproc_reader: packets from an InprocQueue, each one datagram."""

from __future__ import annotations

from spead2._inproc import InprocQueue
from spead2._kernel import ffi
from spead2.recv._core import FULL, STOPPED, StreamCore

#: Packets taken from the queue per loop callback.
BATCH = 256


class InprocReader:
    def __init__(self, core: StreamCore, queue: InprocQueue) -> None:
        if not isinstance(queue, InprocQueue):
            raise TypeError(f"expected an InprocQueue, not {type(queue).__name__}")
        self._core = core
        self._queue = queue
        self._pending: list[bytes] = []
        self._wake_scheduled = False
        self._paused = False
        self._closed = False
        self._started = False

    def start(self) -> None:
        self._started = True
        self._queue._subscribe(self._wake)
        self._wake()

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False
        self._wake()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._started:
                self._queue._unsubscribe(self._wake)
            self._pending = []

    def _wake(self) -> None:
        """Any thread: schedule a drain on the core's loop (coalesced)."""
        if self._wake_scheduled or self._closed:
            return
        self._wake_scheduled = True
        loop = self._core.loop
        assert loop is not None
        try:
            loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed: the stream is gone
            self._wake_scheduled = False

    def _drain(self) -> None:
        self._wake_scheduled = False
        if self._closed or self._paused:
            return
        ended = False
        took = -1  # packets taken from the queue this time (-1: fed leftovers instead)
        if not self._pending:
            self._pending, ended = self._queue._take(BATCH)
            self._pending.reverse()
            took = len(self._pending)
        while self._pending:
            packet = self._pending.pop()
            status = self._core.feed_datagram(ffi.from_buffer(packet), len(packet))
            if status == STOPPED or self._closed:
                return
            if status == FULL:
                return  # resume() drains the rest
        if ended:
            self._core.reader_finished(self)
        elif took in (-1, BATCH):
            # Leftovers were fed, or the batch was full: the queue may hold more, and wakes that
            # came while we were paused or busy were coalesced away.
            self._wake()
