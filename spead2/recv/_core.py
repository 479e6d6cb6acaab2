"""The loop-confined stream core shared by the blocking and the asyncio façades.

One ``StreamCore`` owns one kernel stream.  Everything that feeds the kernel runs on the
core's event loop; the ring of finished heaps, the statistics snapshot and the ring stop are
thread-safe in C and may be used from anywhere.  Readers only move bytes into ``feed_*``;
the core turns the kernel's status into pausing, resuming and stopping.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from spead2._drops import drop_message, drop_reason_value, drops_from_kernel
from spead2._kernel import ensure, ffi, lib
from spead2._kstream import kernel_config, new_stream
from spead2._memory import MemoryPool
from spead2.recv._config import RingStreamConfig, StreamConfig
from spead2.recv._heap import Heap, IncompleteHeap, _gc, _heap_free, _new, wrap_heap
from spead2.recv._stats import StreamStats

_logger = logging.getLogger("spead2")

#: Pops of a blocking get wake up this often to let signals (Ctrl-C) through.
POLL_NS = 100_000_000
#: How long the blocking façade's input waits in C for its consumer (on another thread) to make
#: room in a full ring, before pausing its readers through the event loop (which costs a trip
#: through Python per pause).
BLOCKING_FULL_WAIT_NS = 1_000_000

OK = lib.SP2_OK
FULL = lib.SP2_FULL
STOPPED = lib.SP2_STOPPED
BAD_PACKET = lib.SP2_BAD_PACKET
PARTIAL = lib.SP2_PARTIAL


class Reader(Protocol):
    """A transport feeding a core.  All methods run on the core's loop."""

    def start(self) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def close(self) -> None: ...


class StreamCore:
    def __init__(
        self,
        config: StreamConfig,
        ring_config: RingStreamConfig,
        full_wait_ns: int,
        dedicated_loop: bool = False,
    ) -> None:
        cfg = kernel_config(
            max_heaps=config.max_heaps,
            substreams=config.substreams,
            ring_heaps=ring_config.heaps,
            max_heap_size=config.max_heap_size,
            full_wait_ns=full_wait_ns,
            bug_compat=config.bug_compat,
            memcpy_nontemporal=config.memcpy == 1,
            stop_on_stop_item=config.stop_on_stop_item,
            allow_unsized_heaps=config.allow_unsized_heaps,
            allow_out_of_order=config.allow_out_of_order,
            contiguous_only=ring_config.contiguous_only,
            keep_payload_ranges=ring_config.incomplete_keep_payload_ranges,
        )
        allocator = config.memory_allocator
        self._stream = new_stream(cfg, allocator._handle if allocator is not None else None)
        self._allocator = allocator
        self._stat_config = config.stats
        self.contiguous_only = ring_config.contiguous_only
        #: The loop only serves readers (the blocking façade's ThreadPool thread), not the user's
        #: code: readers may nap on it to coalesce wake-ups.
        self.dedicated_loop = dedicated_loop
        self.explicit_start = config.explicit_start
        self.loop: asyncio.AbstractEventLoop | None = None
        self.readers: list[Reader] = []
        self.started = not config.explicit_start
        self.stopped = False  # no reader runs any more (loop side)
        self.paused = False
        self._space_fd = -1
        #: Set by the asyncio façade: called on the loop after heaps may have been queued.
        self.on_heaps: Callable[[], None] | None = None
        self._next_log = 0.0
        self._logged = StreamStats(self._stat_config)
        self._allow_out_of_order = config.allow_out_of_order
        self._conditions: set[str] = set()  # conditions whose reference line has been logged
        self._note = ffi.new("sp2_drop_note *")
        self._heap_note = ffi.new("sp2_heap_note *")
        self._pool_events = 0

    # ---- any thread ----

    def stats(self) -> StreamStats:
        raw = ffi.new("sp2_stats *")
        lib.sp2_stream_get_stats(self._stream, raw)
        core = [
            raw.heaps,
            raw.incomplete_heaps_evicted,
            raw.incomplete_heaps_flushed,
            raw.packets,
            raw.batches,
            raw.max_batch,
            raw.single_packet_heaps,
            raw.search_dist,
            raw.worker_blocked,
        ]
        values = core + [0] * (len(self._stat_config) - len(core))
        drops = drops_from_kernel(raw.drops)
        return StreamStats(self._stat_config, values, drops, int(raw.payload_bytes))

    def pop(self, timeout_ns: int) -> Heap | IncompleteHeap | None:
        """The next heap, or None: either none came in time, or ``drained()`` (stopped and empty)."""
        raw = lib.sp2_ring_pop(self._stream, timeout_ns)
        if raw == ffi.NULL:
            return None
        return wrap_heap(raw)

    def heaps(self, timeout_ns: int, owner: object = None) -> Iterator[Heap | IncompleteHeap]:
        """Every heap as it comes, until ``drained()``; each wait in C lasts up to ``timeout_ns``
        (then Python gets a look in, for signals).  ``pop`` and ``wrap_heap`` inlined: the
        per-heap path of most consumers (a call less measured 4 % on 1 KiB heaps).  ``owner``
        (the stream) is held while the iteration lasts: ``for heap in Stream(...)`` names no
        stream, and a stream that is dropped stops."""
        pop, stream = lib.sp2_ring_pop, self._stream
        new, gc, free = _new, _gc, _heap_free
        while True:
            raw = pop(stream, timeout_ns)
            if raw:
                heap = new(Heap if raw.complete else IncompleteHeap)
                heap._owner = gc(raw, free)
                heap._payload = None
                yield heap
            elif self.drained():
                return

    def drained(self) -> bool:
        """True once the stream has stopped and every queued heap has been taken."""
        return bool(lib.sp2_ring_drained(self._stream))

    def ring_stop(self) -> None:
        lib.sp2_ring_stop(self._stream)

    def ring_size(self) -> int:
        return int(lib.sp2_ring_size(self._stream))

    def ring_capacity(self) -> int:
        return int(lib.sp2_ring_capacity(self._stream))

    def data_fd(self) -> int:
        fd = lib.sp2_ring_data_fd(self._stream)
        return ensure(fd if fd >= 0 else lib.SP2_E_OS, "cannot create the stream's notification pipe")

    # ---- loop thread ----

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Fixes the loop the readers run on, and starts those already added."""
        if self.loop is not None:
            return
        self.loop = loop
        if self.started and not self.stopped:
            for reader in list(self.readers):
                reader.start()

    def add_reader(self, reader: Reader) -> None:
        if self.stopped:
            reader.close()
            raise RuntimeError("cannot add a reader to a stopped stream")
        if self.explicit_start and self.started:
            reader.close()
            raise RuntimeError("cannot add a reader after start() when explicit_start is set")
        self.readers.append(reader)
        if self.started and self.loop is not None:
            reader.start()
            if self.paused:
                reader.pause()

    def start(self) -> None:
        if self.started:
            return
        self.started = True
        if self.loop is not None and not self.stopped:
            for reader in list(self.readers):
                reader.start()

    def feed_bytes(self, data: Any, size: int, max_packet: int = 0) -> tuple[int, int]:
        """Back-to-back packets at ``data`` (a cdata pointer).  Returns (status, bytes consumed)."""
        consumed = ffi.new("size_t *")
        status = lib.sp2_stream_add_bytes(self._stream, data, size, max_packet, consumed)
        self.handle_status(status)
        return status, int(consumed[0])

    def feed_datagram(self, data: Any, size: int) -> int:
        status = lib.sp2_stream_add_datagram(self._stream, data, size)
        self.handle_status(status)
        return status

    def feed_datagrams(self, data: Any, sizes: Any, n: int) -> tuple[int, int]:
        """``n`` datagrams (cdata arrays of pointers and sizes).  Returns (status, datagrams consumed)."""
        consumed = ffi.new("size_t *")
        status = lib.sp2_stream_add_datagrams(self._stream, data, sizes, n, consumed)
        self.handle_status(status)
        return status, int(consumed[0])

    @property
    def kernel(self) -> Any:
        """The kernel stream (cdata), for readers whose own C code feeds it (loop thread only);
        they hand each returned status to ``handle_status``."""
        return self._stream

    def count_drop(self, reason: str, n: int = 1) -> None:
        lib.sp2_stream_count_drop(self._stream, drop_reason_value(reason), n)

    def drop_partial(self, data: Any, size: int) -> None:
        """A byte stream ended inside a packet (``size`` bytes of it at ``data``)."""
        lib.sp2_stream_drop_partial(self._stream, data, size)

    def handle_status(self, status: int) -> None:
        """Acts on a kernel feed's status (pause, stop, wake waiters, log drops); readers whose own
        C code feeds the kernel call it with each status they get."""
        if status == FULL:
            self._pause()
        elif status == STOPPED:
            self._shutdown()
        if self.on_heaps is not None:
            self.on_heaps()
        now = time.monotonic()
        if now >= self._next_log:
            self._next_log = now + 1.0
            self._log_anomalies()

    def reader_finished(self, reader: Reader) -> None:
        """A reader's input ended (end of buffer or file, closed connection, stopped queue):
        as in the reference, that ends the stream."""
        if self.stopped:
            return
        lib.sp2_stream_stop_received(self._stream)
        self._shutdown()
        if self.on_heaps is not None:
            self.on_heaps()

    def stop(self) -> None:
        """User stop: the ring refuses new heaps (queued ones stay), live heaps are flushed into
        the void (and counted), every reader is closed."""
        self.ring_stop()
        if not self.stopped:
            lib.sp2_stream_stop_received(self._stream)
            self._shutdown()
        if self.on_heaps is not None:
            self.on_heaps()

    def _shutdown(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        readers, self.readers = self.readers, []
        for reader in readers:
            try:
                reader.close()
            except Exception:  # pragma: no cover - a reader must not keep the others open
                _logger.exception("error while closing a reader")
        if self._space_fd >= 0 and self.loop is not None:
            self.loop.remove_reader(self._space_fd)
            self._space_fd = -1
        self._log_anomalies()

    def _pause(self) -> None:
        if self.paused or self.stopped:
            return
        self.paused = True
        if self._space_fd < 0:
            fd = lib.sp2_ring_space_fd(self._stream)
            ensure(fd if fd >= 0 else lib.SP2_E_OS, "cannot create the stream's wake-up fd")
            assert self.loop is not None
            self.loop.add_reader(fd, self._on_space)
            self._space_fd = fd
        for reader in list(self.readers):
            reader.pause()

    def _on_space(self) -> None:
        lib.sp2_ring_space_ack(self._stream)
        if not self.paused or self.stopped:
            return
        self.paused = False
        for reader in list(self.readers):
            if self.paused or self.stopped:
                break
            reader.resume()

    # ---- logging, rate-limited to once a second ----

    def _log_condition(self, level: int, message: str) -> None:
        """Logs the reference's line of a condition the first time it occurs (a condition is
        the line without its numbers); the summaries count the repeats."""
        condition = re.sub(r"[0-9]+", "#", message)
        if condition not in self._conditions:
            self._conditions.add(condition)
            _logger.log(level, "%s", message)

    def _log_first_drop(self, reason: str) -> None:
        value = drop_reason_value(reason)
        if lib.sp2_stream_take_drop_note(self._stream, value, self._note):
            self._log_condition(*drop_message(value, self._note, self._allow_out_of_order))

    def _log_first_incomplete_heap(self) -> None:
        note = self._heap_note
        if lib.sp2_stream_take_heap_note(self._stream, note):
            received, length = note.received_length, note.heap_length
            message = f"dropped incomplete heap {note.cnt} ({received}/{length} bytes of payload)"
            self._log_condition(logging.WARNING, message)

    def _log_anomalies(self) -> None:
        stats = self.stats()
        before, self._logged = self._logged, stats
        dropped = {k: v - before.drops[k] for k, v in stats.drops.items() if v != before.drops[k]}
        for reason in dropped:
            self._log_first_drop(reason)
        if dropped:
            detail = ", ".join(f"{n} {reason}" for reason, n in dropped.items())
            _logger.warning("dropped %d packet(s): %s", sum(dropped.values()), detail)
        if self.contiguous_only:
            lost = (
                stats.incomplete_heaps_evicted
                - before.incomplete_heaps_evicted
                + stats.incomplete_heaps_flushed
                - before.incomplete_heaps_flushed
            )
            if lost:
                self._log_first_incomplete_heap()
                _logger.warning("dropped %d incomplete heap(s)", lost)
        if isinstance(self._allocator, MemoryPool):
            events = self._allocator._empty_events
            if events != self._pool_events:
                _logger.warning(
                    "memory pool was empty %d time(s): allocated on demand", events - self._pool_events
                )
                self._pool_events = events


def make_pointer_array(items: Sequence[Any]) -> Any:
    """A cdata array of ``const uint8_t *`` for feed_datagrams."""
    return ffi.new("const uint8_t *[]", list(items))
