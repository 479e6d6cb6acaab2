"""add_tcp_reader: SPEAD packets back to back over one TCP connection.

The reader listens (or takes over a listening socket of the user's, duplicated), accepts one
connection and closes the listener.  An ``asyncio.BufferedProtocol`` receives straight into the
reader's buffer and the kernel frames packets out of it (``sp2_stream_add_bytes``); a partial
packet waits at the front of the buffer for the rest.  As in the reference, a packet larger than
``max_size`` (or one whose header decodes but whose packet does not) is skipped whole, and a
header that cannot be decoded is skipped 8 bytes at a time; each drop is counted, its condition
logged, and reading goes on.  When the connection ends -- closed by the peer, cleanly or in the
middle of a packet -- the stream stops; every heap completed before it is still delivered.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any, cast

from spead2._kernel import ffi, lib
from spead2._overload import TCP_BUFFER_SIZE, TCP_MAX_SIZE, Overload, first_is, resolve_overload
from spead2.recv._core import BAD_PACKET, StreamCore
from spead2.recv._readers._net import (
    ReaderValueError,
    bind,
    check_int,
    check_port,
    check_str,
    format_address,
    make_socket,
    resolve_one,
    runtime_compatible,
    set_receive_buffer,
    setsockopt,
    task_error,
)

_logger = logging.getLogger("spead2")

#: The least free space handed to the transport for one read.
MIN_READ = 65536
INITIAL_BUFFER = 256 * 1024


class TcpReader:
    def __init__(self, core: StreamCore, listener: socket.socket, max_size: int) -> None:
        self._core = core
        self._listener: socket.socket | None = listener
        self._where = format_address(listener.getsockname())
        # The kernel treats 0 as "no limit"; the reference's max_size=0 accepts no packet.
        self._max_packet = max(max_size, 1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._accepting = False
        self._accept_task: asyncio.Task[Any] | None = None
        self._transport: asyncio.Transport | None = None
        self._peer = ""
        self._capacity = max(INITIAL_BUFFER, MIN_READ)
        self._limit = max(self._capacity, min(self._max_packet, 1 << 40) + MIN_READ)
        self._buffer = bytearray(self._capacity)
        self._data = ffi.from_buffer(self._buffer)
        self._start = 0  # unconsumed bytes are [start, end)
        self._end = 0
        self._eof = False
        self._skip = 0  # bytes of a dropped packet still to be skipped (they may not have come yet)
        self._invalid_logged = False
        self._paused = False
        self._closed = False
        self._finished = False

    # ---- Reader protocol (loop thread) ----

    def start(self) -> None:
        if self._closed or self._listener is None:
            return
        self._loop = self._core.loop
        assert self._loop is not None
        try:
            self._loop.add_reader(self._listener.fileno(), self._on_acceptable)
            self._accepting = True
        except NotImplementedError:  # e.g. the proactor loop: accept through a task instead
            self._accept_task = self._loop.create_task(self._accept_async())

    def pause(self) -> None:
        self._paused = True
        if self._transport is not None:
            self._transport.pause_reading()

    def resume(self) -> None:
        self._paused = False
        if self._closed:
            return
        self._feed()
        if self._closed or self._paused:
            return
        if self._eof:
            self._finish()
        elif self._transport is not None:
            self._transport.resume_reading()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop_listening()
        if self._transport is not None:
            self._transport.close()
        self._data = None

    # ---- accepting ----

    def _stop_listening(self) -> None:
        listener, self._listener = self._listener, None
        if listener is None:
            return
        if self._accepting:
            self._accepting = False
            assert self._loop is not None
            try:
                self._loop.remove_reader(listener.fileno())
            except RuntimeError:  # pragma: no cover - the loop is already closed
                pass
        if self._accept_task is not None and not self._accept_task.done():
            # The task owns the listener until it finishes (closing it under a pending accept
            # could close an fd the loop is still watching).
            self._accept_task.add_done_callback(lambda _: listener.close())
            self._accept_task.cancel()
        else:
            listener.close()

    def _on_acceptable(self) -> None:
        assert self._listener is not None
        try:
            conn, addr = self._listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        except OSError as exc:
            _logger.warning("TCP reader on %s: accept failed: %s", self._where, exc)
            self._stop_listening()
            self._core.reader_finished(self)
            return
        self._accepted(conn, addr)

    async def _accept_async(self) -> None:
        assert self._loop is not None and self._listener is not None
        try:
            conn, addr = await self._loop.sock_accept(self._listener)
        except asyncio.CancelledError:
            raise
        except OSError as exc:
            _logger.warning("TCP reader on %s: accept failed: %s", self._where, exc)
            if not self._closed:
                self._core.reader_finished(self)
            return
        self._accepted(conn, addr)

    def _accepted(self, conn: socket.socket, addr: Any) -> None:
        self._stop_listening()  # a single connection, as the reference
        if self._closed:
            conn.close()
            return
        self._peer = format_address(addr) if isinstance(addr, tuple) else str(addr)
        _logger.debug("TCP reader on %s: connection from %s", self._where, self._peer)
        conn.setblocking(False)
        assert self._loop is not None
        task = self._loop.create_task(self._loop.connect_accepted_socket(lambda: _Protocol(self), conn))
        task.add_done_callback(self._connected)

    def _connected(self, task: asyncio.Task[Any]) -> None:
        exc = task_error(task)
        if exc is not None:
            _logger.warning("TCP reader on %s: cannot use the connection: %s", self._where, exc)
            self._finish()

    # ---- the connection (called by _Protocol) ----

    def _made(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        if self._closed:
            transport.close()
        elif self._paused:
            transport.pause_reading()

    def _get_buffer(self) -> memoryview:
        if self._capacity - self._end < MIN_READ:
            pending = self._end - self._start
            if self._start > 0:
                # move the partial packet to the front
                ffi.memmove(self._data, self._data + self._start, pending)
                self._start, self._end = 0, pending
            if self._capacity - self._end < MIN_READ and self._capacity < self._limit:
                # one packet larger than the buffer (up to max_size): grow
                capacity = min(max(self._capacity * 2, pending + MIN_READ), self._limit)
                grown = bytearray(capacity)
                grown[:pending] = self._buffer[:pending]
                self._buffer, self._capacity = grown, capacity
                self._data = ffi.from_buffer(grown)
        return memoryview(self._buffer)[self._end :]

    def _received(self, nbytes: int) -> None:
        self._end += nbytes
        if not self._paused:
            self._feed()

    def _feed(self) -> None:
        while not self._closed and not self._paused and self._end > self._start:
            if self._skip:
                self._consume(min(self._skip, self._end - self._start))
                continue
            status, consumed = self._core.feed_bytes(
                self._data + self._start, self._end - self._start, self._max_packet
            )
            self._consume(consumed)
            if status != BAD_PACKET:
                return
            self._skip_bad_packet()

    def _consume(self, nbytes: int) -> None:
        self._start += nbytes
        self._skip = max(self._skip - nbytes, 0) if self._skip else 0
        if self._start == self._end:
            self._start = self._end = 0

    def _skip_bad_packet(self) -> None:
        """Skips the packet the kernel refused (and counted), as the reference does: one whose
        size its header tells (too large, or its payload beyond its heap) whole, else 8 bytes."""
        info = ffi.new("sp2_packet_info *")
        why = lib.sp2_decode_packet(self._data + self._start, self._end - self._start, 0, info)
        if why in (lib.SP2_DROP_NONE, lib.SP2_DROP_TOO_SHORT, lib.SP2_DROP_BEYOND_HEAP):
            self._skip = max(int(info.size), 1)
        else:
            self._skip = 8
            if not self._invalid_logged:  # (the reference's line; repeats are in the drop counts)
                self._invalid_logged = True
                _logger.info("discarding packet due to invalid header")

    def _connection_ended(self, exc: Exception | None) -> None:
        if exc is not None and not self._eof and not self._closed:
            self._warn(f"connection lost ({exc})")
        self._eof = True
        if not self._paused:
            self._finish()

    def _finish(self) -> None:
        if self._finished or self._closed:
            return
        self._finished = True
        left = self._end - self._start
        if left:
            self._warn(f"connection closed {self._where_in_packet(left)}; {left} byte(s) discarded")
        else:
            _logger.debug("TCP reader on %s: connection closed", self._where)
        self._core.reader_finished(self)

    def _where_in_packet(self, left: int) -> str:
        info = ffi.new("sp2_packet_info *")
        lib.sp2_decode_packet(self._data + self._start, left, 0, info)
        return (
            "in the middle of a packet header"
            if left < 8 + 8 * info.n_items or left < 8
            else ("in the middle of a packet payload")
        )

    def _warn(self, message: str) -> None:
        peer = f" (from {self._peer})" if self._peer else ""
        _logger.warning("TCP reader on %s%s: %s", self._where, peer, message)


class _Protocol(asyncio.BufferedProtocol):
    def __init__(self, reader: TcpReader) -> None:
        self._reader = reader

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports do not derive from asyncio.Transport, but implement it)
        self._reader._made(cast(asyncio.Transport, transport))

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._reader._get_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        self._reader._received(nbytes)

    def eof_received(self) -> bool:
        self._reader._connection_ended(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._reader._connection_ended(exc)


# ---- the overloads of add_tcp_reader ----

OVERLOADS = (
    Overload(
        ("port", "max_size", "buffer_size", "bind_hostname"),
        {"max_size": TCP_MAX_SIZE, "buffer_size": TCP_BUFFER_SIZE, "bind_hostname": ""},
        first_is((socket.socket, type(None)), negate=True),
    ),
    Overload(("acceptor", "max_size"), {"max_size": TCP_MAX_SIZE}, first_is(socket.socket)),
)


def make_tcp_reader(core: StreamCore, *args: Any, **kwargs: Any) -> TcpReader:
    which, bound = resolve_overload("add_tcp_reader", OVERLOADS, args, kwargs)
    if which == 1:
        return _from_acceptor(core, bound["acceptor"], bound["max_size"])
    return _listen(core, **bound)


def _listen(core: StreamCore, port: Any, max_size: Any, buffer_size: Any, bind_hostname: Any) -> TcpReader:
    port = check_port(port)
    max_size = check_int(max_size, "max_size")
    buffer_size = check_int(buffer_size, "buffer_size")
    host = check_str(bind_hostname, "bind_hostname")
    family, sockaddr = resolve_one(host, port, socket.SOCK_STREAM)
    sock = make_socket(family, socket.SOCK_STREAM)
    setsockopt(sock, socket.SOL_SOCKET, socket.SO_REUSEADDR, 1, "cannot set SO_REUSEADDR")
    set_receive_buffer(sock, buffer_size)  # inherited by the accepted connection
    bind(sock, sockaddr)
    try:
        sock.listen(1)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise runtime_compatible(
            exc, f"cannot listen on {format_address(sockaddr)}: {exc.strerror}"
        ) from None
    return TcpReader(core, sock, max_size)


def _from_acceptor(core: StreamCore, acceptor: socket.socket, max_size: Any) -> TcpReader:
    max_size = check_int(max_size, "max_size")
    if acceptor.fileno() < 0:
        raise ReaderValueError("the acceptor socket is closed")
    if acceptor.type != socket.SOCK_STREAM:
        raise TypeError(f"expected a listening TCP socket, not {acceptor!r}")
    try:
        listening = acceptor.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    except (OSError, AttributeError):  # pragma: no cover - platforms without SO_ACCEPTCONN
        listening = 1
    if not listening:
        raise ReaderValueError("the acceptor socket is not listening (call listen() first)")
    try:
        own = acceptor.dup()  # the caller may close theirs at once
        own.setblocking(False)
    except OSError as exc:
        raise runtime_compatible(exc, f"cannot duplicate the acceptor socket: {exc.strerror}") from None
    return TcpReader(core, own, max_size)
