"""The core of a chunk stream: a StreamCore whose kernel stream feeds a C chunk stream.

Per packet, C places heaps into the chunks of its window (see ``spead2/_native/api/chunk.h``).
Per chunk, this core moves the window: when a heap belongs to a chunk past it, C keeps the
packet aside and reports SP2_FULL; the core pauses its readers, hands the oldest chunks on
(``ChunkSource.release``), takes new ones (``ChunkSource.acquire``, which may ask to wait),
feeds the kept packet again and resumes.  Where chunks come from and go to is the source's
business: two ringbuffers for a ChunkRingStream, a shared window for a group member.

A source that can spare chunks in advance (a ChunkRingStream alone on its free ringbuffer) lets
C move the window by itself: the core hands spare chunks down after each feed, and afterwards
mirrors what moved and passes the chunks that left on, so that Python runs once per feed
rather than once per chunk.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from spead2._kernel import ensure, ffi, lib
from spead2.recv._chunk_config import Chunk, ChunkStreamConfig, place_pointer
from spead2.recv._config import RingStreamConfig, StreamConfig
from spead2.recv._core import FULL, OK, StreamCore
from spead2.recv._stats import StreamStats

_logger = logging.getLogger("spead2")

#: What ``ChunkSource.acquire`` returns when the caller must wait for its wake-up.
WAIT = object()

#: The statistics a chunk stream adds to its StreamConfig's (in this order, after any others).
CHUNK_STATS = ("too_old_heaps", "rejected_heaps")


class ChunkSource(Protocol):
    """Where a chunk stream's chunks come from and go to.  Called on the stream's loop; ``wake``
    may be called from any thread, once, when waiting may be over."""

    def acquire(self, core: ChunkCore, chunk_id: int, wake: Callable[[], None]) -> Chunk | object | None:
        """The chunk for ``chunk_id`` (None: none, its heaps are dropped; WAIT: call again after
        ``wake``)."""

    def release(self, core: ChunkCore, chunk_id: int, chunk: Chunk | None, wake: Callable[[], None]) -> bool:
        """Takes a chunk leaving the window, oldest first; False: call again after ``wake``."""

    def finished(self, core: ChunkCore) -> None:
        """The stream has stopped and released every chunk."""

    def take_spare(self, core: ChunkCore) -> Chunk | None:
        """A chunk to hold in advance, without waiting (None: none, or the source does not
        lend chunks in advance)."""

    def return_spare(self, core: ChunkCore, chunk: Chunk) -> None:
        """Takes back a chunk from take_spare that was not used."""


class _Slot:
    """A chunk in the window, with the C views of its buffers (kept alive while C writes)."""

    __slots__ = ("chunk", "chunk_id", "views")

    def __init__(self, chunk_id: int, chunk: Chunk | None, views: Any) -> None:
        self.chunk_id = chunk_id
        self.chunk = chunk
        self.views = views


def _chunk_buf(chunk: Chunk | None, buf: Any = None) -> tuple[Any, Any]:
    """``buf`` (an ``sp2_chunk_buf *``, a new one if None) pointed at the chunk's memory, and
    what must stay alive while C writes there.  The C view of a chunk's buffers is kept on the
    chunk (its buffer setters drop it), since chunks come round again and again."""
    if buf is None:
        buf = ffi.new("sp2_chunk_buf *")
    if chunk is None:
        buf[0] = _NO_CHUNK[0]
        return buf, None
    cached = chunk.__dict__.get("_c_buf")
    if cached is None:
        cached = ffi.new("sp2_chunk_buf *")
        views = []
        for name in ("data", "present", "extra"):
            obj = getattr(chunk, name)
            if obj is None:
                continue
            view = ffi.from_buffer("uint8_t[]", obj, require_writable=True)
            setattr(cached, name, view)
            setattr(cached, name + "_size", len(view))
            views.append(view)
        cached = chunk._c_buf = (cached, views)
    buf[0] = cached[0][0]
    return buf, cached


_NO_CHUNK = ffi.new("sp2_chunk_buf *")


def chunk_stream_config(config: StreamConfig) -> StreamConfig:
    """The StreamConfig of a chunk stream: the given one (a copy) plus the chunk statistics."""
    for name in CHUNK_STATS:
        config.add_stat(name)
    return config


class ChunkCore(StreamCore):
    def __init__(self, config: StreamConfig, chunk_config: ChunkStreamConfig, source: ChunkSource) -> None:
        if chunk_config.place is None:
            raise ValueError("chunk_config.place is not set")
        super().__init__(config, RingStreamConfig(heaps=1), 0)
        function, context, has_context = place_pointer(chunk_config.place)
        items = chunk_config.items
        self._items = ffi.new("uint64_t[]", items or [0])
        cfg = ffi.new("sp2_chunk_config *")
        cfg.items = self._items
        cfg.n_items = len(items)
        cfg.max_chunks = chunk_config.max_chunks
        cfg.max_heaps = config.max_heaps * config.substreams
        cfg.place = ffi.cast("void *", function)
        cfg.place_context = ffi.cast("void *", context)
        cfg.place_has_context = has_context
        cfg.max_heap_extra = chunk_config.max_heap_extra
        cfg.packet_presence_payload_size = chunk_config.packet_presence_payload_size
        cfg.n_stats = len(config.stats)
        cfg.allow_out_of_order = config.allow_out_of_order
        cfg.stop_on_stop_item = config.stop_on_stop_item
        out = ffi.new("sp2_chunk_stream **")
        ensure(lib.sp2_chunk_new(cfg, out), "ChunkStreamConfig")
        self._chunk = ffi.gc(out[0], lib.sp2_chunk_free)
        lib.sp2_chunk_attach(self._chunk, self._stream)
        self._place_owner = chunk_config.place  # keeps the function alive
        self._max_chunks = chunk_config.max_chunks
        self._stream_id = config.stream_id
        self._n_stats = len(config.stats)
        self._stat_index = {name: config.get_stat_index(name) for name in CHUNK_STATS}
        self._source = source
        self._window: deque[_Slot] = deque()  # the chunks of C's window, oldest first
        self._spares: deque[_Slot] = deque()  # C's spare chunks, in the order it takes them
        self._left = ffi.new("int64_t[]", 2 * chunk_config.max_chunks)
        self._moves = ffi.new("uint32_t[2]")  # chunks that left C's window, spares that joined it
        self._head_p = ffi.new("int64_t *")
        self._lent = ffi.new("sp2_chunk_buf[]", chunk_config.max_chunks)
        self._outbox: deque[_Slot] = deque()  # out of C's window, not yet taken by the source
        self._head = 0  # chunk id of C's window head
        self._waiting: str | None = None  # what a wake-up from the source is due for
        self._released = False  # the source has been told the stream is finished
        self._out_of_range_logged = 0

    @property
    def stream_id(self) -> int:
        return self._stream_id

    # ---- statistics (any thread) ----

    def stats(self) -> StreamStats:
        stats = super().stats()
        counters = ffi.new("sp2_chunk_counters *")
        extra = ffi.new("uint64_t[]", max(self._n_stats, 1))
        lib.sp2_chunk_get_counters(self._chunk, counters, extra, self._n_stats)
        for i in range(self._n_stats):
            if extra[i]:
                stats[i] += int(extra[i])
        stats[self._stat_index["too_old_heaps"]] += int(counters.too_old_heaps)
        stats[self._stat_index["rejected_heaps"]] += int(counters.rejected_heaps)
        return stats

    # ---- the window (loop thread) ----

    def handle_status(self, status: int) -> None:
        self._sync()
        if status == FULL:
            self._hold()
            self._move_window()
            status = OK
        super().handle_status(status)

    def _hold(self) -> None:
        if not self.paused:
            self.paused = True
            for reader in list(self.readers):
                reader.pause()

    def _let_go(self) -> None:
        if self.paused and not self.stopped:
            self.paused = False
            for reader in list(self.readers):
                if self.paused or self.stopped:
                    break
                reader.resume()

    def _wake(self) -> None:
        """Any thread: the source may now give what it could not."""
        loop = self.loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._on_wake)

    def _on_wake(self) -> None:
        self._waiting = None
        if not self._flush_outbox():
            return
        if self.stopped:
            self._finish()
        else:
            self._move_window()

    def window_head(self) -> int:
        """Loop thread: the oldest chunk id the stream may still write to."""
        return self._head

    def _sync(self) -> None:
        """Mirrors what C moved by itself during the last feed, lends it spares again and
        passes on the chunks that left (last: waking a consumer hands it the GIL at every later
        call into C).  One call into C."""
        lent = self._borrow()
        moves = self._moves
        status = lib.sp2_chunk_sync(
            self._chunk, self._lent, len(lent), self._left, moves, moves + 1, self._head_p
        )
        n_left, joined = int(moves[0]), int(moves[1])
        if joined or n_left:
            window, spares = self._window, self._spares
            for _ in range(joined):
                window.append(spares.popleft())
            for i in range(n_left):
                slot = window.popleft()
                slot.chunk_id = int(self._left[i])
                slot.views = []
                self._outbox.append(slot)
            self._head = head = int(self._head_p[0])
            for i, slot in enumerate(window):
                slot.chunk_id = head + i
        ensure(status, "chunk spares")
        self._spares.extend(lent)
        if self._outbox and self._waiting != "release":
            self._flush_outbox()

    def _borrow(self) -> list[_Slot]:
        """Spare chunks from the source for C (in ``self._lent``), as many as it gives and C's
        queue of max_chunks spares takes: none while the source holds back chunks that left."""
        lent: list[_Slot] = []
        if self._waiting or self.stopped:
            return lent
        for i in range(self._max_chunks - len(self._spares)):
            chunk = self._source.take_spare(self)
            if chunk is None:
                break
            views = _chunk_buf(chunk, self._lent + i)[1]
            lent.append(_Slot(-1, chunk, views))
        return lent

    def _pop_head(self, flushed: bool) -> None:
        """Takes the oldest chunk out of C's window, into the outbox."""
        lib.sp2_chunk_pop_head(self._chunk, int(flushed))
        slot = self._window.popleft()
        slot.views = []
        self._outbox.append(slot)
        self._head += 1

    def _flush_outbox(self) -> bool:
        """Gives the source the chunks out of C's window, in order (False: wait for it).  Done
        after the C work of a window move: waking a consumer hands it the GIL at every later
        call into C."""
        while self._outbox:
            slot = self._outbox[0]
            if not self._source.release(self, slot.chunk_id, slot.chunk, self._wake):
                self._waiting = "release"
                return False
            self._outbox.popleft()
        return True

    def _move_window(self) -> None:
        """Makes room for the kept packet's chunk, feeds the packet again and resumes."""
        data = ffi.new("const uint8_t **")
        size = ffi.new("size_t *")
        wanted_p = ffi.new("int64_t *")
        if self._waiting or not lib.sp2_chunk_parked(self._chunk, data, size, wanted_p):
            return
        wanted = int(wanted_p[0])
        while wanted - self._head >= self._max_chunks:
            if not self._window:
                ensure(lib.sp2_chunk_set_head(self._chunk, wanted - self._max_chunks + 1), "chunk window")
                self._head = wanted - self._max_chunks + 1
            else:
                self._pop_head(False)
        while self._head + len(self._window) <= wanted:
            chunk_id = self._head + len(self._window)
            if self._spares:
                ensure(lib.sp2_chunk_push_spare(self._chunk), "chunk window")
                slot = self._spares.popleft()
                slot.chunk_id = chunk_id
                self._window.append(slot)
                continue
            chunk = self._source.acquire(self, chunk_id, self._wake)
            if chunk is WAIT:
                if self._flush_outbox():  # the consumer may be waiting for those to free some
                    self._waiting = "acquire"
                return
            assert chunk is None or isinstance(chunk, Chunk)
            buf, views = _chunk_buf(chunk)
            ensure(lib.sp2_chunk_push_tail(self._chunk, buf), "chunk window")
            self._window.append(_Slot(chunk_id, chunk, views))
        lib.sp2_chunk_unpark(self._chunk)
        self.feed_datagram(data[0], int(size[0]))
        self._flush_outbox()
        # Resumed from the loop: a reader is still inside the feed call that reported SP2_FULL.
        assert self.loop is not None
        self.loop.call_soon(self._let_go)

    def release_until(self, chunk_id: int) -> None:
        """Loop thread: lets go of the chunks before ``chunk_id`` (a group moving on)."""
        while self._window and self._head < chunk_id:
            self._pop_head(False)
        if self._waiting != "release":
            self._flush_outbox()

    # ---- the end ----

    def _shutdown(self) -> None:
        if self.stopped:
            return
        super()._shutdown()
        self._sync()
        lib.sp2_chunk_flush_heaps(self._chunk)
        lib.sp2_chunk_unpark(self._chunk)
        self._finish()

    def _finish(self) -> None:
        """Gives every chunk of the window to the source, then tells it the stream is done."""
        if self._spares:
            lib.sp2_chunk_drop_spares(self._chunk)
            spares, self._spares = self._spares, deque()
            for slot in spares:
                assert slot.chunk is not None
                self._source.return_spare(self, slot.chunk)
        while self._window:
            self._pop_head(True)
        if self._waiting == "release" or not self._flush_outbox():
            return
        if not self._released:
            self._released = True
            self._source.finished(self)

    # ---- logging ----

    def _log_anomalies(self) -> None:
        super()._log_anomalies()
        counters = ffi.new("sp2_chunk_counters *")
        lib.sp2_chunk_get_counters(self._chunk, counters, ffi.NULL, 0)
        bad = int(counters.out_of_range_heaps) + int(counters.no_chunk_heaps)
        if bad != self._out_of_range_logged:
            _logger.warning(
                "dropped %d heap(s): placed outside their chunk, or in a chunk that could not be had",
                bad - self._out_of_range_logged,
            )
            self._out_of_range_logged = bad
