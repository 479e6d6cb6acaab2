"""spead2_recv: receive SPEAD streams and print their heaps, with live rates and a summary.

Sources are ``PORT`` or ``HOST:PORT`` (UDP, or TCP with ``--tcp``; a multicast HOST is joined),
or the name of a pcap file.  ``--demo`` needs no source: a built-in sender streams sample heaps
over UDP on the loopback interface.

Installed twice: ``spead2_recv`` prints our format (heap lines, a live rate line, a statistics
table); ``spead2_recv.py``, the reference's name, prints the reference's lines (``Received heap
N on stream S``, ``name = value``, ``Shutting down stream S after N heaps`` and ``stat: value``)
so that scripts parsing them keep working.  ``--output`` chooses either under either name.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import os
import re
import socket
import sys
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np

import spead2
import spead2.recv
import spead2.recv.asyncio
from spead2.tools import _cli
from spead2.tools._cli import ToolError

_logger = logging.getLogger("spead2")

PROG = "spead2_recv"
REFERENCE_PROG = "spead2_recv.py"


# ---------------------------------------------------------------- arguments


@dataclass(frozen=True)
class Source:
    kind: str  # "udp", "tcp" or "pcap"
    text: str
    host: str = ""
    port: int = 0
    path: str = ""

    def describe(self) -> str:
        if self.kind == "pcap":
            return f"pcap {self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.kind} {host or '*'}:{self.port}"


def parse_source(text: str, tcp: bool) -> Source:
    kind = "tcp" if tcp else "udp"
    match = re.fullmatch(r"(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:\[\]]*)):(?P<port>\d+)|(?P<only>\d+)", text)
    if match is None:
        if tcp:
            raise ToolError(f"TCP sources are PORT or HOST:PORT, not {text!r}")
        return Source("pcap", text, path=text)
    port = int(match["port"] or match["only"])
    if not 0 < port < 65536:
        raise ToolError(f"port out of range (1-65535) in {text!r}")
    return Source(kind, text, host=match["v6"] or match["host"] or "", port=port)


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = _cli.Parser(
        prog=prog,
        description="Receive SPEAD heaps and print them, with live rates and a final summary.",
        epilog="Examples: spead2_recv --demo | spead2_recv 8888 | spead2_recv 239.1.2.3:7148 --bind 10.0.0.5 "
        "| spead2_recv --tcp 8888 | spead2_recv capture.pcap --pcap-filter 'udp port 7148'",
    )
    parser.add_argument("source", nargs="*", help="PORT, HOST:PORT ([IPv6]:PORT) or a pcap file")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="receive sample heaps from a built-in sender over UDP on 127.0.0.1 (no source needed)",
    )

    group = parser.add_argument_group("Output options")
    _cli.add_log_option(group)
    group.add_argument(
        "--output",
        choices=["human", "reference"],
        help="human: our heap lines, rate line and table; reference: the lines of the reference's "
        "spead2_recv.py, for scripts that parse them [reference when run as spead2_recv.py, else human]",
    )
    group.add_argument("--values", action="store_true", help="show item values (default with --demo)")
    group.add_argument("--descriptors", action="store_true", help="show item descriptors")
    group.add_argument("-q", "--quiet", action="store_true", help="no line per heap: only rates and summary")
    group.add_argument(
        "--interval",
        type=_cli.positive_float,
        metavar="SECONDS",
        help="period of the rate line [0.5 on a terminal, else 2]",
    )
    group.add_argument("--no-live", action="store_true", help="no rate line while running")

    group = parser.add_argument_group("Input options")
    group.add_argument(
        "--max-heaps", type=_cli.positive_int, metavar="N", help="stop after this many heaps (all sources)"
    )
    group.add_argument("--joint", action="store_true", help="treat all sources as a single stream")
    group.add_argument("--tcp", action="store_true", help="receive over TCP instead of UDP")
    group.add_argument(
        "--pcap-filter",
        default="",
        metavar="EXPR",
        help="tcpdump filter for pcap files (needs pcapy-ng or libpcap)",
    )
    group.add_argument(
        "--bind", default="", metavar="ADDRESS", help="interface address (or index for IPv6 multicast)"
    )
    group.add_argument(
        "--demo-heaps", type=_cli.positive_int, default=20, metavar="N", help="heaps the demo sends [20]"
    )
    group.add_argument(
        "--demo-rate", type=_cli.positive_float, default=8.0, metavar="HEAPS/S", help="demo heap rate [8]"
    )

    group = parser.add_argument_group("Protocol and performance options")
    group.add_argument("--pyspead", action="store_true", help="be bug-compatible with PySPEAD")
    group.add_argument("--memcpy-nt", action="store_true", help="use non-temporal memcpy")
    group.add_argument(
        "--concurrent-heaps",
        type=_cli.positive_int,
        default=spead2.recv.StreamConfig.DEFAULT_MAX_HEAPS,
        metavar="N",
        help="maximum number of in-flight heaps per substream [%(default)s]",
    )
    group.add_argument(
        "--substreams",
        type=_cli.positive_int,
        default=1,
        metavar="N",
        help="number of parallel substreams [1]",
    )
    group.add_argument(
        "--ring-heaps",
        type=_cli.positive_int,
        default=spead2.recv.RingStreamConfig.DEFAULT_HEAPS,
        metavar="N",
        help="ring buffer capacity in heaps [%(default)s]",
    )
    group.add_argument("--incomplete", action="store_true", help="pass incomplete heaps on (and show them)")
    group.add_argument("--out-of-order", action="store_true", help="allow packets of a heap out of order")
    group.add_argument("--mem-pool", action="store_true", help="use a memory pool")
    group.add_argument("--mem-lower", type=_cli.non_negative_int, default=16384, metavar="BYTES",
                       help="minimum allocation which will use the memory pool [%(default)s]")  # fmt: skip
    group.add_argument("--mem-upper", type=_cli.positive_int, default=32 * 1024 * 1024, metavar="BYTES",
                       help="maximum allocation which will use the memory pool [%(default)s]")  # fmt: skip
    group.add_argument("--mem-max-free", type=_cli.positive_int, default=12, metavar="N",
                       help="maximum free memory buffers [%(default)s]")  # fmt: skip
    group.add_argument("--mem-initial", type=_cli.non_negative_int, default=8, metavar="N",
                       help="initial free memory buffers [%(default)s]")  # fmt: skip
    group.add_argument(
        "--packet", type=_cli.positive_int, metavar="BYTES", help="maximum packet size to accept"
    )
    group.add_argument("--buffer", type=_cli.non_negative_int, metavar="BYTES", help="socket buffer size")
    group.add_argument(
        "--threads",
        type=_cli.positive_int,
        metavar="N",
        help="run the readers on N worker threads (a blocking stream) instead of the main event loop",
    )
    group.add_argument("--affinity", type=_cli.cpu_list, default=[], metavar="CPUS",
                       help="CPUs to pin the worker threads to (with --threads)")  # fmt: skip
    group.add_argument("--no-uvloop", action="store_true", help="use the stdlib event loop, not uvloop")
    _cli.add_ibv_options(group)
    return parser


def parse_args(argv: Sequence[str] | None, prog: str = PROG) -> argparse.Namespace:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.demo and args.source:
        parser.error("--demo takes no sources")
    if args.demo and args.tcp:
        parser.error("--demo sends over UDP; it cannot be combined with --tcp")
    if not args.demo and not args.source:
        parser.error("no source given (try --demo)")
    if args.affinity and not args.threads:
        args.threads = 1
    try:
        args.sources = [parse_source(text, args.tcp) for text in args.source]
    except ToolError as exc:
        parser.error(str(exc))
    if args.mem_lower > args.mem_upper:
        parser.error("--mem-lower is larger than --mem-upper")
    if args.ibv:
        parser.error(_cli.NO_IBV)
    args.prog = prog
    if args.output is None:
        args.output = "reference" if prog == REFERENCE_PROG else "human"
    if args.output == "reference":
        args.no_live = True  # the reference prints nothing but its lines
    return args


# ---------------------------------------------------------------- streams


def make_configs(args: argparse.Namespace) -> tuple[spead2.recv.StreamConfig, spead2.recv.RingStreamConfig]:
    config = spead2.recv.StreamConfig(
        max_heaps=args.concurrent_heaps,
        substreams=args.substreams,
        bug_compat=spead2.BUG_COMPAT_PYSPEAD_0_5_2 if args.pyspead else 0,
        memcpy=spead2.MEMCPY_NONTEMPORAL if args.memcpy_nt else spead2.MEMCPY_STD,
        allow_out_of_order=args.out_of_order,
    )
    if args.mem_pool:
        config.memory_allocator = spead2.MemoryPool(
            args.mem_lower, args.mem_upper, args.mem_max_free, args.mem_initial
        )
    ring_config = spead2.recv.RingStreamConfig(heaps=args.ring_heaps, contiguous_only=not args.incomplete)
    return config, ring_config


def _missing(method: str) -> ToolError:
    return ToolError(f"this build of spead2 cannot do that yet (Stream.{method} is missing)")


def add_source(stream: Any, source: Source, args: argparse.Namespace) -> None:
    """Adds the reader for ``source``; any failure becomes a one-line ToolError."""
    cls = type(stream)
    try:
        if source.kind == "pcap":
            if not os.path.isfile(source.path):
                raise ToolError(f"{source.text!r} is neither PORT, HOST:PORT nor an existing pcap file")
            if not hasattr(stream, "add_udp_pcap_file_reader"):
                raise _missing("add_udp_pcap_file_reader")
            if args.pcap_filter:
                stream.add_udp_pcap_file_reader(source.path, args.pcap_filter)
            else:
                stream.add_udp_pcap_file_reader(source.path)
        elif source.kind == "tcp":
            if not hasattr(stream, "add_tcp_reader"):
                raise _missing("add_tcp_reader")
            stream.add_tcp_reader(
                source.port,
                max_size=args.packet or cls.DEFAULT_TCP_MAX_SIZE,
                buffer_size=cls.DEFAULT_TCP_BUFFER_SIZE if args.buffer is None else args.buffer,
                bind_hostname=source.host or args.bind,
            )
        else:
            if not hasattr(stream, "add_udp_reader"):
                raise _missing("add_udp_reader")
            max_size = args.packet or cls.DEFAULT_UDP_MAX_SIZE
            buffer_size = cls.DEFAULT_UDP_BUFFER_SIZE if args.buffer is None else args.buffer
            group = _multicast(source.host)
            if group is not None and args.bind:
                if group.version == 4:
                    stream.add_udp_reader(
                        source.host, source.port, max_size, buffer_size, interface_address=args.bind
                    )
                else:
                    index = int(args.bind) if args.bind.isdigit() else socket.if_nametoindex(args.bind)
                    stream.add_udp_reader(
                        source.host, source.port, max_size, buffer_size, interface_index=index
                    )
            else:
                stream.add_udp_reader(
                    source.port,
                    max_size=max_size,
                    buffer_size=buffer_size,
                    bind_hostname=source.host or args.bind,
                )
    except ToolError:
        raise
    except (OSError, ValueError, TypeError, RuntimeError, NotImplementedError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ToolError(f"cannot receive from {source.describe()}: {detail}") from None


def _multicast(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    return address if address.is_multicast else None


def free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------- output


def format_value(value: Any) -> str:
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return str(value[()])
        flat = value.ravel() if value.ndim > 1 else value
        body = np.array2string(
            flat, threshold=6, edgeitems=3, max_line_width=10_000, precision=4, suppress_small=True
        )
        return " ".join(body.split()) + (" (flattened)" if value.ndim > 1 else "")
    if isinstance(value, str | bytes):
        return repr(value)
    if isinstance(value, list | tuple) and len(value) > 8:
        return "[" + ", ".join(map(repr, value[:3])) + f", ... ({len(value)} elements)]"
    return repr(value) if isinstance(value, list | tuple) else str(value)


def describe_value(value: Any) -> str:
    if isinstance(value, np.ndarray) and value.ndim > 0:
        return f"{value.dtype}[{','.join(map(str, value.shape))}]"
    return ""


def heap_bytes(heap: Any) -> int:
    """Payload bytes of a heap (what the rate in Gb/s counts)."""
    if isinstance(heap, spead2.recv.IncompleteHeap):
        return heap.received_length
    return sum(len(item) for item in heap.get_items() if not item.is_immediate)


class Printer:
    """Turns heaps into lines on ``out`` (and keeps the status line out of their way)."""

    def __init__(self, args: argparse.Namespace, out: TextIO, status: _cli.StatusLine | None) -> None:
        self.values = args.values or (args.demo and not args.quiet)
        self.descriptors = args.descriptors
        self.quiet = args.quiet
        self.out = out
        self.status = status

    def write(self, lines: list[str]) -> None:
        if self.status is not None:
            self.status.clear()
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()

    def heap(self, name: str, heap: Any, item_group: spead2.ItemGroup, n_bytes: int) -> None:
        prefix = f"[{name}] " if name else ""
        if isinstance(heap, spead2.recv.IncompleteHeap):
            if not self.quiet:
                received, length = heap.received_length, heap.heap_length
                self.write([f"{prefix}heap {heap.cnt}: INCOMPLETE, {received} of {length} bytes"])
            return
        descriptors = heap.get_descriptors() if self.descriptors and not self.quiet else []
        try:
            updated = item_group.update(heap)
        except ValueError as exc:
            _logger.warning("heap %d could not be decoded: %s", heap.cnt, exc)
            return
        if self.quiet:
            return
        if heap.is_start_of_stream():
            self.write([f"{prefix}heap {heap.cnt}: start of stream"])
        lines = [f"{prefix}heap {heap.cnt}: {len(updated)} items, {_cli.size(n_bytes)}"]
        if not self.values and updated:
            lines[0] += " (" + ", ".join(sorted(updated, key=lambda n: updated[n].id)) + ")"
        for raw in descriptors:
            desc = spead2.Descriptor.from_raw(raw, heap.flavour)
            kind = f"dtype={desc.dtype}" if desc.dtype is not None else f"format={desc.format}"
            lines.append(
                f"  descriptor {desc.id:#x} {desc.name!r}: shape={desc.shape} {kind} {desc.description!r}"
            )
        if self.values:
            width = max((len(n) for n in updated), default=0)
            # In descriptor order (the order of the item group), not the heap's.
            for item_name, item in sorted(updated.items(), key=lambda kv: kv[1].id):
                shape = describe_value(item.value)
                lines.append(
                    f"  {item_name:<{width}} {shape + ' ' if shape else ''}= {format_value(item.value)}"
                )
        self.write(lines)


class ReferencePrinter(Printer):
    """The lines of the reference's spead2_recv.py, which scripts parse (``--output reference``)."""

    def heap(self, name: str, heap: Any, item_group: spead2.ItemGroup, n_bytes: int) -> None:
        if self.quiet:
            return
        lines = [f"Received heap {heap.cnt} on stream {name}"]
        if isinstance(heap, spead2.recv.IncompleteHeap):  # only with --incomplete (ours)
            self.write(lines)
            return
        try:
            if self.descriptors:
                for raw in heap.get_descriptors():
                    lines += reference_descriptor_lines(spead2.Descriptor.from_raw(raw, heap.flavour))
            for key, item in item_group.update(heap).items():
                lines.append(f"{key} = {item.value}" if self.values else key)
        except ValueError as exc:
            lines.append(f"Error raised processing heap: {exc}")
        self.write(lines)

    @staticmethod
    def stream_end(name: str, n_heaps: int, stats: Any) -> list[str]:
        """The reference's block for one stream when it stops: its heap count and statistics."""
        lines = [f"Shutting down stream {name} after {n_heaps} heaps"]
        return lines + [f"{key}: {value}" for key, value in stats.items()]


def reference_descriptor_lines(desc: spead2.Descriptor) -> list[str]:
    return [
        f"    Descriptor for {desc.name} ({desc.id:#x})",
        f"      description: {desc.description}",
        f"      format:      {desc.format}",
        f"      dtype:       {desc.dtype}",
        f"      shape:       {desc.shape}",
    ]


def make_printer(args: argparse.Namespace, status: _cli.StatusLine | None) -> Printer:
    cls = ReferencePrinter if args.output == "reference" else Printer
    return cls(args, sys.stdout, status)


# ---------------------------------------------------------------- running


class Totals:
    def __init__(self) -> None:
        self.heaps = 0
        self.incomplete_received = 0


class Receiver:
    """One stream and its consumer."""

    def __init__(
        self,
        name: str,
        stream: Any,
        printer: Printer,
        totals: Totals,
        limit: asyncio.Event,
        label: str | None = None,
    ) -> None:
        self.name = name  # prefix of our heap lines ("" for a single stream)
        self.label = label if label is not None else name  # the stream's name in reference lines
        self.stream = stream
        self.printer = printer
        self.totals = totals
        self.limit = limit
        self.max_heaps: int | None = None
        self.count = 0
        self.item_group = spead2.ItemGroup()

    async def heaps(self) -> AsyncGenerator[Any, None]:
        if isinstance(self.stream, spead2.recv.asyncio.Stream):
            async for heap in self.stream:
                yield heap
            return
        # A blocking stream: the loop watches its fd (one byte per heap ready).
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()
        fd = self.stream.fd
        loop.add_reader(fd, ready.set)
        try:
            while True:
                try:
                    heap = self.stream.get_nowait()
                except spead2.Empty:
                    ready.clear()
                    await ready.wait()
                    continue
                except spead2.Stopped:
                    return
                yield heap
        finally:
            loop.remove_reader(fd)

    async def run(self) -> None:
        async with contextlib.aclosing(self.heaps()) as heaps:
            async for heap in heaps:
                if self.limit.is_set():  # --max-heaps reached (by any stream)
                    return
                self.handle(heap)
                if self.max_heaps is not None and self.totals.heaps >= self.max_heaps:
                    self.limit.set()
                    return

    def handle(self, heap: Any) -> None:
        n_bytes = heap_bytes(heap) if not self.printer.quiet else 0  # only printed per heap
        self.count += 1
        self.totals.heaps += 1
        if isinstance(heap, spead2.recv.IncompleteHeap):
            self.totals.incomplete_received += 1
        self.printer.heap(self.label if isinstance(self.printer, ReferencePrinter) else self.name,
                          heap, self.item_group, n_bytes)  # fmt: skip


def stat_totals(receivers: list[Receiver], totals: Totals) -> dict[str, float]:
    heaps = packets = dropped = incomplete = payload = 0
    for receiver in receivers:
        stats = receiver.stream.stats
        payload += stats.payload_bytes
        heaps += stats["heaps"]
        packets += stats["packets"]
        dropped += sum(stats.drops.values())
        incomplete += stats["incomplete_heaps_evicted"] + stats["incomplete_heaps_flushed"]
    return {
        "heaps": heaps,
        "packets": packets,
        "dropped": dropped,
        "incomplete": incomplete,
        "bytes": payload,
    }


def live_text(elapsed: float, rates: dict[str, float], counts: dict[str, float]) -> str:
    return (
        f"{elapsed:6.1f} s | {_cli.si(rates['heaps'], 'heaps/s')} | {_cli.si(rates['packets'], 'pkt/s')} | "
        f"{rates['bytes'] * 8e-9:.3g} Gb/s | {int(counts['heaps'])} heaps, {int(counts['packets'])} packets, "
        f"{int(counts['dropped'])} dropped, {int(counts['incomplete'])} incomplete"
    )


def summary_lines(receivers: list[Receiver], totals: Totals, elapsed: float) -> list[str]:
    names = [r.name or "stream" for r in receivers]
    all_stats = [r.stream.stats for r in receivers]
    rows: list[tuple[str, list[str]]] = []
    for stat in all_stats[0].keys():
        rows.append((stat, [str(s.get(stat, "")) for s in all_stats]))
    rows.append(("packets_dropped", [str(sum(s.drops.values())) for s in all_stats]))
    reasons = sorted({reason for s in all_stats for reason, n in s.drops.items() if n})
    for reason in reasons:
        rows.append((f"  {reason}", [str(s.drops[reason]) for s in all_stats]))
    label_width = max(len(label) for label, _ in rows)
    widths = [max(len(name), *(len(vals[i]) for _, vals in rows)) for i, name in enumerate(names)]
    lines = ["", "Statistics:"]
    lines.append(
        " " * label_width + "  " + "  ".join(f"{n:>{w}}" for n, w in zip(names, widths, strict=True))
    )
    for label, vals in rows:
        lines.append(
            f"{label:<{label_width}}  " + "  ".join(f"{v:>{w}}" for v, w in zip(vals, widths, strict=True))
        )
    counts = stat_totals(receivers, totals)
    seconds = max(elapsed, 1e-9)
    lines.append(
        f"Received {int(counts['heaps'])} heaps, {int(counts['packets'])} packets, "
        f"{_cli.size(int(counts['bytes']))} of payload in {elapsed:.2f} s: "
        f"{_cli.si(counts['heaps'] / seconds, 'heaps/s')}, {_cli.si(counts['packets'] / seconds, 'pkt/s')}, "
        f"{counts['bytes'] * 8e-9 / seconds:.3g} Gb/s"
    )
    if counts["dropped"] or counts["incomplete"]:
        lines.append(
            f"Lost: {int(counts['dropped'])} packets dropped, {int(counts['incomplete'])} incomplete heaps"
        )
    return lines


class Session:
    """One run of the tool, in parts that can be read and tested alone: :meth:`setup` makes the
    streams (and the demo sender), :meth:`poll` waits for the end while showing the rate line,
    :meth:`finish` stops the streams and prints the summary, :meth:`teardown` releases
    everything (also after an error)."""

    def __init__(self, args: argparse.Namespace, status: _cli.StatusLine | None) -> None:
        self.args = args
        self.status = status
        self.printer = make_printer(args, status)
        self.totals = Totals()
        self.limit = asyncio.Event()
        self.thread_pool = spead2.ThreadPool(args.threads, args.affinity) if args.threads else None
        self.sources: list[Source] = args.sources
        self.sender: Any = None
        self.receivers: list[Receiver] = []
        self.tasks: list[asyncio.Future[Any]] = []
        self.start = time.monotonic()

    # ---- setup

    def setup(self) -> None:
        if self.args.demo:
            self._make_demo_sender()
        groups = [self.sources] if self.args.joint or len(self.sources) == 1 else [[s] for s in self.sources]
        for group in groups:
            receiver = self._make_receiver(group, named=len(groups) > 1)
            self.receivers.append(receiver)
            for source in group:
                add_source(receiver.stream, source, self.args)

    def _make_demo_sender(self) -> None:
        from spead2.tools.demo import DemoSender

        port = free_udp_port()
        self.sources = [Source("udp", f"127.0.0.1:{port}", host="127.0.0.1", port=port)]
        self.sender = DemoSender(port, n_heaps=self.args.demo_heaps, rate=self.args.demo_rate)

    def _make_receiver(self, group: list[Source], named: bool) -> Receiver:
        config, ring_config = make_configs(self.args)
        stream: Any
        if self.thread_pool is not None:
            stream = spead2.recv.Stream(self.thread_pool, config, ring_config)
        else:
            stream = spead2.recv.asyncio.Stream(None, config, ring_config)
        name = group[0].text if named else ""
        receiver = Receiver(name, stream, self.printer, self.totals, self.limit, label=group[0].text)
        receiver.max_heaps = self.args.max_heaps
        return receiver

    def announce_and_start(self) -> None:
        listening = ", ".join(s.describe() for s in self.sources)
        if self.sender is not None:
            args = self.args
            self.printer.write(
                [
                    f"Demo: a built-in sender streams {args.demo_heaps} sample heaps to {listening} "
                    f"at {args.demo_rate:g} heaps/s; this receiver decodes them.  Ctrl-C stops."
                ]
            )
            self.sender.start()
        else:
            print(f"{self.args.prog}: receiving from {listening} (Ctrl-C stops)", file=sys.stderr, flush=True)
        self.start = time.monotonic()
        self.tasks = [asyncio.ensure_future(r.run()) for r in self.receivers]

    # ---- polling

    async def poll(self, stop: asyncio.Event, interval: float) -> bool:
        """Waits until the streams end, ``stop`` or ``--max-heaps``; True if ``stop`` ended it."""
        all_done: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(*self.tasks))
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.limit.wait())]
        rate = _cli.Rate()
        sender_grace: float | None = None
        try:
            while not all_done.done():
                await asyncio.wait([all_done, *waits], timeout=interval, return_when=asyncio.FIRST_COMPLETED)
                if stop.is_set() or self.limit.is_set():
                    return stop.is_set()
                if self.status is not None and not all_done.done():
                    self.show_rates(rate)
                if self.sender is not None and self.sender.done:
                    # The stop heap ends the stream; should it be lost, give up a little later.
                    if self.sender.error is not None:
                        raise ToolError(f"the demo sender failed: {self.sender.error}")
                    sender_grace = sender_grace or time.monotonic() + 2.0
                    if time.monotonic() > sender_grace:
                        break
            return False
        finally:
            for wait in waits:
                wait.cancel()
            # finish() reports a consumer's failure; this keeps asyncio from logging it again.
            all_done.add_done_callback(lambda f: f.cancelled() or f.exception())

    def show_rates(self, rate: _cli.Rate) -> None:
        assert self.status is not None
        counts = stat_totals(self.receivers, self.totals)
        self.status.show(live_text(time.monotonic() - self.start, rate.sample(counts), counts))

    # ---- the end

    async def finish(self, interrupted: bool) -> None:
        """Stops the streams, waits for their consumers, prints the last rate line and the summary."""
        for receiver in self.receivers:
            receiver.stream.stop()
        if self.sender is not None:
            self.sender.cancel()
        try:
            await asyncio.wait_for(asyncio.gather(*self.tasks, return_exceptions=True), 10)
        except asyncio.TimeoutError:
            _logger.warning("some streams did not finish after stop()")
        elapsed = time.monotonic() - self.start
        if self.sender is not None:
            # The stop heap can reach the receiver before the sender's thread counts it as sent.
            await asyncio.to_thread(self.sender.join, 5)
        self.show_average(elapsed)
        self.printer.write(self.summary(elapsed, interrupted))
        for task in self.tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise ToolError(f"receiving failed: {task.exception()}")

    def show_average(self, elapsed: float) -> None:
        if self.status is None:
            return
        # The last line gives the averages over the whole run.
        counts = stat_totals(self.receivers, self.totals)
        averages = {key: value / max(elapsed, 1e-9) for key, value in counts.items()}
        self.status.clear()
        self.status.show(live_text(elapsed, averages, counts) + " (average)")
        self.status.finish()

    def summary(self, elapsed: float, interrupted: bool) -> list[str]:
        if isinstance(self.printer, ReferencePrinter):
            return [
                line
                for r in self.receivers
                for line in ReferencePrinter.stream_end(r.label, r.count, r.stream.stats)
            ]
        lines = summary_lines(self.receivers, self.totals, elapsed)
        if interrupted:
            lines.insert(1, "Stopped by signal.")
        if self.sender is not None:
            data_sent = min(self.sender.heaps_sent, self.args.demo_heaps)
            stop_sent = " and a stop heap" if self.sender.heaps_sent > self.args.demo_heaps else ""
            lines.append(f"Demo: {data_sent} data heaps{stop_sent} sent, {self.totals.heaps} received.")
        return lines

    def teardown(self) -> None:
        for receiver in self.receivers:
            receiver.stream.stop()
        if self.sender is not None:
            self.sender.cancel()
            self.sender.join(5)
        if self.thread_pool is not None:
            self.thread_pool.stop()


async def run(args: argparse.Namespace, stop: asyncio.Event) -> int:
    status = None if args.no_live else _cli.StatusLine(sys.stderr)
    _cli.setup_logging(args.log, status)
    interval = args.interval or (0.5 if status is not None and status.tty else 2.0)
    session = Session(args, status)
    try:
        session.setup()
        session.announce_and_start()
        interrupted = await session.poll(stop, interval)
        await session.finish(interrupted)
        return 0
    finally:
        session.teardown()


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    args = parse_args(argv, prog)
    try:
        return _cli.run(lambda stop: run(args, stop), use_uvloop=not args.no_uvloop)
    except ToolError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # e.g. spead2_recv ... | head: the reader went away; nothing more can be printed.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


def reference_main(argv: Sequence[str] | None = None) -> int:
    """``spead2_recv.py``: the reference's name, printing the reference's lines by default."""
    return main(argv, REFERENCE_PROG)


if __name__ == "__main__":
    sys.exit(main())
