"""The stream façades: what the blocking and the asyncio Stream share, and the blocking Stream.

A façade owns a ``StreamCore`` and a ``LoopPortal`` onto the core's loop.  Reader setup,
start and stop go through the portal; the ring, statistics and ``fd`` are thread-safe and are
used directly.  The blocking Stream runs its core on a ThreadPool thread and waits for heaps
in C; the asyncio Stream (spead2.recv.asyncio) runs it on the caller's loop.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from spead2._errors import Empty, Stopped
from spead2._inproc import InprocQueue
from spead2._overload import TCP_BUFFER_SIZE, TCP_MAX_SIZE, UDP_BUFFER_SIZE, UDP_MAX_SIZE
from spead2._portal import LoopPortal
from spead2._threadpool import ThreadPool
from spead2.recv._config import RingStreamConfig, StreamConfig, snapshot
from spead2.recv._core import BLOCKING_FULL_WAIT_NS, POLL_NS, Reader, StreamCore
from spead2.recv._heap import Heap, IncompleteHeap
from spead2.recv._readers.buffer import BufferReader
from spead2.recv._readers.inproc import InprocReader
from spead2.recv._readers.pcap import PcapReader
from spead2.recv._readers.tcp import make_tcp_reader
from spead2.recv._readers.udp import make_udp_reader
from spead2.recv._stats import StreamStats

_logger = logging.getLogger("spead2")

AnyHeap = Heap | IncompleteHeap


class _ReaderHost:
    """What every stream façade has: readers, start, statistics (a ``_core`` run through
    ``_portal`` on its loop)."""

    DEFAULT_UDP_MAX_SIZE = UDP_MAX_SIZE
    DEFAULT_UDP_BUFFER_SIZE = UDP_BUFFER_SIZE
    DEFAULT_TCP_MAX_SIZE = TCP_MAX_SIZE
    DEFAULT_TCP_BUFFER_SIZE = TCP_BUFFER_SIZE

    _portal: LoopPortal
    _core: StreamCore
    _config: StreamConfig

    @property
    def config(self) -> StreamConfig:
        """The configuration the stream was built with (a copy)."""
        return snapshot(self._config)

    @property
    def stats(self) -> StreamStats:
        """A consistent snapshot of the statistics (counted per batch of packets)."""
        return self._core.stats()

    # ---- readers ----

    def _add_reader(self, reader: Reader) -> None:
        try:
            self._portal.call(self._core.add_reader, reader)
        except BaseException:
            reader.close()
            raise

    def add_buffer_reader(self, buffer: Any) -> None:
        """Feeds packets stored back to back in ``buffer`` (read in place, not copied).  The stream
        stops at the end of the buffer, or at a packet that cannot be decoded."""
        self._add_reader(BufferReader(self._core, buffer))

    def add_inproc_reader(self, queue: InprocQueue) -> None:
        """Feeds packets from an InprocQueue; the stream stops when the queue is stopped."""
        self._add_reader(InprocReader(self._core, queue))

    def add_udp_reader(self, *args: Any, **kwargs: Any) -> None:
        """Feeds the datagrams of a UDP socket.  Overloads (as the reference):

        * ``(port, max_size=DEFAULT_UDP_MAX_SIZE, buffer_size=DEFAULT_UDP_BUFFER_SIZE,
          bind_hostname='')``: binds to the first address ``bind_hostname`` resolves to (any
          IPv4 address if empty); a multicast address is also joined;
        * ``(socket, max_size=DEFAULT_UDP_MAX_SIZE)``: a bound UDP socket of the caller's
          (duplicated: the caller keeps theirs);
        * ``(multicast_group, port, max_size, buffer_size, interface_address='0.0.0.0')``: IPv4
          multicast on the interface with that address (or a unicast address equal to it);
        * ``(multicast_group, port, max_size, buffer_size, interface_index=0)``: IPv6 multicast
          on the interface with that index.

        ``buffer_size`` sets SO_RCVBUF (0: the OS default; a warning is logged if the kernel
        grants less).  Datagrams larger than ``max_size`` are dropped and counted.
        """
        self._add_reader(make_udp_reader(self._core, *args, **kwargs))

    def add_tcp_reader(self, *args: Any, **kwargs: Any) -> None:
        """Receives packets over one TCP connection; the stream stops when it closes.

        * ``(port, max_size=DEFAULT_TCP_MAX_SIZE, buffer_size=DEFAULT_TCP_BUFFER_SIZE,
          bind_hostname='')``: listens and accepts a single connection;
        * ``(acceptor, max_size=DEFAULT_TCP_MAX_SIZE)``: accepts from a listening socket of the
          caller's (duplicated, so the caller may close theirs at once).

        As in the reference, a packet larger than ``max_size`` is skipped whole and a header that
        cannot be decoded 8 bytes at a time (each counted and logged), and reading goes on.  A
        connection closed in the middle of a packet is logged; every heap completed before is
        still delivered.
        """
        self._add_reader(make_tcp_reader(self._core, *args, **kwargs))

    def add_udp_pcap_file_reader(self, filename: Any, filter: str = "") -> None:
        """Replays the IPv4 UDP datagrams of a pcap or pcapng capture; the stream stops at the end
        of the file.  ``filter`` is a tcpdump expression, compiled by libpcap (pcapy-ng)."""
        self._add_reader(PcapReader(self._core, filename, filter))

    # ---- control ----

    def start(self) -> None:
        """Starts the readers when ``explicit_start`` is set (harmless otherwise)."""
        self._portal.call(self._core.start)

    def __del__(self) -> None:
        # A stream dropped without stop() must not leave readers running on a shared loop.
        core = getattr(self, "_core", None)
        portal = getattr(self, "_portal", None)
        if core is None or portal is None or core.stopped:
            return
        try:
            core.ring_stop()
            portal.call_soon(core.stop)
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


class _StreamBase(_ReaderHost):
    class Ringbuffer:
        """The ring of finished heaps between the readers and the consumer."""

        __slots__ = ("_core",)

        def __init__(self, core: StreamCore) -> None:
            self._core = core

        def size(self) -> int:
            """Heaps waiting to be taken."""
            return self._core.ring_size()

        def capacity(self) -> int:
            """The most heaps it holds (RingStreamConfig.heaps)."""
            return self._core.ring_capacity()

    #: How long input may wait in C for room in a full ring (see StreamCore).
    _full_wait_ns = 0
    #: Whether the stream may run without a ThreadPool (on the caller's loop).
    _pool_optional = True

    def __init__(
        self,
        thread_pool: ThreadPool | None,
        config: StreamConfig | None = None,
        ring_config: RingStreamConfig | None = None,
    ) -> None:
        if not (isinstance(thread_pool, ThreadPool) or (thread_pool is None and self._pool_optional)):
            raise TypeError(f"thread_pool must be a spead2.ThreadPool, not {type(thread_pool).__name__}")
        config = StreamConfig() if config is None else config
        ring_config = RingStreamConfig() if ring_config is None else ring_config
        if not isinstance(config, StreamConfig):
            raise TypeError(f"config must be a StreamConfig, not {type(config).__name__}")
        if not isinstance(ring_config, RingStreamConfig):
            raise TypeError(f"ring_config must be a RingStreamConfig, not {type(ring_config).__name__}")
        self._config = snapshot(config)
        self._ring_config = snapshot(ring_config)
        self._thread_pool = thread_pool
        self._core = StreamCore(
            self._config, self._ring_config, self._full_wait_ns, dedicated_loop=not self._pool_optional
        )

    # ---- configuration and state (any thread) ----

    @property
    def ring_config(self) -> RingStreamConfig:
        return snapshot(self._ring_config)

    @property
    def ringbuffer(self) -> _StreamBase.Ringbuffer:
        return self.Ringbuffer(self._core)

    @property
    def fd(self) -> int:
        """Read end of a pipe holding one byte per heap ready (readable for good once the stream
        has stopped), for select/poll-based frameworks.  Do not read from it."""
        return self._core.data_fd()

    def stop(self) -> None:
        """Stops the stream and closes its readers.  Heaps already queued can still be taken."""
        self._core.ring_stop()  # at once, from any thread: no more heaps are queued
        self._portal.call(self._core.stop)

    def get_nowait(self) -> AnyHeap:
        """The next heap if one is ready; raises Empty if not, Stopped once stopped and drained."""
        heap = self._core.pop(0)
        if heap is not None:
            return heap
        if self._core.drained():
            raise Stopped("the stream has stopped")
        raise Empty("no heap is ready")


class Stream(_StreamBase):
    """Blocking stream: readers run on a ThreadPool thread, ``get`` blocks the calling thread."""

    _full_wait_ns = BLOCKING_FULL_WAIT_NS
    _pool_optional = False

    def __init__(
        self,
        thread_pool: ThreadPool,
        config: StreamConfig | None = None,
        ring_config: RingStreamConfig | None = None,
    ) -> None:
        super().__init__(thread_pool, config, ring_config)
        worker = thread_pool._assign(self)
        self._portal = worker.portal
        self._portal.call(self._core.bind, worker.loop)

    def _check_thread(self) -> None:
        if self._portal.in_loop_thread():
            raise RuntimeError(
                "Stream.get() called on the stream's own ThreadPool thread would wait forever; "
                "use get_nowait()"
            )

    def get(self) -> AnyHeap:
        """The next heap, waiting for one if needed; raises Stopped once stopped and drained."""
        self._check_thread()
        core = self._core
        while True:
            # Wait in C (without the GIL) in slices, so that Ctrl-C gets through.
            heap = core.pop(POLL_NS)
            if heap is not None:
                return heap
            if core.drained():
                raise Stopped("the stream has stopped")

    def __iter__(self) -> Iterator[AnyHeap]:
        self._check_thread()
        return self._core.heaps(POLL_NS, self)


#: Also exported as spead2.recv.Ringbuffer (the reference only has Stream.Ringbuffer).
Ringbuffer = _StreamBase.Ringbuffer
