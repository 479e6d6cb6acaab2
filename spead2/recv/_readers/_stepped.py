"""SteppedReader: the scheduling shared by readers of data already at hand (a buffer, a file).

Such a reader feeds the core one slice per loop callback (``_step``), so that a large input does
not starve the loop, and stops scheduling steps while paused or closed.
"""

from __future__ import annotations

import asyncio

from spead2.recv._core import StreamCore


class SteppedReader:
    def __init__(self, core: StreamCore) -> None:
        self._core = core
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
        if self._closed:
            return
        self._closed = True
        self._cancel()
        self._release()

    def _release(self) -> None:
        """Frees what the reader holds (called once, at close)."""

    def _cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self) -> None:
        if self._handle is None and not self._paused and not self._closed:
            assert self._core.loop is not None
            self._handle = self._core.loop.call_soon(self._run_step)

    def _run_step(self) -> None:
        self._handle = None
        if not (self._paused or self._closed):
            self._step()

    def _step(self) -> None:
        """Feeds the next slice; reschedules itself (``_schedule``) while there is more."""
        raise NotImplementedError
