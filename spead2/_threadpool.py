"""ThreadPool: background threads, each running an event loop for blocking streams' readers."""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import operator
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from spead2._portal import LoopPortal

_logger = logging.getLogger("spead2")

try:
    import uvloop

    _default_loop_factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
except ImportError:  # pragma: no cover - uvloop is a dependency wherever it exists
    _default_loop_factory = asyncio.new_event_loop


def _bind_current_thread(core: int) -> None:
    if not hasattr(os, "sched_setaffinity"):
        _logger.warning("Failed to bind to core %d: CPU affinity is not supported on this platform", core)
        return
    try:
        os.sched_setaffinity(0, {core})
    except OSError as exc:
        _logger.warning("Failed to bind to core %d: %s", core, exc)


class _Worker:
    """One daemon thread running one event loop, started with a handshake."""

    def __init__(
        self, name: str, core: int | None, loop_factory: Callable[[], asyncio.AbstractEventLoop]
    ) -> None:
        self._core = core
        self._loop_factory = loop_factory
        self._ready: concurrent.futures.Future[asyncio.AbstractEventLoop] = concurrent.futures.Future()
        self.portal = LoopPortal()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()
        self.loop = self._ready.result()
        self.stopping = False

    def _run(self) -> None:
        try:
            if self._core is not None:
                _bind_current_thread(self._core)
            loop = self._loop_factory()
            asyncio.set_event_loop(loop)
            self.portal.bind(loop, threading.get_ident())
        except BaseException as exc:
            self._ready.set_exception(exc)
            return
        self._ready.set_result(loop)
        try:
            loop.run_forever()
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    def stop(self, timeout: float) -> None:
        if self.stopping:
            return
        self.stopping = True
        if self.portal.in_loop_thread():
            self.loop.stop()
            return
        try:
            self.loop.call_soon_threadsafe(self.loop.stop)
        except RuntimeError:  # loop already closed
            return
        self.thread.join(timeout)


class ThreadPool:
    """Background threads that run the readers of blocking streams.

    Each thread runs an event loop (uvloop where available); a stream's readers all run on one of
    them, assigned round-robin.  ``affinity`` pins thread *i* to core ``affinity[i % len]``.
    """

    def __init__(
        self,
        threads: int = 1,
        affinity: Sequence[int] = (),
        *,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    ) -> None:
        threads = operator.index(threads)
        if threads < 1:
            raise ValueError("at least one thread is required")
        cores = [operator.index(c) for c in affinity]
        factory = loop_factory or _default_loop_factory
        self._workers = [
            _Worker(f"spead2-worker-{i}", cores[i % len(cores)] if cores else None, factory)
            for i in range(threads)
        ]
        self._next = itertools.count()
        self._streams: weakref.WeakSet[Any] = weakref.WeakSet()
        self._stopped = False
        _live_pools.add(self)

    def _assign(self, stream: Any) -> _Worker:
        if self._stopped:
            raise RuntimeError("the ThreadPool has been stopped")
        self._streams.add(stream)
        return self._workers[next(self._next) % len(self._workers)]

    def stop(self) -> None:
        """Stops the streams still using the pool, then the threads, and joins them."""
        if self._stopped:
            return
        self._stopped = True
        for stream in list(self._streams):
            try:
                stream.stop()
            except Exception:  # pragma: no cover - best effort at shutdown
                _logger.exception("failed to stop a stream while stopping its ThreadPool")
        for worker in self._workers:
            worker.stop(timeout=5.0)

    @staticmethod
    def set_affinity(core: int) -> None:
        """Binds the calling thread to one CPU core (a warning is logged if that fails)."""
        _bind_current_thread(operator.index(core))

    def __enter__(self) -> ThreadPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


_live_pools: weakref.WeakSet[ThreadPool] = weakref.WeakSet()


def _stop_all_pools() -> None:
    for pool in list(_live_pools):
        pool.stop()


# Runs when the interpreter starts to shut down, before non-daemon threads are joined, so that
# streams are stopped while everything they use still works.
_register = getattr(threading, "_register_atexit", None)
if _register is not None:
    _register(_stop_all_pools)
else:  # pragma: no cover
    import atexit

    atexit.register(_stop_all_pools)
