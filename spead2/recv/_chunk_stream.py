"""ChunkRingStream: a chunk stream whose chunks come from one ringbuffer and go to another."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from spead2._errors import Stopped
from spead2._threadpool import ThreadPool
from spead2.recv._chunk_config import Chunk, ChunkStreamConfig
from spead2.recv._chunk_core import WAIT, ChunkCore, ChunkSource, chunk_stream_config
from spead2.recv._chunk_ring import _ChunkRingbuffer
from spead2.recv._config import StreamConfig, snapshot
from spead2.recv._stream import _ReaderHost


def _check_ring(ring: Any, what: str) -> _ChunkRingbuffer:
    if not isinstance(ring, _ChunkRingbuffer):
        raise TypeError(f"{what} must be a spead2.recv.ChunkRingbuffer, not {type(ring).__name__}")
    return ring


def _zero_present(chunk: Chunk) -> None:
    if chunk.present is not None:
        view = memoryview(chunk.present).cast("B")
        view[:] = bytes(len(view))


class ChunkRingPair:
    """A data ringbuffer (filled chunks out) and a free ringbuffer (empty chunks in)."""

    _data_ring: _ChunkRingbuffer
    _free_ring: _ChunkRingbuffer

    def add_free_chunk(self, chunk: Chunk) -> None:
        """Zeroes ``chunk.present`` and puts the chunk in the free ringbuffer (nothing happens if
        that is stopped; raises spead2.Full if it is full)."""
        if not isinstance(chunk, Chunk):
            raise TypeError(f"add_free_chunk(): a spead2.recv.Chunk is needed, not {type(chunk).__name__}")
        _zero_present(chunk)
        try:
            self._free_ring.put_nowait(chunk)
        except Stopped:
            pass

    @property
    def data_ringbuffer(self) -> _ChunkRingbuffer:
        return self._data_ring

    @property
    def free_ringbuffer(self) -> _ChunkRingbuffer:
        return self._free_ring


class RingSource:
    """The chunks of a ChunkRingStream: from the free ring, to the data ring."""

    def __init__(self, data_ring: _ChunkRingbuffer, free_ring: _ChunkRingbuffer) -> None:
        self.data_ring = data_ring
        self.free_ring = free_ring
        data_ring.add_producer()
        free_ring._takers += 1

    def acquire(self, core: ChunkCore, chunk_id: int, wake: Callable[[], None]) -> Chunk | object | None:
        try:
            chunk = self.free_ring._take_or_notify(wake)
        except Stopped:
            return None
        if chunk is None:
            return WAIT
        chunk.chunk_id = chunk_id
        chunk.stream_id = core.stream_id
        return chunk

    def release(self, core: ChunkCore, chunk_id: int, chunk: Chunk | None, wake: Callable[[], None]) -> bool:
        if chunk is None:
            return True
        chunk.chunk_id = chunk_id  # (a spare learns its id only now)
        chunk.stream_id = core.stream_id
        try:
            return self.data_ring._give_or_notify(chunk, wake)
        except Stopped:
            return True  # dropped, as the reference does once the consumer has gone

    def finished(self, core: ChunkCore) -> None:
        self.free_ring._takers -= 1
        self.data_ring.remove_producer()

    def take_spare(self, core: ChunkCore) -> Chunk | None:
        """Only a stream alone on its free ring holds chunks in advance: streams sharing one
        must not starve each other."""
        if self.free_ring._takers != 1:
            return None
        return self.free_ring._take_nowait()

    def return_spare(self, core: ChunkCore, chunk: Chunk) -> None:
        self.free_ring._put_back(chunk)


class _ChunkStreamBase(_ReaderHost):
    """A chunk stream façade: the readers of spead2.recv.Stream (on a ``thread_pool`` thread)
    over a ChunkCore."""

    _core: ChunkCore

    def _init_member(
        self, thread_pool: ThreadPool, config: StreamConfig, chunk_config: ChunkStreamConfig
    ) -> None:
        if not isinstance(thread_pool, ThreadPool):
            raise TypeError(f"thread_pool must be a spead2.ThreadPool, not {type(thread_pool).__name__}")
        if not isinstance(config, StreamConfig):
            raise TypeError(f"config must be a StreamConfig, not {type(config).__name__}")
        if not isinstance(chunk_config, ChunkStreamConfig):
            raise TypeError(
                f"chunk_stream_config must be a ChunkStreamConfig, not {type(chunk_config).__name__}"
            )
        if chunk_config.place is None:
            raise ValueError("chunk_config.place is not set")
        self._thread_pool = thread_pool
        self._config = chunk_stream_config(snapshot(config))
        self._chunk_config = chunk_config

    def _start_core(self, source: ChunkSource) -> None:
        self._core = ChunkCore(self._config, self._chunk_config, source)
        worker = self._thread_pool._assign(self)
        self._portal = worker.portal
        self._portal.call(self._core.bind, worker.loop)


class ChunkRingStream(_ChunkStreamBase, ChunkRingPair):
    """A stream that places heaps into chunks: empty chunks are taken from ``free_ringbuffer``,
    filled ones are put in ``data_ringbuffer`` in chunk-id order."""

    def __init__(
        self,
        thread_pool: ThreadPool,
        config: StreamConfig,
        chunk_stream_config: ChunkStreamConfig,
        data_ringbuffer: _ChunkRingbuffer,
        free_ringbuffer: _ChunkRingbuffer,
    ) -> None:
        self._init_member(thread_pool, config, chunk_stream_config)
        self._data_ring = _check_ring(data_ringbuffer, "data_ringbuffer")
        self._free_ring = _check_ring(free_ringbuffer, "free_ringbuffer")
        self._start_core(RingSource(self._data_ring, self._free_ring))

    def stop(self) -> None:
        """Stops the stream and both ringbuffers; chunks still being filled are dropped."""
        self._data_ring.stop()
        self._free_ring.stop()
        self._portal.call(self._core.stop)
