"""ChunkRingbuffer: a thread-safe bounded queue of chunks, with producer counting and stop.

One core serves every waiter: blocking ``get``/``put`` wait on a condition; the streams and the
asyncio ringbuffer register one-shot callbacks (``_on_change``) that run when the ring changes;
``data_fd``/``space_fd`` (made on first use) are readable while a get/put would not block.
"""

from __future__ import annotations

import logging
import operator
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from spead2._errors import Empty, Full, Stopped
from spead2.recv._chunk_config import Chunk

_logger = logging.getLogger("spead2")

#: Blocking waits wake up this often so that Ctrl-C gets through.
_POLL_S = 0.1


class _LevelFd:
    """A file descriptor that is readable exactly while a condition holds."""

    def __init__(self, level: bool) -> None:
        if hasattr(os, "eventfd"):
            self._read_fd = self._write_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        else:  # pragma: no cover - not Linux
            self._read_fd, self._write_fd = os.pipe()
            os.set_blocking(self._read_fd, False)
        self._level = False
        self.set(level)

    @property
    def fd(self) -> int:
        return self._read_fd

    def set(self, level: bool) -> None:
        if level == self._level:
            return
        self._level = level
        if level:
            os.write(self._write_fd, (1).to_bytes(8, "little"))
        else:
            try:
                os.read(self._read_fd, 8)
            except BlockingIOError:  # pragma: no cover - already drained
                pass

    def close(self) -> None:
        os.close(self._read_fd)
        if self._write_fd != self._read_fd:  # pragma: no cover - not Linux
            os.close(self._write_fd)


class _ChunkRingbuffer:
    """What the blocking and the asyncio ChunkRingbuffer share."""

    def __init__(self, maxsize: int) -> None:
        maxsize = operator.index(maxsize)
        if not 0 <= maxsize < 2**63:
            raise OverflowError("maxsize is out of range")
        self._maxsize = maxsize
        self._items: deque[Any] = deque()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._sleepers = 0  # threads in a blocking get or put (notified only if there are some)
        self._stopped = False
        self._producers = 0
        self._callbacks: list[Callable[[], None]] = []
        self._data_fd: _LevelFd | None = None
        self._space_fd: _LevelFd | None = None
        #: Streams (and groups) taking chunks from this ring; one alone may take spares early.
        self._takers = 0

    # ---- state ----

    @property
    def maxsize(self) -> int:
        return self._maxsize

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return len(self._items) >= self._maxsize

    @property
    def data_fd(self) -> int:
        """Readable while a chunk is ready, or once stopped."""
        with self._lock:
            if self._data_fd is None:
                self._data_fd = _LevelFd(self._data_level())
            return self._data_fd.fd

    @property
    def space_fd(self) -> int:
        """Readable while there is room, or once stopped."""
        with self._lock:
            if self._space_fd is None:
                self._space_fd = _LevelFd(self._space_level())
            return self._space_fd.fd

    def _data_level(self) -> bool:
        return bool(self._items) or self._stopped

    def _space_level(self) -> bool:
        return len(self._items) < self._maxsize or self._stopped

    # ---- non-blocking operations ----

    def get_nowait(self) -> Any:
        with self._lock:
            chunk = self._take()
        self._run_callbacks()
        return chunk

    def put_nowait(self, chunk: Any) -> None:
        _check_chunk(chunk)
        with self._lock:
            self._give(chunk)
        self._run_callbacks()

    def _take(self) -> Any:
        if self._items:
            chunk = self._items.popleft()
            self._changed()
            return chunk
        if self._stopped:
            raise Stopped("ring buffer has been stopped")
        raise Empty("ring buffer is empty")

    def _give(self, chunk: Any) -> None:
        if self._stopped:
            raise Stopped("ring buffer has been stopped")
        if len(self._items) >= self._maxsize:
            raise Full("ring buffer is full")
        self._items.append(chunk)
        self._changed()

    def stop(self) -> bool:
        """Stops the ring: no more puts; gets drain what is queued, then raise Stopped."""
        with self._lock:
            self._stopped = True
            self._changed()
        self._run_callbacks()
        return True

    def add_producer(self) -> None:
        with self._lock:
            self._producers += 1

    def remove_producer(self) -> bool:
        """A producer is done; the last one stops the ring (returns True then)."""
        with self._lock:
            if self._producers <= 0:
                return False
            self._producers -= 1
            if self._producers:
                return False
        return self.stop()

    # ---- waiting (lock held by the callers of _changed) ----

    def _changed(self) -> None:
        if self._sleepers:
            self._cond.notify_all()
        if self._data_fd is not None:
            self._data_fd.set(self._data_level())
        if self._space_fd is not None:
            self._space_fd.set(self._space_level())

    def _take_or_notify(self, callback: Callable[[], None]) -> Any:
        """A chunk, or None after arranging for ``callback`` to be called (once, from the thread
        that makes it) at the next change; raises Stopped once stopped and drained."""
        with self._lock:
            if not self._items and not self._stopped:
                self._callbacks.append(callback)
                return None
            chunk = self._take()
        self._run_callbacks()
        return chunk

    def _give_or_notify(self, chunk: Any, callback: Callable[[], None]) -> bool:
        """Adds a chunk (True), or arranges for ``callback`` to be called at the next change
        (False); raises Stopped if the ring is stopped."""
        with self._lock:
            if not self._stopped and len(self._items) >= self._maxsize:
                self._callbacks.append(callback)
                return False
            self._give(chunk)
        self._run_callbacks()
        return True

    def _take_nowait(self) -> Any:
        """A chunk, or None if there is none (or the ring is stopped)."""
        with self._lock:
            if not self._items:
                return None
            chunk = self._items.popleft()
            self._changed()
        self._run_callbacks()
        return chunk

    def _put_back(self, chunk: Any) -> None:
        """Returns a chunk taken early and not used, even to a stopped ring (whose chunks can
        still be taken out), as if it had never left; dropped if the ring has filled since."""
        with self._lock:
            if len(self._items) >= self._maxsize:
                return
            self._items.append(chunk)
            self._changed()
        self._run_callbacks()

    def _run_callbacks(self) -> None:
        if not self._callbacks:  # one registered after our change waits for a later one
            return
        with self._lock:
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # pragma: no cover - e.g. a waiter's loop already closed
                _logger.debug("chunk ringbuffer: a waiter's wake-up failed", exc_info=True)

    def __del__(self) -> None:
        for level_fd in (getattr(self, "_data_fd", None), getattr(self, "_space_fd", None)):
            if level_fd is not None:
                level_fd.close()


def _check_chunk(chunk: Any) -> None:
    if not isinstance(chunk, Chunk):
        raise TypeError(f"put_nowait(): a spead2.recv.Chunk is needed, not {type(chunk).__name__}")
    if chunk.data is None:
        raise ValueError("data buffer is not set")
    if chunk.present is None:
        raise ValueError("present buffer is not set")


class ChunkRingbuffer(_ChunkRingbuffer):
    """Ringbuffer of chunks (blocking ``get``/``put``; also an iterator until stopped)."""

    def get(self) -> Any:
        """The next chunk, waiting for one; raises Stopped once stopped and drained."""
        with self._lock:
            while not self._items and not self._stopped:
                self._sleep()
            chunk = self._take()
        self._run_callbacks()
        return chunk

    def put(self, chunk: Any) -> None:
        """Adds a chunk, waiting for room; raises Stopped if the ring is stopped."""
        _check_chunk(chunk)
        with self._lock:
            while len(self._items) >= self._maxsize and not self._stopped:
                self._sleep()
            self._give(chunk)
        self._run_callbacks()

    def _sleep(self) -> None:
        """Waits for a change (lock held)."""
        self._sleepers += 1
        try:
            self._cond.wait(_POLL_S)
        finally:
            self._sleepers -= 1

    def __iter__(self) -> Iterator[Any]:
        while True:
            try:
                yield self.get()
            except Stopped:
                return
