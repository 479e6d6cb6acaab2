"""The send streams: one builder per transport, and the two façades over SendCore.

``SyncStream`` runs its core on a ThreadPool thread's loop and waits for each send there;
``AsyncStream`` (:mod:`spead2.send.asyncio`) runs its core on the caller's loop.  A transport's
builder makes the core the same way for both.
"""

from __future__ import annotations

import operator
import os
import socket
import threading
from collections.abc import Sequence
from typing import Any, ClassVar

from spead2._inproc import InprocQueue
from spead2._kernel import ffi, lib
from spead2._threadpool import ThreadPool
from spead2.send._config import GroupMode, StreamConfig
from spead2.send._core import SendCore
from spead2.send._heap import Heap, HeapReference, HeapReferenceList
from spead2.send._sockets import (
    TCP_DEFAULT_BUFFER_SIZE,
    UDP_DEFAULT_BUFFER_SIZE,
    tcp_args,
    tcp_socket,
    udp_args,
    udp_socket,
)


def outcome_error(code: int) -> OSError:
    return OSError(code, os.strerror(code))


def _references(heaps: Any) -> Sequence[HeapReference]:
    if isinstance(heaps, HeapReferenceList):
        return heaps._refs
    refs = list(heaps)
    for ref in refs:
        if not isinstance(ref, HeapReference):
            raise TypeError(f"expected HeapReference, not {type(ref).__name__}")
    return refs


def _mode(mode: Any) -> int:
    if not isinstance(mode, GroupMode):
        raise TypeError(f"mode must be a spead2.send.GroupMode, not {type(mode).__name__}")
    return mode.value


def _check_pool(thread_pool: Any) -> ThreadPool:
    if not isinstance(thread_pool, ThreadPool):
        raise TypeError(f"thread_pool must be a spead2.ThreadPool, not {type(thread_pool).__name__}")
    return thread_pool


# ---- builders: (thread_pool, core) for each transport ----


def build_udp(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[ThreadPool, SendCore]:
    thread_pool, spec = udp_args(args, kwargs)
    _check_pool(thread_pool)
    sock, destinations = udp_socket(spec)
    try:
        core = SendCore(spec.config, lib.SP2_TRANSPORT_UDP, sock.fileno(), len(destinations), destinations)
    except BaseException:
        sock.close()
        raise
    core.resources.append(sock)
    return thread_pool, core


def tcp_core(sock: socket.socket, config: StreamConfig) -> SendCore:
    sock.setblocking(False)
    try:
        core = SendCore(config, lib.SP2_TRANSPORT_TCP, sock.fileno())
    except BaseException:
        sock.close()
        raise
    core.resources.append(sock)
    return core


def build_bytes(thread_pool: Any, config: StreamConfig) -> SendCore:
    _check_pool(thread_pool)
    return SendCore(config, lib.SP2_TRANSPORT_MEMORY)


def build_inproc(thread_pool: Any, queues: Any, config: StreamConfig) -> SendCore:
    _check_pool(thread_pool)
    queues = list(queues)
    if not queues:
        raise ValueError("queues must be non-empty")
    for queue in queues:
        if not isinstance(queue, InprocQueue):
            raise TypeError(f"expected InprocQueue, not {type(queue).__name__}")

    def deliver(core: SendCore) -> None:
        sizes = ffi.new("uint32_t **")
        substreams = ffi.new("uint32_t **")
        n = lib.sp2_sender_memory_packets(core.sender, sizes, substreams)
        if n == 0:
            return
        total = ffi.new("size_t *")
        data = ffi.buffer(lib.sp2_sender_memory(core.sender, total), total[0])[:]
        per_queue: list[list[bytes]] = [[] for _ in queues]
        offset = 0
        for size, substream in zip(ffi.unpack(sizes[0], n), ffi.unpack(substreams[0], n), strict=True):
            per_queue[substream].append(data[offset : offset + size])
            offset += size
        lib.sp2_sender_memory_clear(core.sender)
        for queue, packets in zip(queues, per_queue, strict=True):
            if packets:
                queue._add_packets(packets)

    return SendCore(config, lib.SP2_TRANSPORT_MEMORY, n_substreams=len(queues), on_packets=deliver)


def memory_bytes(core: SendCore) -> bytes:
    size = ffi.new("size_t *")
    data = lib.sp2_sender_memory(core.sender, size)
    return ffi.buffer(data, size[0])[:] if size[0] else b""


# ---- façades ----


class Stream:
    """What every send stream has."""

    __module__ = "spead2.send"
    _core: SendCore

    def _attach(self, thread_pool: ThreadPool, core: SendCore) -> None:
        raise NotImplementedError  # each façade attaches the core its own way

    def _call(self, fn: Any, *args: Any) -> Any:
        return fn(*args)

    def set_cnt_sequence(self, next: int, step: int) -> None:
        """The next heap gets cnt ``next``, each after it ``step`` more (defaults 1 and 1)."""
        self._call(self._core.set_cnt_sequence, int(next), int(step))

    @property
    def num_substreams(self) -> int:
        return self._core.n_substreams


class SyncStream(Stream):
    """A blocking stream: each send runs the core on the calling thread until its heaps are sent
    (the C sender releases the GIL; the rate limiter sleeps and a full socket is waited for on
    this thread), so a send costs no hand-off between threads.  A lock serialises threads."""

    __module__ = "spead2.send"

    def _attach(self, thread_pool: ThreadPool, core: SendCore) -> None:
        _check_pool(thread_pool)
        self._core = core
        self._lock = threading.Lock()

    def _call(self, fn: Any, *args: Any) -> Any:
        with self._lock:
            return fn(*args)

    def send_heap(self, heap: Heap, cnt: int = -1, substream_index: int = 0, rate: float = -1.0) -> int:
        """Sends one heap and waits until it is sent; raises OSError if it could not be."""
        cnt, substream_index, rate = operator.index(cnt), operator.index(substream_index), float(rate)
        with self._lock:
            slot = self._core.submit_one(heap, cnt, substream_index, rate, None)
            self._core.drain()
            code, sent = slot.group.error, slot.group.bytes
        if code:
            raise outcome_error(code)
        return int(sent)

    def send_heaps(self, heaps: Any, mode: GroupMode) -> int:
        """Sends a group of heaps (packets ordered by ``mode``) and waits until all are sent."""
        return self._send(_references(heaps), _mode(mode))

    def _send(self, refs: Sequence[HeapReference], mode: int) -> int:
        outcome: list[int] = []
        with self._lock:
            self._core.submit(refs, mode, lambda code, sent: outcome.extend((code, sent)))
            self._core.drain()
        code, sent = outcome
        if code:
            raise outcome_error(code)
        return sent


class _UdpStream(Stream):
    """UdpStream's constructor, for both façades."""

    DEFAULT_BUFFER_SIZE: ClassVar[int] = UDP_DEFAULT_BUFFER_SIZE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        thread_pool, core = build_udp(args, kwargs)
        self._attach(thread_pool, core)


class _InprocStream(Stream):
    """InprocStream's constructor and ``queues``, for both façades."""

    def __init__(
        self,
        thread_pool: ThreadPool,
        queues: Sequence[InprocQueue],
        config: StreamConfig = StreamConfig(),  # noqa: B008
    ) -> None:
        self._queues = list(queues)
        self._attach(thread_pool, build_inproc(thread_pool, self._queues, config))

    @property
    def queues(self) -> Sequence[InprocQueue]:
        return list(self._queues)


class UdpStream(_UdpStream, SyncStream):
    """SPEAD over UDP: one destination per substream (see the constructor forms in the docs)."""

    __module__ = "spead2.send"


class TcpStream(SyncStream):
    """SPEAD over TCP: connects (blocking) to one endpoint, or uses a connected socket."""

    __module__ = "spead2.send"
    DEFAULT_BUFFER_SIZE: ClassVar[int] = TCP_DEFAULT_BUFFER_SIZE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        thread_pool, spec = tcp_args(args, kwargs)
        _check_pool(thread_pool)
        sock, address = tcp_socket(spec)
        if address is not None:
            try:
                sock.connect(address)
            except OSError:
                sock.close()
                raise
        self._attach(thread_pool, tcp_core(sock, spec.config))


class BytesStream(SyncStream):
    """Collects the packets in memory; :meth:`getvalue` returns them back to back."""

    __module__ = "spead2.send"

    def __init__(self, thread_pool: ThreadPool, config: StreamConfig = StreamConfig()) -> None:  # noqa: B008
        self._attach(thread_pool, build_bytes(thread_pool, config))

    def getvalue(self) -> bytes:
        return self._call(memory_bytes, self._core)


class InprocStream(_InprocStream, SyncStream):
    """Sends to InprocQueues (one per substream), for tests and simulations."""

    __module__ = "spead2.send"
