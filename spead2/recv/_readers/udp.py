"""add_udp_reader: datagrams from a UDP socket (unicast, IPv4 or IPv6 multicast, or a socket of
the user's).

The fast path registers the socket with ``loop.add_reader`` and the loop calls a C function
directly (``sp2_udp_reader_ready``; no Python runs per readiness, the GIL is released): it drains
the socket with ``recvmmsg`` into reusable buffers and feeds the kernel, one kernel batch per
``recvmmsg``.  C calls back into Python only when Python has to act: the ring is full, the stream
stopped, reading failed, heaps are ready for asyncio waiters, or packets were dropped (for the
log).  When the ring is full the reader stops watching the socket, so the kernel's socket buffer
absorbs the traffic (and then drops it, as with the reference); datagrams already read wait in the
C reader.  On the blocking façade's loop thread, which only serves readers, small batches are
coalesced (``COALESCE_NS``).  Where ``add_reader`` or the C drain is unavailable (e.g. the Windows
proactor loop), an ``asyncio.DatagramProtocol`` feeds the kernel one datagram at a time.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import struct
import sys
import weakref
from collections import deque
from collections.abc import Mapping
from typing import Any, cast

from spead2._kernel import check_pointer, ffi, lib
from spead2._overload import UDP_BUFFER_SIZE, UDP_MAX_SIZE, Overload, Test, first_is, resolve_overload
from spead2.recv._core import StreamCore
from spead2.recv._readers._net import (
    ReaderValueError,
    bind,
    check_int,
    check_port,
    check_str,
    format_address,
    is_multicast,
    make_socket,
    resolve,
    resolve_one,
    runtime_compatible,
    set_receive_buffer,
    setsockopt,
    task_error,
)

_logger = logging.getLogger("spead2")

#: Datagram buffers per reader (the largest batch).
N_SLOTS = 64
#: Batches read per loop callback, so that one busy socket does not starve the loop.
MAX_BATCHES = 16
#: Interrupt-moderation-style coalescing on the blocking façade's loop thread: when a readiness
#: brings only a few datagrams, the C reader naps and reads again, so that each wake-up takes a
#: larger batch (see sp2_udp_reader_set_nap).  The naps fit the rate and the socket's buffer
#: (nap_goal in udp.c) and add up to this much per readiness at most; none once a wake-up finds
#: enough, nor while traffic is sparse.  0 turns it off.
COALESCE_NS = int(os.environ.get("SPEAD2_UDP_COALESCE_NS", "500000"))
#: Use the native drain where it is available (tests turn it off to cover the portable path).
USE_NATIVE = bool(lib.sp2_udp_reader_supported())
#: Receive payloads that continue a heap in order straight into it (Linux; see
#: sp2_udp_reader_set_landing).  ``SPEAD2_UDP_LANDING=0`` turns it off.
LANDING = os.environ.get("SPEAD2_UDP_LANDING", "1") != "0"


class UdpReader:
    """A bound UDP socket feeding a core."""

    def __init__(self, core: StreamCore, sock: socket.socket, max_size: int, backlog_limit: int) -> None:
        self._core = core
        self._sock = sock
        self._fd = sock.fileno()
        self._max_size = max_size
        try:
            self._where = format_address(sock.getsockname())
        except (OSError, IndexError, TypeError):  # pragma: no cover - unbound exotic sockets
            self._where = f"fd {self._fd}"
        self._native: Any = None
        if USE_NATIVE:
            raw = lib.sp2_udp_reader_new(max_size, N_SLOTS)
            if raw == ffi.NULL:
                sock.close()
            check_pointer(raw, "cannot allocate the UDP reader's buffers")
            # The loop's handle holds the C reader, and C uses the callback and the kernel stream:
            # the C reader's destructor keeps both, so neither can go while the loop may still
            # call it (and the callback holds this object weakly: no cycle).
            notify = ffi.callback("void(int, int)", functools.partial(_notify, weakref.ref(self)))
            self._native = ffi.gc(raw, _FreeNative(notify, core.kernel))
            self._notify = notify
        self._kernel = core.kernel
        self._loop: asyncio.AbstractEventLoop | None = None
        self._registered = False
        self._paused = False
        self._closed = False
        # portable path
        self._transport: asyncio.DatagramTransport | None = None
        self._backlog: deque[bytes] = deque()
        self._backlog_bytes = 0
        self._backlog_limit = backlog_limit
        self._overflow = 0

    # ---- Reader protocol (loop thread) ----

    def start(self) -> None:
        if self._closed:
            return
        self._loop = self._core.loop
        assert self._loop is not None
        if self._native is not None:
            notify_heaps = int(self._core.on_heaps is not None)
            lib.sp2_udp_reader_attach(
                self._native, self._kernel, self._fd, MAX_BATCHES, self._notify, notify_heaps
            )
            lib.sp2_udp_reader_set_landing(self._native, int(LANDING))
            if self._core.dedicated_loop:
                # (not on the asyncio façade's loop: that loop is the user's)
                lib.sp2_udp_reader_set_nap(self._native, COALESCE_NS)
            try:
                self._register()
            except NotImplementedError:
                self._native = None
            else:
                return
        self._start_protocol()

    def pause(self) -> None:
        self._paused = True
        if self._registered:
            self._unregister()
        elif self._transport is not None and hasattr(self._transport, "pause_reading"):
            self._transport.pause_reading()

    def resume(self) -> None:
        self._paused = False
        if self._closed or self._loop is None:
            return
        if self._native is not None:
            if not self._registered:
                self._register()
            if lib.sp2_udp_reader_pending(self._native):
                # datagrams read before the pause, which no readiness of the socket would feed
                lib.sp2_udp_reader_ready(self._native)
        else:
            self._drain_backlog()
            if (
                not self._paused
                and self._transport is not None
                and hasattr(self._transport, "resume_reading")
            ):
                self._transport.resume_reading()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._registered:
            self._unregister()
        if self._transport is not None:
            self._transport.close()  # closes the socket
        else:
            self._sock.close()
        # (the C reader is freed with its last reference: close() may run inside its callback)
        self._native = None
        self._backlog.clear()
        if self._overflow:
            _logger.warning(
                "UDP reader on %s dropped %d datagram(s) while the stream was full",
                self._where,
                self._overflow,
            )

    def _register(self) -> None:
        assert self._loop is not None
        # The loop calls the C function itself: no Python runs per readiness unless C notifies.
        self._loop.add_reader(self._fd, lib.sp2_udp_reader_ready, self._native)
        self._registered = True

    def _unregister(self) -> None:
        self._registered = False
        assert self._loop is not None
        try:
            self._loop.remove_reader(self._fd)
        except RuntimeError:  # pragma: no cover - the loop is already closed
            pass

    # ---- fast path ----

    def _on_event(self, status: int, err: int) -> None:
        """C says: the ring is full, the stream stopped, reading failed, heaps are ready (asyncio)
        or packets were dropped (for the log)."""
        if self._closed:
            return
        if status < 0:
            self._fail(err)
        else:
            self._core.handle_status(status)

    def _fail(self, code: int) -> None:
        _logger.warning("UDP reader on %s failed: %s; it stops", self._where, os.strerror(code))
        if not self._closed:
            self._core.reader_finished(self)

    # ---- portable path ----

    def _start_protocol(self) -> None:
        assert self._loop is not None
        coro = self._loop.create_datagram_endpoint(lambda: _Protocol(self), sock=self._sock)
        task = self._loop.create_task(coro)
        task.add_done_callback(self._endpoint_done)

    def _endpoint_done(self, task: asyncio.Task[Any]) -> None:
        exc = task_error(task)
        if exc is not None:
            _logger.warning("UDP reader on %s could not start: %s", self._where, exc)
            if not self._closed:
                self._core.reader_finished(self)

    def _transport_made(self, transport: asyncio.DatagramTransport) -> None:
        self._transport = transport
        if self._closed:
            transport.close()
        elif self._paused and hasattr(transport, "pause_reading"):
            transport.pause_reading()

    def _datagram(self, data: bytes) -> None:
        if self._closed:
            return
        if len(data) > self._max_size:
            self._core.count_drop("too_large")
            return
        if self._paused:
            # The transport cannot be paused (uvloop): hold a bounded backlog, like a socket
            # buffer, and drop beyond it.
            if self._backlog_bytes + len(data) > self._backlog_limit:
                self._overflow += 1
            else:
                self._backlog.append(data)
                self._backlog_bytes += len(data)
            return
        self._core.feed_datagram(ffi.from_buffer(data), len(data))

    def _drain_backlog(self) -> None:
        while self._backlog and not self._paused and not self._closed:
            data = self._backlog.popleft()
            self._backlog_bytes -= len(data)
            self._core.feed_datagram(ffi.from_buffer(data), len(data))


def _notify(reader_ref: weakref.ref[UdpReader], status: int, err: int) -> None:
    reader = reader_ref()
    if reader is None:
        return
    try:
        reader._on_event(status, err)
    except Exception:  # pragma: no cover - a bug: C cannot take an exception
        _logger.exception("UDP reader: error while handling status %d", status)


class _FreeNative:
    """Destructor of a C reader, which keeps what the C reader points to alive until it runs."""

    __slots__ = ("keep",)

    def __init__(self, *keep: Any) -> None:
        self.keep = keep

    def __call__(self, raw: Any) -> None:
        lib.sp2_udp_reader_free(raw)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, reader: UdpReader) -> None:
        self._reader = reader

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports do not derive from asyncio's classes, but implement them)
        self._reader._transport_made(cast(asyncio.DatagramTransport, transport))

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._reader._datagram(data)

    def error_received(self, exc: Exception) -> None:
        _logger.debug("UDP reader: %s", exc)


# ---- the overloads of add_udp_reader ----

_SIZES = {"max_size": UDP_MAX_SIZE, "buffer_size": UDP_BUFFER_SIZE}


def _is_int(value: Any) -> bool:
    return hasattr(value, "__index__") and not isinstance(value, bool | str)


def _multicast_applies(ipv6: bool) -> Test:
    """A group with an interface of the overload's kind (an index for IPv6, an address for
    IPv4); with no interface given, the family the group resolves to decides."""
    own = "interface_index" if ipv6 else "interface_address"

    def test(bound: Mapping[str, Any], given: frozenset[str]) -> bool:
        if not isinstance(bound["multicast_group"], str):
            return False
        if own in given:
            return _is_int(bound[own]) == ipv6
        return _group_is_ipv6(bound["multicast_group"]) == ipv6

    return test


OVERLOADS = (
    Overload(
        ("port", "max_size", "buffer_size", "bind_hostname"),
        {**_SIZES, "bind_hostname": ""},
        first_is((socket.socket, str), negate=True),
    ),
    Overload(("socket", "max_size"), {"max_size": UDP_MAX_SIZE}, first_is(socket.socket)),
    Overload(
        ("multicast_group", "port", "max_size", "buffer_size", "interface_address"),
        {**_SIZES, "interface_address": "0.0.0.0"},
        _multicast_applies(ipv6=False),
    ),
    Overload(
        ("multicast_group", "port", "max_size", "buffer_size", "interface_index"),
        {**_SIZES, "interface_index": 0},
        _multicast_applies(ipv6=True),
    ),
)


def make_udp_reader(core: StreamCore, *args: Any, **kwargs: Any) -> UdpReader:
    """Picks the overload the arguments match (as the reference does) and sets the socket up."""
    which, bound = resolve_overload("add_udp_reader", OVERLOADS, args, kwargs)
    if which == 0:
        return _unicast(core, **bound)
    if which == 1:
        return _from_socket(core, bound["socket"], bound["max_size"])
    return _multicast(core, **bound)


def _sizes(max_size: Any, buffer_size: Any) -> tuple[int, int]:
    return check_int(max_size, "max_size"), check_int(buffer_size, "buffer_size")


def _backlog_limit(buffer_size: int) -> int:
    return max(buffer_size, 1 << 20)


def _join(sock: socket.socket, family: int, group: str, interface: str | int) -> None:
    if family == socket.AF_INET:
        assert isinstance(interface, str)
        mreq = socket.inet_aton(group) + socket.inet_aton(interface)
        what = f"cannot join multicast group {group} on interface {interface}"
        setsockopt(sock, socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq, what)
    else:
        assert isinstance(interface, int)
        mreq = socket.inet_pton(socket.AF_INET6, group.split("%")[0]) + struct.pack("@I", interface)
        what = f"cannot join multicast group {group} on interface index {interface}"
        setsockopt(sock, socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq, what)


def _bind_address(family: int, sockaddr: tuple[Any, ...]) -> tuple[Any, ...]:
    """Windows cannot bind to a multicast address: bind to the wildcard there."""
    if sys.platform != "win32" or not is_multicast(sockaddr[0]):
        return sockaddr
    return ("0.0.0.0", sockaddr[1]) if family == socket.AF_INET else ("::", *sockaddr[1:])


def _unicast(core: StreamCore, port: Any, max_size: Any, buffer_size: Any, bind_hostname: Any) -> UdpReader:
    port = check_port(port)
    max_size, buffer_size = _sizes(max_size, buffer_size)
    host = check_str(bind_hostname, "bind_hostname")
    family, sockaddr = resolve_one(host, port, socket.SOCK_DGRAM)
    sock = make_socket(family, socket.SOCK_DGRAM)
    group = is_multicast(sockaddr[0])
    if group:
        setsockopt(sock, socket.SOL_SOCKET, socket.SO_REUSEADDR, 1, "cannot set SO_REUSEADDR")
    set_receive_buffer(sock, buffer_size)
    bind(sock, _bind_address(family, sockaddr))
    if group:  # also subscribe, on the interface the OS picks
        _join(sock, family, sockaddr[0], "0.0.0.0" if family == socket.AF_INET else 0)
    return UdpReader(core, sock, max_size, _backlog_limit(buffer_size))


def _from_socket(core: StreamCore, sock: socket.socket, max_size: Any) -> UdpReader:
    max_size = check_int(max_size, "max_size")
    if sock.fileno() < 0:
        raise ReaderValueError("the socket is closed")
    if sock.type != socket.SOCK_DGRAM or sock.family not in (socket.AF_INET, socket.AF_INET6):
        raise TypeError(f"expected a UDP socket, not {sock!r}")
    try:
        own = sock.dup()  # the caller keeps (and may close) theirs
    except OSError as exc:
        raise runtime_compatible(exc, f"cannot duplicate the socket: {exc.strerror}") from None
    try:
        rcvbuf = own.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    except OSError:  # pragma: no cover
        rcvbuf = UDP_BUFFER_SIZE
    return UdpReader(core, own, max_size, _backlog_limit(rcvbuf))


def _group_is_ipv6(group: Any) -> bool:
    if not isinstance(group, str):
        return False
    try:
        found = resolve(group, 0, socket.SOCK_DGRAM)
    except OSError:
        return False  # reported by the IPv4 overload
    return bool(found) and all(family == socket.AF_INET6 for family, _ in found)


def _multicast(
    core: StreamCore,
    multicast_group: Any,
    port: Any,
    max_size: Any,
    buffer_size: Any,
    interface_address: Any = None,
    interface_index: Any = None,
) -> UdpReader:
    group_name = check_str(multicast_group, "multicast_group")
    port = check_port(port)
    max_size, buffer_size = _sizes(max_size, buffer_size)
    found = resolve(group_name, port, socket.SOCK_DGRAM)
    if interface_index is None:
        # IPv4: a multicast group, or a unicast address equal to the interface address
        iface_name = check_str(interface_address, "interface_address") or "0.0.0.0"
        v4 = [sockaddr for family, sockaddr in found if family == socket.AF_INET]
        if not v4:
            raise ReaderValueError("endpoint is not an IPv4 address")
        sockaddr = v4[0]
        iface_found = [s for f, s in resolve(iface_name, 0, socket.SOCK_DGRAM) if f == socket.AF_INET]
        if not iface_found:
            raise ReaderValueError("interface address is not an IPv4 address")
        iface = iface_found[0][0]
        group = is_multicast(sockaddr[0])
        if not group and sockaddr[0] != iface:
            raise ReaderValueError("endpoint is not multicast and does not match interface address")
        sock = make_socket(socket.AF_INET, socket.SOCK_DGRAM)
        setsockopt(sock, socket.SOL_SOCKET, socket.SO_REUSEADDR, 1, "cannot set SO_REUSEADDR")
        set_receive_buffer(sock, buffer_size)
        bind(sock, _bind_address(socket.AF_INET, sockaddr))
        if group:
            _join(sock, socket.AF_INET, sockaddr[0], iface)
    else:
        index = check_int(interface_index, "interface_index", 0, 2**32 - 1)
        v6 = [sockaddr for family, sockaddr in found if family == socket.AF_INET6]
        if not v6 or not is_multicast(v6[0][0]):
            raise ReaderValueError("endpoint is not an IPv6 multicast address")
        sockaddr = (v6[0][0].split("%")[0], port, 0, index)
        sock = make_socket(socket.AF_INET6, socket.SOCK_DGRAM)
        setsockopt(sock, socket.SOL_SOCKET, socket.SO_REUSEADDR, 1, "cannot set SO_REUSEADDR")
        set_receive_buffer(sock, buffer_size)
        bind(sock, _bind_address(socket.AF_INET6, sockaddr))
        _join(sock, socket.AF_INET6, sockaddr[0], index)
    return UdpReader(core, sock, max_size, _backlog_limit(buffer_size))
