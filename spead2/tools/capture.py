"""spead2_capture (and ``mcdump``, the reference's name and command line): capture UDP traffic to a
pcap file with ordinary sockets.

Unlike the reference's mcdump, which needs NICs with ibverbs, this works on any host: it binds a
UDP socket per endpoint (joining multicast groups), and the C kernel (``capture.c``) reads them
with ``recvmmsg`` in batches and writes every datagram as an Ethernet / IP / UDP record of a
nanosecond pcap file through one large buffer, which ``add_udp_pcap_file_reader``, tcpdump and
Wireshark read.  It runs until Ctrl-C, ``--count`` packets or ``--duration`` seconds.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import logging
import os
import re
import signal
import socket
import struct
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any, BinaryIO

from spead2._kernel import check_pointer, ensure, ffi, lib
from spead2.tools import _cli
from spead2.tools._cli import ToolError

_logger = logging.getLogger("spead2")

PROG = "spead2_capture"
MCDUMP_PROG = "mcdump"
BATCH = 64  # datagrams per recvmmsg
NAP_US = 200  # sleep after a thin round, so that the next reads a fuller batch
WRITE_BUFFER = 8 * 1024 * 1024
MAX_ENDPOINTS = 64


@dataclass(frozen=True)
class Endpoint:
    text: str
    host: str  # "" for a bare port
    port: int

    @property
    def group(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        try:
            address = ipaddress.ip_address(self.host)
        except ValueError:
            return None
        return address if address.is_multicast else None


def parse_endpoint(text: str) -> Endpoint:
    match = re.fullmatch(r"(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:\[\]]*)):(?P<port>\d+)|(?P<only>\d+)", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"not PORT, HOST:PORT or [IPv6]:PORT: {text!r}")
    port = int(match["port"] or match["only"])
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"port out of range (1-65535) in {text!r}")
    return Endpoint(text, match["v6"] or match["host"] or "", port)


# ---------------------------------------------------------------- arguments


def build_parser() -> argparse.ArgumentParser:
    parser = _cli.Parser(
        prog=PROG,
        description="Capture UDP traffic (e.g. SPEAD) for one or more endpoints to a pcap file, "
        "using ordinary sockets.  Multicast groups are joined.",
        epilog="Examples: spead2_capture -o out.pcap 8888 | "
        "spead2_capture -o beam.pcap --interface 10.0.0.5 239.1.2.3:7148 239.1.2.4:7148 --duration 10",
    )
    parser.add_argument(
        "endpoint", nargs="+", type=parse_endpoint, help="PORT, HOST:PORT or GROUP:PORT ([IPv6]:PORT)"
    )
    parser.add_argument(
        "-o",
        "-w",
        "--output",
        required=True,
        metavar="FILE",
        help="pcap file to write ('-': none, count only)",
    )
    parser.add_argument("-c", "--count", type=_cli.positive_int, metavar="N", help="stop after N packets")
    parser.add_argument(
        "-t", "--duration", type=_cli.positive_float, metavar="SECONDS", help="stop after this long"
    )
    parser.add_argument(
        "--bind",
        default="",
        metavar="ADDRESS",
        help="local address to bind bare PORT endpoints to [all IPv4 addresses]",
    )
    parser.add_argument(
        "--interface",
        default="",
        metavar="ADDRESS",
        help="interface to join multicast groups on: an IPv4 address, or an IPv6 interface name/index",
    )
    add_common_options(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="no live packet count")
    parser.add_argument(
        "--interval", type=_cli.positive_float, metavar="SECONDS", help="period of the live count [0.5 / 2]"
    )
    _cli.add_log_option(parser)
    return parser


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--buffer",
        type=_cli.non_negative_int,
        default=8 * 1024 * 1024,
        metavar="BYTES",
        help="socket receive buffer size (0: the OS default) [%(default)s]",
    )
    io = parser.add_mutually_exclusive_group()
    io.add_argument(
        "--direct-io",
        dest="io",
        action="store_const",
        const="direct",
        help="write with O_DIRECT, bypassing the page cache (an error where the filesystem refuses it)",
    )
    io.add_argument(
        "--buffered-io",
        dest="io",
        action="store_const",
        const="buffered",
        help="write through the page cache [default: O_DIRECT where the filesystem takes it]",
    )
    parser.set_defaults(io="auto")
    parser.add_argument("--affinity", type=int, metavar="CPU", help="pin the capturing thread to this CPU")


def build_mcdump_parser() -> argparse.ArgumentParser:
    """The reference's mcdump command line: ``mcdump -i ADDRESS OUTPUT GROUP:PORT...``."""
    parser = _cli.Parser(
        prog=MCDUMP_PROG,
        description="Capture UDP (multicast or unicast) to a pcap file: the reference's mcdump command "
        "line, with ordinary sockets instead of ibverbs.",
    )
    parser.add_argument(
        "-i",
        dest="interface",
        required=True,
        metavar="ADDRESS",
        help="IPv4 address of the capturing interface",
    )
    parser.add_argument("output", metavar="FILE", help="pcap file to write ('-': none, count only)")
    parser.add_argument("endpoint", nargs="+", type=parse_endpoint, metavar="GROUP:PORT")
    parser.add_argument(
        "-N",
        "-C",
        dest="affinity",
        type=int,
        metavar="CPU",
        help="CPU for the capturing thread (network and collector are one thread here)",
    )
    parser.add_argument(
        "-D",
        dest="disk_affinity",
        type=int,
        action="append",
        default=[],
        metavar="CPU",
        help="accepted for the reference's command lines (no separate disk thread here)",
    )
    parser.add_argument("--count", type=_cli.positive_int, metavar="N", help="stop after N packets")
    parser.add_argument(
        "--buffer",
        type=_cli.non_negative_int,
        default=8 * 1024 * 1024,
        metavar="BYTES",
        help=argparse.SUPPRESS,
    )
    parser.add_argument(
        "--direct-io",
        dest="io",
        action="store_const",
        const="direct",
        default="buffered",
        help="open the file with O_DIRECT (bypass the page cache)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no live packet count")
    _cli.add_log_option(parser)
    return parser


def parse_args(argv: Sequence[str] | None, prog: str = PROG) -> argparse.Namespace:
    if prog == MCDUMP_PROG:
        args = build_mcdump_parser().parse_args(argv)
        args.duration = None
        args.interval = None
        args.bind = ""
    else:
        args = build_parser().parse_args(argv)
    args.prog = prog
    return args


# ---------------------------------------------------------------- sockets


def _family(endpoint: Endpoint, bind: str) -> socket.AddressFamily:
    host = endpoint.host or bind
    if not host:
        return socket.AF_INET
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return socket.getaddrinfo(host, endpoint.port, type=socket.SOCK_DGRAM)[0][0]


def _set_buffer(sock: socket.socket, endpoint: Endpoint, buffer_size: int) -> None:
    if not buffer_size:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_size)
    got = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    if got < buffer_size:
        _logger.warning(
            "socket buffer for %s is %d bytes, not %d: raise net.core.rmem_max to get more",
            endpoint.text,
            got,
            buffer_size,
        )


def _join(sock: socket.socket, group: ipaddress.IPv4Address | ipaddress.IPv6Address, interface: str) -> None:
    if group.version == 4:
        local = socket.inet_aton(interface) if interface else b"\0\0\0\0"
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, group.packed + local)
    else:
        index = 0
        if interface:
            index = int(interface) if interface.isdigit() else socket.if_nametoindex(interface)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, group.packed + struct.pack("@I", index))


def open_socket(endpoint: Endpoint, bind: str, interface: str, buffer_size: int) -> socket.socket:
    """A non-blocking UDP socket receiving ``endpoint`` (joined to its group if multicast), which
    reports each datagram's destination and receive time."""
    family = _family(endpoint, bind)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        _set_buffer(sock, endpoint, buffer_size)
        ensure(lib.sp2_capture_prepare_socket(sock.fileno(), 6 if family == socket.AF_INET6 else 4), "socket")
        group = endpoint.group
        if group is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((str(group), endpoint.port))
            _join(sock, group, interface)
        else:
            sock.bind((endpoint.host or bind or ("::" if family == socket.AF_INET6 else ""), endpoint.port))
        sock.setblocking(False)
        return sock
    except BaseException:
        sock.close()
        raise


def local_address(sock: socket.socket) -> bytes:
    """The address a socket is bound to (4 or 16 bytes): the destination of its datagrams when the
    kernel does not say."""
    return ipaddress.ip_address(sock.getsockname()[0].split("%")[0]).packed


# ---------------------------------------------------------------- pcap


class PcapWriter:
    """Writes datagrams as Ethernet frames of a nanosecond pcap file (the C writer that
    spead2_capture uses), to any binary file object; each record is written at once."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        writer = check_pointer(lib.sp2_pcap_writer_new(-1, 0, 0, 0), "pcap writer")
        self._writer = ffi.gc(writer, lib.sp2_pcap_writer_free)
        self._size = ffi.new("size_t *")
        self._drain()

    def write(
        self, payload: bytes, src: tuple[bytes, int], dst: tuple[bytes, int], timestamp_ns: int
    ) -> None:
        (src_addr, src_port), (dst_addr, dst_port) = src, dst
        if len(src_addr) != len(dst_addr):
            raise ValueError("source and destination addresses of different families")
        status = lib.sp2_pcap_writer_record(
            self._writer,
            payload,
            len(payload),
            src_addr,
            len(src_addr),
            src_port,
            dst_addr,
            dst_port,
            timestamp_ns,
        )
        ensure(status, "pcap record")
        self._drain()

    def _drain(self) -> None:
        data = lib.sp2_pcap_writer_pending(self._writer, self._size)
        self._file.write(ffi.buffer(data, self._size[0]))
        lib.sp2_pcap_writer_consume(self._writer, self._size[0])


# ---------------------------------------------------------------- running


class CaptureSession:
    """One run of the tool, in parts that can be read and tested alone: :meth:`setup` opens the
    sockets and the file, :meth:`poll` captures until the end while showing the live count,
    :meth:`summary` says what was captured, :meth:`teardown` flushes and closes everything."""

    def __init__(self, args: argparse.Namespace, status: _cli.StatusLine | None) -> None:
        self.args = args
        self.status = status
        self.sockets: list[tuple[Endpoint, socket.socket]] = []
        self.fd = -1
        self.direct = False  # the file was opened with O_DIRECT
        self.writer: Any = None
        self.capture: Any = None
        self.packets: Any = None
        self.bytes: Any = None
        self.start = time.monotonic()

    # ---- setup

    def setup(self) -> None:
        if not lib.sp2_capture_supported():
            raise ToolError("capturing needs recvmmsg (Linux)")
        if len(self.args.endpoint) > MAX_ENDPOINTS:
            raise ToolError(f"at most {MAX_ENDPOINTS} endpoints")
        for endpoint in self.args.endpoint:
            try:
                sock = open_socket(endpoint, self.args.bind, self.args.interface, self.args.buffer)
            except OSError as exc:
                raise ToolError(f"cannot receive from {endpoint.text}: {exc.strerror or exc}") from None
            self.sockets.append((endpoint, sock))
        self._open_output()
        writer = lib.sp2_pcap_writer_new(self.fd, WRITE_BUFFER, 0, int(self.direct))
        self.writer = ffi.gc(check_pointer(writer, "pcap writer"), lib.sp2_pcap_writer_free)
        capture = check_pointer(lib.sp2_capture_new(self.writer, BATCH), "capture buffers")
        self.capture = ffi.gc(capture, lib.sp2_capture_free)
        n = len(self.sockets)
        self.packets = ffi.new("uint64_t[]", n)
        self.bytes = ffi.new("uint64_t[]", n)
        if self.args.affinity is not None and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {self.args.affinity})

    def _open_output(self) -> None:
        """Opens the file: with O_DIRECT for --direct-io, and by default where the filesystem takes
        it (the kernel then copies nothing into the page cache: a third of the CPU per packet)."""
        if self.args.output == "-":
            return
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
        direct = getattr(os, "O_DIRECT", 0)
        if self.args.io == "direct" and not direct:
            raise ToolError("--direct-io needs O_DIRECT (Linux)")
        if self.args.io != "buffered" and direct:
            try:
                self.fd = os.open(self.args.output, flags | direct, 0o644)
                self.direct = True
                return
            except OSError as exc:
                if self.args.io == "direct" or exc.errno != errno.EINVAL:
                    hint = (
                        " (this filesystem refuses O_DIRECT: drop --direct-io)"
                        if exc.errno == errno.EINVAL
                        else ""
                    )
                    raise ToolError(f"cannot write {self.args.output}: {exc.strerror or exc}{hint}") from None
                _logger.info(
                    "%s: the filesystem refuses O_DIRECT; writing through the page cache", self.args.output
                )
        try:
            self.fd = os.open(self.args.output, flags, 0o644)
        except OSError as exc:
            raise ToolError(f"cannot write {self.args.output}: {exc.strerror or exc}") from None

    def announce(self) -> None:
        where = ", ".join(e.text for e, _ in self.sockets)
        target = "nowhere (counting only)" if self.args.output == "-" else self.args.output
        print(f"{self.args.prog}: capturing UDP on {where} to {target}", file=sys.stderr, flush=True)
        self.start = time.monotonic()

    # ---- polling

    def poll(self, stopped: list[int], interval: float) -> str:
        """Captures until a signal (``stopped`` gets its number), ``--count`` or ``--duration``;
        returns why it ended."""
        fds = ffi.new("int[]", [s.fileno() for _, s in self.sockets])
        addresses = [local_address(s) for _, s in self.sockets]
        local = ffi.new("uint8_t[]", b"".join(a.ljust(16, b"\0") for a in addresses))
        lengths = ffi.new("size_t[]", [len(a) for a in addresses])
        ports = ffi.new("uint16_t[]", [e.port for e, _ in self.sockets])
        deadline = self.start + self.args.duration if self.args.duration else None
        rate = _cli.Rate()
        next_status = time.monotonic() + interval
        while not stopped:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return "time"
            left = self.args.count - self.total_packets() if self.args.count else 0
            if self.args.count and left <= 0:
                return "count"
            wait = min(next_status, deadline or next_status) - now
            status = lib.sp2_capture_run(
                self.capture,
                fds,
                local,
                lengths,
                ports,
                len(self.sockets),
                max(1, int(wait * 1000)),
                NAP_US,
                left,
                self.packets,
                self.bytes,
            )
            if status < 0:
                raise ToolError(f"capture failed: {os.strerror(ffi.errno)}")
            if time.monotonic() >= next_status:  # (also without a live line: C waits until then)
                next_status = time.monotonic() + interval
                if self.status is not None:
                    self.status.show(
                        self.live_text(time.monotonic() - self.start, rate.sample(self.counts()))
                    )
        return "signal"

    def total_packets(self) -> int:
        return sum(self.packets[i] for i in range(len(self.sockets)))

    def counts(self) -> dict[str, float]:
        return {
            "packets": self.total_packets(),
            "bytes": sum(self.bytes[i] for i in range(len(self.sockets))),
        }

    def live_text(self, elapsed: float, rates: dict[str, float]) -> str:
        counts = self.counts()
        return (
            f"{elapsed:6.1f} s | {_cli.si(rates['packets'], 'pkt/s')} | {rates['bytes'] * 8e-9:.3g} Gb/s | "
            f"{int(counts['packets'])} packets, {_cli.size(counts['bytes'])}"
        )

    # ---- the end

    def finish(self, why: str) -> None:
        """Writes out what is buffered, shows the averages and prints the summary."""
        self.close_output()
        elapsed = time.monotonic() - self.start
        if self.status is not None:
            averages = {k: v / max(elapsed, 1e-9) for k, v in self.counts().items()}
            self.status.clear()
            self.status.show(self.live_text(elapsed, averages) + " (average)")
            self.status.finish()
        print("\n".join(self.summary(elapsed, why)), file=sys.stderr)

    def summary(self, elapsed: float, why: str) -> list[str]:
        counts = self.counts()
        total = f"{int(counts['packets'])} packets ({_cli.size(counts['bytes'])})"
        target = "" if self.args.output == "-" else f" to {self.args.output}"
        lines = [f"{self.args.prog}: {total} in {elapsed:.2f} s{target}"]
        if len(self.sockets) > 1:
            lines += [f"  {e.text}: {self.packets[i]} packets" for i, (e, _) in enumerate(self.sockets)]
        lines.append(f"  stopped by {why}")
        return lines

    def close_output(self) -> None:
        if self.writer is not None:
            writer, self.writer = self.writer, None
            if lib.sp2_pcap_writer_close(writer) < 0:
                raise ToolError(f"cannot write {self.args.output}: {os.strerror(ffi.errno)}")

    def teardown(self) -> None:
        for _, sock in self.sockets:
            sock.close()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def run(args: argparse.Namespace) -> int:
    status = None if args.quiet else _cli.StatusLine(sys.stderr)
    _cli.setup_logging(args.log, status)
    interval = args.interval or (0.5 if status is not None and status.tty else 2.0)
    session = CaptureSession(args, status)
    stopped: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopped.append(signum)
        signal.signal(signum, signal.SIG_DFL)  # a second Ctrl-C interrupts for real

    old_handlers = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        session.setup()
        session.announce()
        why = session.poll(stopped, interval)
        session.finish(why)
        return 0
    finally:
        for number, handler in old_handlers.items():
            signal.signal(number, handler)
        session.teardown()


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    args = parse_args(argv, prog)
    try:
        return run(args)
    except ToolError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        if exc.errno == errno.EPIPE:
            return 141
        print(f"{prog}: error: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def mcdump_main(argv: Sequence[str] | None = None) -> int:
    """``mcdump``: the reference's capture command line."""
    return main(argv, MCDUMP_PROG)


if __name__ == "__main__":
    sys.exit(main())
