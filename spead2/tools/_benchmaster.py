"""The master of ``spead2_bench``: its options (the reference's), one measurement, and the search
for the highest rate that the agent receives without loss.

A measurement: connect to the agent, send ``start`` (the same JSON fields as the reference's
master, so a reference agent configures itself from them), wait for ``ready``, send the heaps at
the rate under test and an end-of-stream heap, give the agent 0.1 s to catch up, send ``stop``
and read ``received_heaps``.  The search is the reference's: a warm-up measurement, then every
rate measured ``PASSES`` times (good only if every pass lost at most one heap; its rate is the
average the sender achieved).  If the agent keeps up with the unlimited sender the search ends
there (limited by send speed); otherwise it bisects between 0 and the send rate until the
interval is under ``PRECISION`` of its top.  The result is the achieved rate of the last good
measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

import spead2
import spead2.send
from spead2.tools import _cli, _sending
from spead2.tools._cli import ToolError

MEASURE_BYTES = 10**9  # heap payload per measurement (and a second's worth at least), as the reference's
PRECISION = 0.02  # the search stops when it brackets the rate within 2 %
PASSES = 5  # measurements per rate
SETTLE = 0.1  # seconds between the last heap and stop, for the agent to catch up
DEFAULT_PACKET = 9200
DEFAULT_RECV_BUFFER = 8 * 1024 * 1024


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("endpoint", metavar="HOST:PORT")
    parser.add_argument("--quiet", action="store_true", help="print only the final result")
    parser.add_argument("--heap-size", type=_cli.positive_int, default=4194304, metavar="BYTES",
                        help="payload size for heap [%(default)s]")  # fmt: skip
    parser.add_argument("--multicast", metavar="ADDRESS", help="send via multicast group [unicast]")
    parser.add_argument("--pyspead", action="store_true", help="be bug-compatible with PySPEAD")
    # Ours, for quick runs (tests): payload per measurement, and when the search stops.
    parser.add_argument(
        "--measure-bytes", type=_cli.positive_int, default=MEASURE_BYTES, help=argparse.SUPPRESS
    )
    parser.add_argument("--precision", type=_cli.positive_float, default=PRECISION, help=argparse.SUPPRESS)
    parser.add_argument("--passes", type=_cli.positive_int, default=PASSES, help=argparse.SUPPRESS)
    sender = parser.add_argument_group("sender options")
    sender.add_argument("--addr-bits", type=int, default=40, help="heap address bits [%(default)s]")
    sender.add_argument("--burst", type=_cli.positive_int, default=65536, metavar="BYTES", help="burst size")
    sender.add_argument("--burst-rate-ratio", type=float, default=1.05, metavar="RATIO",
                        help="hard rate limit, relative to the rate [%(default)s]")  # fmt: skip
    sender.add_argument("--max-heaps", type=_cli.positive_int, default=4, metavar="HEAPS",
                        help="maximum heaps in flight [%(default)s]")  # fmt: skip
    sender.add_argument("--rate-method", default="AUTO", metavar="METHOD", choices=["SW", "HW", "AUTO"],
                        help="method for rate limiting (SW/HW/AUTO)")  # fmt: skip
    sender.add_argument("--ttl", type=int, help="TTL for multicast target")
    sender.add_argument("--send-buffer", type=_cli.positive_int, help="socket buffer size")
    sender.add_argument("--send-bind", help="interface address")
    _cli.add_ibv_options(sender, "send-")
    sender.add_argument("--send-affinity", dest="send-affinity", type=_cli.cpu_list, metavar="SEND-AFFINITY",
                        help="list of CPUs to pin threads to [no affinity]")  # fmt: skip
    sender.add_argument("--send-threads", dest="send-threads", type=_cli.positive_int, default=1,
                        metavar="SEND-THREADS", help="number of worker threads [1]")  # fmt: skip
    receiver = parser.add_argument_group("receiver options")
    receiver.add_argument("--memcpy-nt", action="store_true", help="use non-temporal memcpy")
    receiver.add_argument("--concurrent-heaps", type=_cli.positive_int, default=4,
                          help="maximum number of in-flight heaps per substream [%(default)s]")  # fmt: skip
    receiver.add_argument("--substreams", type=_cli.positive_int, default=1, help="parallel substreams [1]")
    receiver.add_argument("--ring-heaps", type=_cli.positive_int, default=4, help="ring buffer capacity [4]")
    receiver.add_argument(
        "--mem-max-free", type=_cli.positive_int, default=12, help="maximum free buffers [12]"
    )
    receiver.add_argument(
        "--mem-initial", type=_cli.non_negative_int, default=8, help="initial free buffers [8]"
    )
    receiver.add_argument("--packet", type=_cli.positive_int, help=f"maximum packet size [{DEFAULT_PACKET}]")
    receiver.add_argument("--recv-buffer", type=_cli.positive_int, help="socket buffer size")
    receiver.add_argument("--recv-bind", help="interface address")
    _cli.add_ibv_options(receiver, "recv-")
    receiver.add_argument("--recv-affinity", dest="recv-affinity", type=_cli.cpu_list,
                          metavar="RECV-AFFINITY", help="CPUs to pin threads to [no affinity]")  # fmt: skip
    receiver.add_argument("--recv-threads", dest="recv-threads", type=_cli.positive_int, default=1,
                          metavar="RECV-THREADS", help="number of worker threads [1]")  # fmt: skip


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.send_ibv or args.recv_ibv:
        parser.error(_cli.NO_IBV)
    try:
        host, port = split_endpoint(args.endpoint)
    except ValueError as exc:
        parser.error(str(exc))
    args.host, args.port = host, port


def split_endpoint(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not HOST:PORT: {text!r}")
    return host.strip("[]"), int(port)


def start_command(args: argparse.Namespace) -> dict[str, Any]:
    """The ``start`` command, with the fields (and defaults) that the reference's master sends."""
    skip = {"command", "prog", "host", "port", "log", "measure_bytes", "precision", "passes"}
    master = {key: value for key, value in vars(args).items() if key not in skip}
    master["log"] = args.log
    receiver = {
        "buffer": args.recv_buffer or DEFAULT_RECV_BUFFER,
        "bind": args.recv_bind,
        "ibv": False,
        "ibv_vector": args.recv_ibv_vector,
        "threads": getattr(args, "recv-threads"),
        "affinity": getattr(args, "recv-affinity"),
        "memcpy_nt": args.memcpy_nt,
        "concurrent_heaps": args.concurrent_heaps,
        "substreams": args.substreams,
        "ring_heaps": args.ring_heaps,
        "mem_pool": True,
        "mem_lower": args.heap_size,
        "mem_upper": args.heap_size + 1024,
        "mem_max_free": args.mem_max_free,
        "mem_initial": args.mem_initial,
        "packet": args.packet or DEFAULT_PACKET,
        "ibv_max_poll": args.recv_ibv_max_poll,
    }
    protocol = {"tcp": False, "pyspead": args.pyspead}
    return {"cmd": "start", "args": master, "protocol": protocol, "receiver": receiver}


@dataclass
class Result:
    good: bool
    actual: float  # bytes per second achieved by the sender (SPEAD headers included)


class Master:
    """Runs measurements against one agent."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        flavour = spead2.Flavour(
            4, 64, args.addr_bits, spead2.BUG_COMPAT_PYSPEAD_0_5_2 if args.pyspead else 0
        )
        self.item_group = spead2.send.ItemGroup(flavour=flavour)
        self.item_group.add_item(0x1000, "Test item", "A test item with arbitrary value", (args.heap_size,),
                                 dtype=np.uint8, value=np.zeros(args.heap_size, np.uint8))  # fmt: skip
        self.thread_pool = spead2.ThreadPool(
            getattr(args, "send-threads"), getattr(args, "send-affinity") or []
        )

    def n_heaps(self, rate: float) -> int:
        """Heaps for a measurement at ``rate``: ``--measure-bytes`` of them, and at the reference's
        default a second's worth at least (the option scales both)."""
        volume = max(self.args.measure_bytes, rate * self.args.measure_bytes / MEASURE_BYTES)
        return int(volume / self.args.heap_size) + 2

    async def measure(self, rate: float, n_heaps: int, required: int) -> Result:
        """One measurement at ``rate`` bytes/s (0: as fast as the sender goes)."""
        reader, writer = await self._connect()
        try:
            await self._exchange(reader, writer, start_command(self.args), b"ready")
            sent, elapsed = await self._send_heaps(rate, n_heaps)
            await asyncio.sleep(SETTLE)
            reply = await self._exchange(reader, writer, {"cmd": "stop"}, None)
        finally:
            writer.close()
        try:
            received = int(json.loads(reply)["received_heaps"])
        except (ValueError, KeyError, TypeError):
            raise ToolError(f"the agent's reply to stop is not understood: {reply[:80]!r}") from None
        return Result(received >= required, sent / max(elapsed, 1e-9))

    async def measure_passes(self, rate: float) -> Result:
        """``--passes`` measurements at ``rate``: good if all were, at their average rate."""
        n_heaps = self.n_heaps(rate)
        results = [await self.measure(rate, n_heaps, n_heaps - 1) for _ in range(self.args.passes)]
        return Result(all(r.good for r in results), sum(r.actual for r in results) / len(results))

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.wait_for(asyncio.open_connection(self.args.host, self.args.port), 30)
        except (OSError, asyncio.TimeoutError) as exc:
            raise ToolError(f"cannot reach the agent at {self.args.endpoint}: {exc}") from None

    async def _exchange(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        command: dict[str, Any],
        expect: bytes | None,
    ) -> bytes:
        writer.write(json.dumps(command).encode() + b"\n")
        await writer.drain()
        try:
            line = (await asyncio.wait_for(reader.readline(), 60)).strip()
        except asyncio.TimeoutError:
            raise ToolError(f"no answer from the agent to {command['cmd']}") from None
        if not line or (expect is not None and line != expect):
            raise ToolError(f"the agent answered {command['cmd']} with {line[:80]!r}")
        return line

    def _stream(self, rate: float) -> Any:
        args = self.args
        config = _sending.stream_config(
            packet=args.packet or DEFAULT_PACKET,
            rate=rate * 1.0,
            burst=args.burst,
            max_heaps=args.max_heaps,
            burst_rate_ratio=args.burst_rate_ratio,
            rate_method=args.rate_method,
        )
        ttl = args.ttl if args.multicast else None
        target = [(args.multicast or args.host, args.port)]
        return _sending.udp_stream(self.thread_pool, target, config, args.send_buffer, ttl, args.send_bind)

    async def _send_heaps(self, rate: float, n_heaps: int) -> tuple[int, float]:
        """Sends ``n_heaps`` heaps and an end-of-stream heap: the bytes sent, and the seconds."""
        stream = self._stream(rate)
        first = self.item_group.get_heap(descriptors="all", data="all")  # each measurement's stream is new
        rest = self.item_group.get_heap(descriptors="none", data="all")
        heaps = itertools.chain([first], itertools.repeat(rest, n_heaps - 1), [self.item_group.get_end()])
        start = time.monotonic()
        sent = 0
        pending: list[asyncio.Future[int]] = []
        for heap in heaps:
            if len(pending) >= self.args.max_heaps:
                sent += await pending.pop(0)
            pending.append(stream.async_send_heap(heap))
        sent += sum(await asyncio.gather(*pending))
        return sent, time.monotonic() - start


def gbps(bytes_per_second: float) -> str:
    return f"{bytes_per_second * 8e-9:.3f}"


async def search(master: Master, args: argparse.Namespace, stop: asyncio.Event) -> float:
    """The highest rate the agent keeps up with (bytes/s achieved), printing as the reference."""
    await master.measure(0.0, master.n_heaps(0.0), 0)  # warm-up, for the receiver
    unlimited = await master.measure_passes(0.0)
    if unlimited.good:
        if not args.quiet:
            print("Limited by send speed", flush=True)
        return unlimited.actual
    print(f"Send rate: {gbps(unlimited.actual)} Gbps", flush=True)  # with --quiet too, as the reference
    best, low, high = 0.0, 0.0, unlimited.actual
    while high - low > high * args.precision and not stop.is_set():
        rate = (low + high) / 2
        result = await master.measure_passes(rate)
        if not args.quiet:
            verdict = "GOOD" if result.good else "BAD"
            print(f"Rate: {gbps(rate)} Gbps ({gbps(result.actual)} actual): {verdict}", flush=True)
        if result.good:
            best, low = result.actual, rate
        else:
            high = rate
    return best


async def run(args: argparse.Namespace, stop: asyncio.Event) -> int:
    master = Master(args)
    try:
        best = await search(master, args, stop)
        print(best * 8e-9 if args.quiet else f"Sustainable rate: {gbps(best)} Gbps", flush=True)
        return 0
    finally:
        master.thread_pool.stop()
