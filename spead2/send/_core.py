"""SendCore: the loop-confined core under every send stream, blocking and asyncio alike.

It validates and queues groups of heaps in the C sender (``spead2/_native/sender.c``), runs the
sender from loop callbacks (a bounded number of packets per callback, so the loop stays
responsive), waits for a writable socket with ``add_writer`` and for the rate limiter's
deadlines with a timerfd (sub-millisecond; asyncio's own timers round to milliseconds), and
reports each group's outcome through the callback given with it.  Only the loop thread calls
it, except where a method says otherwise.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import logging
import os
import select
import weakref
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from spead2._kernel import check_pointer, ffi, lib
from spead2.send._config import StreamConfig
from spead2.send._heap import Heap, HeapReference, encode_error, init_packet_iter

_logger = logging.getLogger("spead2")

#: Packets sent per loop callback before yielding to other callbacks.
_PACKETS_PER_CALLBACK = 1024

#: Called with (errno or 0, bytes sent) when a group is done.
Done = Callable[[int, int], None]


class _Pending(NamedTuple):
    """A queued group: its C memory (and what it points into), and who to tell when done."""

    c_data: Any
    keep: Any
    n_heaps: int
    done: Done | None
    slot: Any  # the reusable sp2_send_slot of a single heap, else None


def _release(resources: list[Any]) -> None:
    for resource in resources:
        if isinstance(resource, int):
            os.close(resource)
        else:
            resource.close()


def _send_error(code: int, message: str) -> OSError:
    _logger.warning("async_send_heap(s): dropping heap because %s", message)
    return OSError(code, os.strerror(code))


class SendCore:
    def __init__(
        self,
        config: StreamConfig,
        transport: int,
        fd: int = -1,
        n_substreams: int = 1,
        endpoints: Sequence[tuple[str, int, int]] = (),
        on_packets: Callable[[SendCore], None] | None = None,
    ) -> None:
        self.config = config._copy()
        self.n_substreams = n_substreams
        self.fd = fd
        sender = lib.sp2_sender_new(
            transport,
            fd,
            n_substreams,
            self.config.max_packet_size,
            self.config.rate,
            self.config.burst_size,
            self.config.burst_rate_ratio,
        )
        self.sender = ffi.gc(check_pointer(sender, "creating the send stream"), lib.sp2_sender_free)
        for index, (address, port, scope_id) in enumerate(endpoints):
            if lib.sp2_sender_set_endpoint(self.sender, index, address.encode(), port, scope_id) != 0:
                raise ValueError(f"not a numeric IP address: {address!r}")
        lib.sp2_sender_set_spin(self.sender, int(os.environ.get("SPEAD2_SEND_SPIN_NS", "30000")))
        if transport == lib.SP2_TRANSPORT_UDP and os.environ.get("SPEAD2_SEND_GSO", "1") != "0":
            lib.sp2_sender_enable_gso(self.sender)
        self._on_packets = on_packets
        self._pending: dict[int, _Pending] = {}
        self._free_slots: list[Any] = []
        self._tokens = itertools.count(1)
        self._heaps_in_flight = 0
        self._next_cnt = 1
        self._cnt_step = 1
        self.loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = False
        self._waiting_writable = False
        self._timer_fd = -1
        self._timer_armed = False
        self._timer_watched = False  # the loop watches the timer fd (while heaps are queued)
        self._wake = ffi.new("int64_t *")
        self.last_done: asyncio.Future[Any] | None = None
        #: What lives and dies with the core: the socket the C sender writes to, the timer fd.
        self.resources: list[Any] = []
        weakref.finalize(self, _release, self.resources)

    # ---- submitting ----

    def set_cnt_sequence(self, next: int, step: int) -> None:
        if step == 0:
            raise ValueError("step cannot be 0")
        if next < 0 or step < 0:
            raise OverflowError("next and step must be non-negative")
        self._next_cnt = next
        self._cnt_step = step

    def _check(self, n_heaps: int) -> None:
        if n_heaps == 0:
            _logger.warning("Empty heap group")
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        broken = lib.sp2_sender_broken(self.sender)
        if broken:
            raise OSError(broken, os.strerror(broken))
        if self._heaps_in_flight + n_heaps > self.config.max_heaps:
            raise _send_error(errno.EAGAIN, "queue is full")

    def _check_ref(self, heap: Heap, cnt: int, substream_index: int) -> None:
        if not 0 <= substream_index < self.n_substreams:
            raise _send_error(errno.EINVAL, "substream index is out of range")
        if cnt >= 1 << heap._flavour.heap_address_bits:
            raise _send_error(errno.EINVAL, "cnt is out of range")

    def _auto_cnt(self, heap: Heap) -> int:
        cnt = self._next_cnt & ((1 << heap._flavour.heap_address_bits) - 1)
        self._next_cnt += self._cnt_step
        return cnt

    def submit_one(self, heap: Heap, cnt: int, substream_index: int, rate: float, done: Done | None) -> Any:
        """Queues one heap (the common case, with less work than :meth:`submit`); returns its
        ``sp2_send_slot``, whose group holds the outcome once it is done (until the next
        submit)."""
        if not isinstance(heap, Heap):
            raise TypeError(f"heap must be a spead2.send.Heap, not {type(heap).__name__}")
        self._check(1)
        self._check_ref(heap, cnt, substream_index)
        c_heap = heap._c_heap()
        slot = self._free_slots.pop() if self._free_slots else ffi.new("sp2_send_slot *")
        token = next(self._tokens)
        status = lib.sp2_sender_push_one(
            self.sender,
            slot,
            c_heap,
            cnt if cnt >= 0 else self._next_cnt & ((1 << heap._flavour.heap_address_bits) - 1),
            substream_index,
            rate if rate >= 0.0 else self.config.rate,
            token,
        )
        if status != lib.SP2_SEND_OK:
            self._free_slots.append(slot)
            raise encode_error(status)
        if cnt < 0:
            self._next_cnt += self._cnt_step
        self._pending[token] = _Pending(slot, heap._c, 1, done, slot)
        self._heaps_in_flight += 1
        return slot

    def submit(self, refs: Sequence[HeapReference], mode: int, done: Done) -> None:
        """Queues the heaps as one group; ``done`` is called once all are sent or have failed.
        Nothing is sent until :meth:`schedule` or :meth:`drain`.

        Raises OSError (the reference's errnos) or ValueError (a heap that cannot be encoded)
        instead of queueing anything."""
        n = len(refs)
        self._check(n)
        for ref in refs:
            self._check_ref(ref.heap, ref.cnt, ref.substream_index)
        c_refs = ffi.new("sp2_send_ref[]", n)
        keep: list[Any] = []
        for c_ref, ref in zip(c_refs, refs, strict=True):
            init_packet_iter(ffi.addressof(c_ref, "it"), ref.heap, 0, self.config.max_packet_size)
            keep.append(ref.heap._c)
            c_ref.substream = ref.substream_index
            c_ref.rate = ref.rate if ref.rate >= 0.0 else self.config.rate
        for c_ref, ref in zip(c_refs, refs, strict=True):
            c_ref.it.cnt = ref.cnt if ref.cnt >= 0 else self._auto_cnt(ref.heap)
        group = ffi.new("sp2_send_group *")
        group.refs = c_refs
        group.n_refs = n
        group.mode = mode
        group.token = token = next(self._tokens)
        self._pending[token] = _Pending((group, c_refs), keep, n, done, None)
        self._heaps_in_flight += n
        lib.sp2_sender_push(self.sender, group)

    # ---- running the sender ----

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.loop is None:
            self.loop = loop
        elif self.loop is not loop:
            raise RuntimeError("this send stream is already used from another event loop")

    def schedule(self) -> None:
        """Sends in loop callbacks from now on, until nothing is queued (the asyncio façade)."""
        if not (self._scheduled or self._waiting_writable or self._timer_armed):
            self._scheduled = True
            assert self.loop is not None
            self.loop.call_soon(self._run)

    def _run(self) -> None:
        self._scheduled = False
        status = self._step()
        if status == lib.SP2_RUN_MORE:
            self.schedule()
        elif status == lib.SP2_RUN_BLOCKED:
            assert self.loop is not None
            self._waiting_writable = True
            self.loop.add_writer(self.fd, self._writable)
        elif status == lib.SP2_RUN_SLEEP:
            self._sleep_until(self._wake[0])
        elif self._timer_watched:  # idle: stop watching, so that the loop holds no reference
            self._unwatch_timer()

    def _step(self) -> int:
        status = lib.sp2_sender_run(self.sender, _PACKETS_PER_CALLBACK, self._wake)
        if self._on_packets is not None:
            self._on_packets(self)
        self._complete()
        return status

    def _complete(self) -> None:
        while True:
            group = lib.sp2_sender_pop_done(self.sender)
            if group == ffi.NULL:
                return
            pending = self._pending.pop(group.token)
            self._heaps_in_flight -= pending.n_heaps
            if pending.slot is not None:
                self._free_slots.append(pending.slot)
            if pending.done is not None:
                pending.done(group.error, group.bytes)

    def _writable(self) -> None:
        assert self.loop is not None
        self.loop.remove_writer(self.fd)
        self._waiting_writable = False
        self._run()

    def _sleep_until(self, deadline_ns: int) -> None:
        assert self.loop is not None
        if self._timer_fd < 0:
            self._timer_fd = lib.sp2_timer_fd_new()
            if self._timer_fd >= 0:
                self.resources.append(self._timer_fd)
        if self._timer_fd < 0 or lib.sp2_timer_fd_arm(self._timer_fd, deadline_ns) != 0:
            delay = max(0.0, (deadline_ns - lib.sp2_send_now_ns()) * 1e-9)
            self._scheduled = True
            self.loop.call_later(delay, self._run)
            return
        self._timer_armed = True
        if not self._timer_watched:
            self._timer_watched = True
            self.loop.add_reader(self._timer_fd, self._timer_fired)

    def _timer_fired(self) -> None:
        # The reader stays on while heaps are queued (no epoll_ctl pair per burst); re-arming
        # resets the fd, so it is read only when it fires with nothing to wake.
        if not self._timer_armed:
            lib.sp2_timer_fd_ack(self._timer_fd)
            return
        self._timer_armed = False
        self._run()

    def _unwatch_timer(self) -> None:
        assert self.loop is not None
        self.loop.remove_reader(self._timer_fd)
        lib.sp2_timer_fd_ack(self._timer_fd)
        self._timer_watched = False

    # ---- from outside the normal flow ----

    def drain(self) -> None:
        """Sends everything queued before returning, on the calling thread (the blocking
        façade's way of sending, and asyncio's ``flush``)."""
        while True:
            status = self._step()
            if status == lib.SP2_RUN_IDLE:
                return
            if status == lib.SP2_RUN_SLEEP:
                lib.sp2_sleep_until(self._wake[0])
            elif status == lib.SP2_RUN_BLOCKED:
                select.select([], [self.fd], [], 1.0)
