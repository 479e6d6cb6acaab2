"""spead2_send: sends a stream of heaps of meaningless data (zeros), with the reference's options.

    spead2_send 127.0.0.1:8888 --heaps 100 --heap-size 1048576 --rate 1

Each data heap has ``--items`` items of ``--dtype`` sharing ``--heap-size`` bytes; descriptors
go with the first heap on each substream (and every ``--descriptors`` heaps), and when
``--heaps`` is given an end-of-stream heap follows on each destination.  Without ``--heaps`` it
sends until Ctrl-C.  On exit it prints the reference's summary line (``Sent N bytes in T s, R
Gb/s``); while it runs, a progress line goes to stderr when that is a terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

import spead2
import spead2.send
import spead2.send.asyncio
from spead2.tools import _cli, _sending
from spead2.tools._benchmaster import split_endpoint

_logger = logging.getLogger("spead2")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = _cli.Parser(prog="spead2_send", description="Generate and send SPEAD heaps.")
    parser.add_argument("destination", nargs="+", metavar="HOST:PORT")
    data = parser.add_argument_group("Data options")
    data.add_argument(
        "--heap-size",
        type=_cli.positive_int,
        default=4194304,
        metavar="BYTES",
        help="payload size for heap [%(default)s]",
    )
    data.add_argument(
        "--items", type=_cli.positive_int, default=1, help="number of items per heap [%(default)s]"
    )
    data.add_argument("--dtype", default="<c8", help="numpy data type [%(default)s]")
    data.add_argument("--heaps", type=_cli.non_negative_int, help="number of data heaps to send [infinite]")
    output = parser.add_argument_group("Output options")
    _cli.add_log_option(output)
    protocol = parser.add_argument_group("Protocol and performance options")
    protocol.add_argument("--tcp", action="store_true", help="use TCP instead of UDP")
    protocol.add_argument("--pyspead", action="store_true", help="be bug-compatible with PySPEAD")
    protocol.add_argument("--addr-bits", type=int, default=40, help="heap address bits [%(default)s]")
    protocol.add_argument(
        "--packet", type=_cli.positive_int, default=1472, help="maximum packet size to send [%(default)s]"
    )
    protocol.add_argument(
        "--burst", type=_cli.non_negative_int, default=65536, metavar="BYTES", help="burst size [%(default)s]"
    )
    protocol.add_argument(
        "--burst-rate-ratio",
        type=float,
        default=1.05,
        metavar="RATIO",
        help="hard rate limit, relative to --rate [%(default)s]",
    )
    protocol.add_argument(
        "--max-heaps",
        type=_cli.positive_int,
        default=4,
        metavar="HEAPS",
        help="maximum heaps in flight [%(default)s]",
    )
    protocol.add_argument(
        "--rate-method",
        type=str.upper,
        choices=["SW", "HW", "AUTO"],
        default="AUTO",
        metavar="METHOD",
        help="method for rate limiting (SW/HW/AUTO)",
    )
    protocol.add_argument(
        "--rate", type=float, default=0.0, metavar="Gb/s", help="transmission rate bound [no limit]"
    )
    protocol.add_argument("--ttl", type=int, help="TTL for multicast target")
    protocol.add_argument("--buffer", type=_cli.positive_int, help="socket buffer size")
    protocol.add_argument("--bind", default="", help="interface address")
    _cli.add_ibv_options(protocol)
    protocol.add_argument("--affinity", type=_cli.cpu_list, default=[], help="list of CPUs to pin threads to")
    protocol.add_argument("--threads", type=_cli.positive_int, default=1, help="number of worker threads [1]")
    protocol.add_argument(
        "--descriptors", type=_cli.positive_int, help="description issue frequency [only at start]"
    )
    args = parser.parse_args(argv)
    if args.ibv:
        parser.error(_cli.NO_IBV)
    try:
        args.destination = [split_endpoint(text) for text in args.destination]
    except ValueError as exc:
        parser.error(str(exc))
    if args.tcp and len(args.destination) > 1:
        parser.error("only one destination is supported with TCP")
    if not args.rate >= 0:
        parser.error("--rate must not be negative")
    return args  # fmt: skip


def make_group(args: argparse.Namespace) -> spead2.send.ItemGroup:
    dtype = np.dtype(args.dtype)
    elements = args.heap_size // (args.items * dtype.itemsize)
    if elements * args.items * dtype.itemsize != args.heap_size:
        _logger.warning(
            "Heap size is not an exact multiple: using %d instead of %d",
            elements * args.items * dtype.itemsize,
            args.heap_size,
        )
    bug_compat = spead2.BUG_COMPAT_PYSPEAD_0_5_2 if args.pyspead else 0
    group = spead2.send.ItemGroup(
        descriptor_frequency=args.descriptors, flavour=spead2.Flavour(4, 64, args.addr_bits, bug_compat)
    )
    for i in range(args.items):
        group.add_item(
            None,
            f"Test item {i}",
            "A test item with arbitrary value",
            (elements,),
            dtype,
            value=np.zeros(elements, dtype),
        )
    return group


async def make_stream(args: argparse.Namespace, pool: spead2.ThreadPool) -> Any:
    config = _sending.stream_config(
        packet=args.packet,
        rate=args.rate * 1e9 / 8,
        burst=args.burst,
        max_heaps=args.max_heaps,
        burst_rate_ratio=args.burst_rate_ratio,
        rate_method=args.rate_method,
    )
    if args.tcp:
        buffer = args.buffer or spead2.send.asyncio.TcpStream.DEFAULT_BUFFER_SIZE
        return await spead2.send.asyncio.TcpStream.connect(pool, args.destination, config, buffer, args.bind)
    return _sending.udp_stream(pool, args.destination, config, args.buffer, args.ttl, args.bind)


class Counts:
    def __init__(self) -> None:
        self.bytes = 0
        self.heaps = 0
        self.errors = 0
        self.last_error: BaseException | None = None

    async def collect(self, future: asyncio.Future[int]) -> None:
        try:
            self.bytes += await future
            self.heaps += 1
        except OSError as exc:
            self.errors += 1
            self.last_error = exc


async def send_all(
    args: argparse.Namespace, group: spead2.send.ItemGroup, stream: Any, stop: asyncio.Event, counts: Counts
) -> None:
    """Data heaps (forever without --heaps, or until stop), then an end heap per destination."""
    n = stream.num_substreams
    data = itertools.count() if args.heaps is None else range(args.heaps)
    in_flight: collections.deque[asyncio.Future[int]] = collections.deque()
    for i in data:
        if stop.is_set():
            break
        if len(in_flight) >= args.max_heaps:
            await counts.collect(in_flight.popleft())
        heap = group.get_heap(descriptors="all" if i < n else "stale", data="all")
        in_flight.append(stream.async_send_heap(heap, substream_index=i % n))
    while in_flight:
        await counts.collect(in_flight.popleft())
    if args.heaps is not None:
        for index in range(n):
            await counts.collect(stream.async_send_heap(group.get_end(), substream_index=index))


async def report(counts: Counts, start: float, status: _cli.StatusLine) -> None:
    while True:
        await asyncio.sleep(1.0)
        elapsed = time.monotonic() - start
        status.show(
            f"{counts.heaps} heaps, {_cli.size(counts.bytes)}, {counts.bytes * 8 / elapsed / 1e9:.3f} Gb/s"
        )


async def run(args: argparse.Namespace, stop: asyncio.Event) -> int:
    status = _cli.StatusLine()
    _cli.setup_logging(args.log, status)
    group = make_group(args)
    pool = spead2.ThreadPool(args.threads, args.affinity)
    try:
        stream = await make_stream(args, pool)
    except (OSError, ValueError) as exc:
        raise _cli.ToolError(f"cannot open the stream: {exc}") from None
    counts = Counts()
    start = time.monotonic()
    progress = asyncio.ensure_future(report(counts, start, status)) if status.tty else None
    try:
        await send_all(args, group, stream, stop, counts)
    finally:
        if progress is not None:
            progress.cancel()
        status.finish()
        pool.stop()
    elapsed = time.monotonic() - start
    if counts.last_error is not None:
        _logger.warning("%d errors, last one: %s", counts.errors, counts.last_error)
    print(f"Sent {counts.bytes} bytes in {elapsed:.6f}s, {counts.bytes * 8 / elapsed / 1e9:.6f} Gb/s")
    return 1 if counts.errors else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return _cli.run(lambda stop: run(args, stop))
    except _cli.ToolError as exc:
        print(f"spead2_send: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
