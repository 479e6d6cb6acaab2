"""add_buffer_reader: packets back to back in any buffer-protocol object, read in place."""

from __future__ import annotations

import asyncio
from typing import Any

from spead2._kernel import ffi
from spead2.recv._core import BAD_PACKET, FULL, OK, PARTIAL, STOPPED, StreamCore

#: Bytes fed per loop callback, so that a large buffer does not starve the loop.
CHUNK = 4 << 20


class BufferReader:
    def __init__(self, core: StreamCore, buffer: Any) -> None:
        view = memoryview(buffer)
        if not view.c_contiguous:
            raise ValueError("the buffer must be C-contiguous")
        self._core = core
        self._data = ffi.from_buffer(view.cast("B") if view.ndim != 1 or view.format != "B" else view)
        self._size = view.nbytes
        self._pos = 0
        self._window = CHUNK
        self._handle: asyncio.Handle | None = None
        self._paused = False
        self._closed = False

    def start(self) -> None:
        self._schedule()

    def pause(self) -> None:
        self._paused = True
        self._cancel()

    def resume(self) -> None:
        self._paused = False
        self._schedule()

    def close(self) -> None:
        self._closed = True
        self._cancel()
        self._data = None

    def _cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self) -> None:
        if self._handle is None and not self._paused and not self._closed:
            assert self._core.loop is not None
            self._handle = self._core.loop.call_soon(self._step)

    def _step(self) -> None:
        self._handle = None
        if self._paused or self._closed:
            return
        left = self._size - self._pos
        size = min(left, self._window)
        status, consumed = self._core.feed_bytes(self._data + self._pos, size)
        self._pos += consumed
        if self._closed or status == STOPPED:
            return
        if status == PARTIAL and size < left:
            if consumed == 0:
                self._window *= 2  # one packet larger than the window
            status = OK
        if status == OK and self._pos < self._size:
            self._schedule()
        elif status != FULL:
            # End of the buffer, a truncated last packet, or one that cannot be decoded: as with
            # the reference, the rest of the buffer is ignored and the stream ends.
            if status == PARTIAL:
                self._core.count_drop("too_short")
            assert status in (OK, PARTIAL, BAD_PACKET)
            self._core.reader_finished(self)
