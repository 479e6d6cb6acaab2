"""spead2_bench (also ``spead2_bench.py``, ``python -m spead2.bench``): the reference's network
benchmark, a master and an agent that find the highest rate a UDP link sustains.

``spead2_bench agent PORT`` waits on TCP ``PORT`` (IPv4 and IPv6) for a master.  The master
(``spead2_bench master HOST:PORT``) connects once per measurement and speaks the reference's
control protocol, one JSON object per line:

* master: ``{"cmd": "start", "args": {...}, "protocol": {...}, "receiver": {...}}`` (its own
  options, the protocol options and the receiver's options); the agent opens a stream on UDP
  ``PORT`` (bound to the host the master sends to, or joined to ``--multicast``) and answers
  ``ready``;
* the master sends heaps at the rate under test, then ``{"cmd": "stop"}``; the agent stops the
  stream and answers ``{"received_heaps": N}``.

So this master drives a reference agent and a reference master drives this agent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

import spead2
import spead2.recv
import spead2.recv.asyncio
from spead2.tools import _cli
from spead2.tools._cli import ToolError

_logger = logging.getLogger("spead2")

PROG = "spead2_bench"
REFERENCE_PROG = "spead2_bench.py"
MAX_LINE = 1 << 20  # a start command is ~1 KB; anything near this is not a master


# ---------------------------------------------------------------- arguments


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = _cli.Parser(prog=prog, description="Network benchmark: a master sends, an agent receives.")
    parser.add_argument("--log", metavar="LEVEL", default="INFO", help="log level [%(default)s]")
    commands = parser.add_subparsers(title="subcommands", dest="command", required=True)
    agent = commands.add_parser("agent", help="receive for a master")
    agent.add_argument("port", type=_port, help="TCP port for the master, and UDP port for its data")
    master = commands.add_parser("master", help="find the highest rate an agent receives losslessly")
    add_master_options(master)
    return parser


def _port(text: str) -> int:
    port = _cli.positive_int(text)
    if port > 65535:
        raise argparse.ArgumentTypeError(f"port out of range (1-65535): {text!r}")
    return port


def add_master_options(parser: argparse.ArgumentParser) -> None:
    from spead2.tools import _benchmaster

    _benchmaster.add_options(parser)


def parse_args(argv: Sequence[str] | None, prog: str = PROG) -> argparse.Namespace:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    args.prog = prog
    if args.command == "master":
        from spead2.tools import _benchmaster

        _benchmaster.check_args(parser, args)
    return args


# ---------------------------------------------------------------- agent


def stream_config(receiver: dict[str, Any], protocol: dict[str, Any]) -> spead2.recv.StreamConfig:
    config = spead2.recv.StreamConfig(
        max_heaps=int(receiver.get("concurrent_heaps") or spead2.recv.StreamConfig.DEFAULT_MAX_HEAPS),
        substreams=int(receiver.get("substreams") or 1),
        bug_compat=spead2.BUG_COMPAT_PYSPEAD_0_5_2 if protocol.get("pyspead") else 0,
        memcpy=spead2.MEMCPY_NONTEMPORAL if receiver.get("memcpy_nt") else spead2.MEMCPY_STD,
    )
    if receiver.get("mem_pool"):
        config.memory_allocator = spead2.MemoryPool(
            int(receiver.get("mem_lower", 16384)),
            int(receiver.get("mem_upper", 32 * 1024 * 1024)),
            int(receiver.get("mem_max_free", 12)),
            int(receiver.get("mem_initial", 8)),
        )
    return config


def split_endpoint(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"endpoint is not HOST:PORT: {text!r}")
    return host.strip("[]"), int(port)


class Measurement:
    """The agent's side of one measurement: a stream on the data port and a task counting heaps."""

    def __init__(self, command: dict[str, Any], port: int) -> None:
        args = command.get("args") or {}
        protocol = command.get("protocol") or {}
        receiver = command.get("receiver") or {}
        ring = spead2.recv.RingStreamConfig(heaps=int(receiver.get("ring_heaps") or 4))
        self.stream = spead2.recv.asyncio.Stream(None, stream_config(receiver, protocol), ring)
        self.received = 0
        try:
            self._add_reader(args, protocol, receiver, port)
        except Exception:
            self.stream.stop()
            raise
        self.task = asyncio.ensure_future(self._count())

    def _add_reader(
        self, args: dict[str, Any], protocol: dict[str, Any], receiver: dict[str, Any], port: int
    ) -> None:
        cls = spead2.recv.asyncio.Stream
        max_size = int(receiver.get("packet") or cls.DEFAULT_UDP_MAX_SIZE)
        buffer_size = int(receiver.get("buffer") or cls.DEFAULT_UDP_BUFFER_SIZE)
        bind = receiver.get("bind") or ""
        if protocol.get("tcp"):
            self.stream.add_tcp_reader(port, max_size, buffer_size, bind)
        elif args.get("multicast"):
            self.stream.add_udp_reader(args["multicast"], port, max_size, buffer_size, bind or "0.0.0.0")
        else:
            host, _ = split_endpoint(str(args.get("endpoint", "")))
            self.stream.add_udp_reader(port, max_size, buffer_size, bind or host)

    async def _count(self) -> None:
        async for _heap in self.stream:
            self.received += 1

    async def stop(self) -> int:
        self.stream.stop()
        try:
            await asyncio.wait_for(self.task, 10)
        except asyncio.TimeoutError:
            _logger.warning("the benchmark stream did not finish after stop()")
        return self.received


class Agent:
    """Serves masters one connection at a time (a new connection ends the previous measurement)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.measurement: Measurement | None = None

    async def serve(self, stop: asyncio.Event) -> None:
        server = await asyncio.start_server(self.handle, None, self.port, limit=MAX_LINE)
        _logger.info("agent waiting for a master on port %d", self.port)
        async with server:
            await stop.wait()
        await self.end_measurement()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            while line := await reader.readline():
                reply = await self.command(line)
                if reply is None:
                    break
                writer.write(reply.encode() + b"\n")
                await writer.drain()
        except (ConnectionError, ValueError, asyncio.LimitOverrunError) as exc:
            _logger.warning("master %s: connection dropped: %s", peer, exc)
        finally:
            writer.close()

    async def command(self, line: bytes) -> str | None:
        """The reply to one line of the protocol, or None to close the connection."""
        try:
            command = json.loads(line)
            cmd = command["cmd"]
        except (ValueError, KeyError, TypeError):
            _logger.warning("not a benchmark command, closing the connection: %.80r", line)
            return None
        if cmd == "start":
            await self.end_measurement()
            try:
                self.measurement = Measurement(command, self.port)
            except (OSError, ValueError, TypeError) as exc:
                _logger.error("cannot start the measurement: %s", exc)
                return None
            return "ready"
        if cmd == "stop":
            return json.dumps({"received_heaps": await self.end_measurement()})
        if cmd == "exit":  # the reference's way to end a connection: its measurement ends too
            await self.end_measurement()
            return None
        _logger.warning("unknown benchmark command %r, closing the connection", cmd)
        return None

    async def end_measurement(self) -> int:
        measurement, self.measurement = self.measurement, None
        return 0 if measurement is None else await measurement.stop()


# ---------------------------------------------------------------- main


async def run(args: argparse.Namespace, stop: asyncio.Event) -> int:
    if args.command == "agent":
        try:
            await Agent(args.port).serve(stop)
        except OSError as exc:
            raise ToolError(f"cannot listen on port {args.port}: {exc.strerror or exc}") from None
        return 0
    from spead2.tools import _benchmaster

    return await _benchmaster.run(args, stop)


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    args = parse_args(argv, prog)
    logging.basicConfig(level=getattr(logging, str(args.log).upper(), logging.INFO), force=True)
    try:
        return _cli.run(lambda stop: run(args, stop))
    except ToolError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def reference_main(argv: Sequence[str] | None = None) -> int:
    """``spead2_bench.py``: the reference's name for the same tool."""
    return main(argv, REFERENCE_PROG)


if __name__ == "__main__":
    sys.exit(main())
