"""LoopPortal: runs calls on the thread of an event loop, from any thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any, TypeVar

_T = TypeVar("_T")


class LoopPortal:
    """The way into a loop-confined object.  Until a loop is bound, calls run directly (there is
    no loop thread to be confined to yet)."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread_id: int | None = None

    def bind(self, loop: asyncio.AbstractEventLoop, thread_id: int) -> None:
        self.loop = loop
        self._thread_id = thread_id

    def in_loop_thread(self) -> bool:
        return self._thread_id == threading.get_ident()

    def call(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Runs ``fn(*args)`` on the loop's thread and returns its result or raises its error."""
        loop = self.loop
        if loop is None or self.in_loop_thread():
            return fn(*args)
        if loop.is_closed():
            raise RuntimeError("the stream's event loop is closed")
        future: concurrent.futures.Future[_T] = concurrent.futures.Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn(*args))
            except BaseException as exc:
                future.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return future.result()

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Schedules ``fn(*args)`` on the loop without waiting (runs it now if there is no loop)."""
        loop = self.loop
        if loop is None:
            fn(*args)
        elif self.in_loop_thread():
            loop.call_soon(fn, *args)
        elif not loop.is_closed():
            try:
                loop.call_soon_threadsafe(fn, *args)
            except RuntimeError:  # closed meanwhile
                pass
