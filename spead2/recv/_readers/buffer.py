"""add_buffer_reader: packets back to back in any buffer-protocol object, read in place."""

from __future__ import annotations

from typing import Any

from spead2._kernel import ffi
from spead2.recv._core import BAD_PACKET, FULL, OK, PARTIAL, STOPPED, StreamCore
from spead2.recv._readers._stepped import SteppedReader

#: Bytes fed per loop callback, so that a large buffer does not starve the loop.
CHUNK = 4 << 20


class BufferReader(SteppedReader):
    def __init__(self, core: StreamCore, buffer: Any) -> None:
        view = memoryview(buffer)
        if not view.c_contiguous:
            raise ValueError("the buffer must be C-contiguous")
        super().__init__(core)
        self._data = ffi.from_buffer(view.cast("B") if view.ndim != 1 or view.format != "B" else view)
        self._size = view.nbytes
        self._pos = 0
        self._window = CHUNK

    def _release(self) -> None:
        self._data = None

    def _step(self) -> None:
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
                self._core.drop_partial(self._data + self._pos, self._size - self._pos)
            assert status in (OK, PARTIAL, BAD_PACKET)
            self._core.reader_finished(self)
