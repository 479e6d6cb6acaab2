"""Chunk stream groups: member streams (one per thread, typically) sharing one window of chunks.

The group's window is the source of every member's chunks: a member asking for a chunk past
the group's window moves it on.  A chunk leaves the group (to the data ringbuffer, in chunk-id
order) once the window has moved past it and every member holding it has let it go.  LOSSY: the
members still holding such chunks are told to let them go at once; LOSSLESS: the member that
wants to move the window waits until they have let them go by themselves.  The group's state is
shared by the members' threads, under one lock.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any, overload

from spead2._errors import Stopped
from spead2._threadpool import ThreadPool
from spead2.recv._chunk_config import Chunk, ChunkStreamConfig, ChunkStreamGroupConfig
from spead2.recv._chunk_core import WAIT, ChunkCore
from spead2.recv._chunk_ring import _ChunkRingbuffer
from spead2.recv._chunk_stream import ChunkRingPair, _check_ring, _ChunkStreamBase
from spead2.recv._config import StreamConfig

_LOSSLESS = ChunkStreamGroupConfig.EvictionMode.LOSSLESS


class _GroupChunk:
    __slots__ = ("chunk", "chunk_id", "holders")

    def __init__(self, chunk_id: int, chunk: Chunk | None) -> None:
        self.chunk_id = chunk_id
        self.chunk = chunk
        self.holders: set[ChunkCore] = set()


class ChunkStreamGroupMember(_ChunkStreamBase):
    """A stream of a ChunkStreamRingGroup (made by its ``emplace_back``).  It has the readers of
    spead2.recv.Stream; stopping it stops the whole group."""

    def __init__(
        self,
        group: ChunkStreamRingGroup,
        thread_pool: ThreadPool,
        config: StreamConfig,
        chunk_config: ChunkStreamConfig,
    ) -> None:
        self._group = group
        self._init_member(thread_pool, config, chunk_config)
        self._start_core(group)

    def stop(self) -> None:
        self._group.stop()

    def _stop_member(self) -> None:
        if self._core.stopped:
            return
        try:
            self._portal.call(self._core.stop)
        except RuntimeError:  # its ThreadPool has already gone: its readers are closed
            pass


class ChunkStreamRingGroup(ChunkRingPair, Sequence[ChunkStreamGroupMember]):
    """A group of chunk streams sharing one window; chunks come from ``free_ringbuffer`` and go
    to ``data_ringbuffer``.  A Sequence of its member streams."""

    def __init__(
        self,
        config: ChunkStreamGroupConfig,
        data_ringbuffer: _ChunkRingbuffer,
        free_ringbuffer: _ChunkRingbuffer,
    ) -> None:
        if not isinstance(config, ChunkStreamGroupConfig):
            raise TypeError(f"config must be a ChunkStreamGroupConfig, not {type(config).__name__}")
        self._config = config
        self._data_ring = _check_ring(data_ringbuffer, "data_ringbuffer")
        self._free_ring = _check_ring(free_ringbuffer, "free_ringbuffer")
        self._members: list[ChunkStreamGroupMember] = []
        self._lock = threading.RLock()
        self._head = 0  # the window: [head, head + max_chunks)
        self._tail = 0  # the next chunk id to take from the free ring
        self._chunks: dict[int, _GroupChunk] = {}
        self._evicted: deque[_GroupChunk] = deque()
        self._waiters: list[Callable[[], None]] = []  # LOSSLESS members waiting for releases
        # The oldest chunk each running member may still write to (LOSSLESS waits for them all).
        self._heads: dict[ChunkCore, int] = {}
        self._started = False
        self._running = 0  # members not yet finished
        self._done = False
        self._stopped = False
        self._data_ring.add_producer()
        self._free_ring._takers += 1

    @property
    def config(self) -> ChunkStreamGroupConfig:
        return self._config

    # ---- members ----

    def emplace_back(
        self, thread_pool: ThreadPool, config: StreamConfig, chunk_stream_config: ChunkStreamConfig
    ) -> ChunkStreamGroupMember:
        """Adds a stream (before any has received data)."""
        if isinstance(chunk_stream_config, ChunkStreamConfig) and (
            chunk_stream_config.max_chunks > self._config.max_chunks
        ):
            raise ValueError("stream max_chunks must not be larger than group max_chunks")
        self._check_open()
        member = ChunkStreamGroupMember(self, thread_pool, config, chunk_stream_config)
        with self._lock:
            self._check_open()
            self._members.append(member)
            self._heads[member._core] = 0
            self._running += 1
        return member

    def _check_open(self) -> None:
        if self._started:
            raise RuntimeError("Cannot add a stream after group has started receiving data")
        if self._stopped:
            raise RuntimeError("cannot add a stream to a stopped group")

    @overload
    def __getitem__(self, index: int) -> ChunkStreamGroupMember: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[ChunkStreamGroupMember]: ...

    def __getitem__(self, index: int | slice) -> Any:
        return self._members[index]

    def __len__(self) -> int:
        return len(self._members)

    def __iter__(self) -> Iterator[ChunkStreamGroupMember]:
        return iter(list(self._members))

    def stop(self) -> None:
        """Stops both ringbuffers and every member; chunks still being filled are dropped."""
        with self._lock:
            self._stopped = True
            members = list(self._members)
        self._data_ring.stop()
        self._free_ring.stop()
        for member in members:
            member._stop_member()

    # ---- the shared window (ChunkSource, called on the members' loops) ----

    def acquire(self, core: ChunkCore, chunk_id: int, wake: Callable[[], None]) -> Chunk | object | None:
        with self._lock:
            self._started = True
            if core in self._heads:
                self._heads[core] = max(self._heads[core], core.window_head())
            if chunk_id < self._head:
                return None  # the group has moved on
            if chunk_id >= self._head + self._config.max_chunks and not self._move_to(
                chunk_id - self._config.max_chunks + 1, wake
            ):
                return WAIT
            while self._tail <= chunk_id:
                try:
                    chunk = self._free_ring._take_or_notify(wake)
                except Stopped:
                    chunk = None
                else:
                    if chunk is None:
                        return WAIT
                    chunk.chunk_id = self._tail
                    chunk.stream_id = core.stream_id
                self._chunks[self._tail] = _GroupChunk(self._tail, chunk)
                self._tail += 1
            entry = self._chunks[chunk_id]
            entry.holders.add(core)
        self._deliver()
        return entry.chunk

    def _move_to(self, head: int, wake: Callable[[], None]) -> bool:
        """Moves the window's head to ``head`` (lock held); False: wait for ``wake``."""
        old = [self._chunks[i] for i in sorted(self._chunks) if i < head]
        if self._config.eviction_mode == _LOSSLESS and any(h < head for h in self._heads.values()):
            self._waiters.append(wake)
            return False
        for entry in old:
            del self._chunks[entry.chunk_id]
            self._evicted.append(entry)
            for holder in entry.holders:
                loop = holder.loop
                if loop is not None and not loop.is_closed():
                    loop.call_soon_threadsafe(holder.release_until, head)
        self._head = head
        self._tail = max(self._tail, head)
        return True

    def release(self, core: ChunkCore, chunk_id: int, chunk: Chunk | None, wake: Callable[[], None]) -> bool:
        with self._lock:
            entry = self._chunks.get(chunk_id)
            if entry is None:
                entry = next((e for e in self._evicted if e.chunk_id == chunk_id), None)
            if entry is not None:
                entry.holders.discard(core)
            if core in self._heads:
                self._heads[core] = max(self._heads[core], chunk_id + 1)
            waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter()
        self._deliver()
        return True

    def finished(self, core: ChunkCore) -> None:
        with self._lock:
            self._heads.pop(core, None)
            waiters, self._waiters = self._waiters, []
            self._running -= 1
            if self._running == 0:
                for chunk_id in sorted(self._chunks):
                    self._evicted.append(self._chunks.pop(chunk_id))
        for waiter in waiters:
            waiter()
        self._deliver()

    def take_spare(self, core: ChunkCore) -> Chunk | None:
        return None  # the members share one window: none moves it alone

    def return_spare(self, core: ChunkCore, chunk: Chunk) -> None:  # pragma: no cover - none lent
        pass

    def _deliver(self) -> None:
        """Hands the chunks that have left the window to the data ring, in order."""
        with self._lock:
            while self._evicted and not self._evicted[0].holders:
                entry = self._evicted[0]
                if entry.chunk is not None:
                    try:
                        if not self._data_ring._give_or_notify(entry.chunk, self._deliver):
                            return
                    except Stopped:
                        pass  # dropped: the consumer has gone
                self._evicted.popleft()
            last = self._running == 0 and not self._evicted and not self._done and bool(self._members)
            if last:
                self._done = True
                self._free_ring._takers -= 1
        if last:
            self._data_ring.remove_producer()
