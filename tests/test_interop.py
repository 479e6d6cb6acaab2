"""Interop with the reference: the real spead2 (from PyPI, in a venv of its own) sends, our
receiver decodes -- UDP unicast (IPv4, IPv6), IPv4 multicast on loopback, TCP; many item types and
heap sizes (one packet to 2 MiB); several heaps in flight; substreams.  The same sender script
(written against the reference's public send API) also runs under our own interpreter: our send
side, checked by the same expectations.

The reference's venv is created once and cached (tests/interop/refvenv.py).  When it cannot be
installed these tests skip, saying why.  UDP on loopback only loses datagrams when the socket
buffer overflows (a busy machine): a run is repeated, at a lower rate, only when the kernel's
RcvbufErrors counter says that happened.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

import spead2
import spead2.recv
import spead2.recv.asyncio

sys.path.insert(0, str(Path(__file__).parent / "interop"))
import refvenv
import scenarios

pytestmark = pytest.mark.interop

SENDER = Path(__file__).parent / "interop" / "sender.py"
LOCALHOST = "127.0.0.1"
HEAPS = 9  # every entry of scenarios.PLAN, and one more
RATE = 16e6  # bytes/s: gentle, so that a small net.core.rmem_max still holds the bursts
ATTEMPTS = 3


CHECKOUT = str(Path(__file__).resolve().parents[1])


@pytest.fixture(params=["reference", "ours"])
def sender(request: pytest.FixtureRequest) -> Path | None:
    """Which send side runs sender.py: the reference's interpreter, or None for our own."""
    if request.param == "ours":
        return None
    python: Path = request.getfixturevalue("reference")
    return python


def sender_command(python: Path | None, settings: dict[str, Any]) -> list[str]:
    if python is None:
        return [sys.executable, str(SENDER), json.dumps(settings)]
    return refvenv.command(python, str(SENDER), json.dumps(settings))


def check_sender(
    python: Path | None, proc: subprocess.CompletedProcess[str] | Any, stdout: str, stderr: str
) -> None:
    assert proc.returncode == 0, f"the sender failed:\n{stderr}"
    report = json.loads(stdout.strip().splitlines()[-1])
    if python is None:
        assert report["file"].startswith(CHECKOUT), report["file"]
    else:
        assert report["version"] == refvenv.VERSION
        assert not report["file"].startswith(CHECKOUT)


# ---- what was sent ----


def check_heap(group: spead2.ItemGroup, heap: Any, index: int) -> None:
    assert isinstance(heap, spead2.recv.Heap), f"heap {heap.cnt} is incomplete"
    scenarios.check_update(group.update(heap), index)


def check_serial(heaps: list[Any], n: int = HEAPS) -> None:
    """Heaps in order, decoded with one ItemGroup (descriptors and values were sent once)."""
    assert [h.cnt for h in heaps] == list(range(1, n + 1))
    group = spead2.ItemGroup()
    for index, heap in enumerate(heaps):
        check_heap(group, heap, index)


def check_self_contained(heaps: list[Any], n: int = HEAPS) -> None:
    """Every heap once, in any order (interleaved senders), each decoded on its own."""
    assert sorted(h.cnt for h in heaps) == list(range(1, n + 1))
    for heap in heaps:
        check_heap(spead2.ItemGroup(), heap, heap.cnt - 1)


# ---- losses the kernel reports ----


def rcvbuf_errors() -> int:
    total = 0
    try:
        with open("/proc/net/snmp") as f:
            rows = [line.split() for line in f if line.startswith("Udp:")]
        if len(rows) == 2:
            total += int(dict(zip(rows[0][1:], rows[1][1:], strict=True)).get("RcvbufErrors", 0))
        with open("/proc/net/snmp6") as f:
            for line in f:
                name, _, count = line.partition(" ")
                if name == "Udp6RcvbufErrors":
                    total += int(count)
    except OSError:
        return 0
    return total


class Run:
    """One attempt: the settings for the sender, and how to receive."""

    def __init__(self, transport: str, mode: str = "serial", packet_size: int = 1472, **extra: Any) -> None:
        self.settings: dict[str, Any] = {
            "transport": transport,
            "heaps": HEAPS,
            "mode": mode,
            "packet_size": packet_size,
            "rate": RATE if transport != "tcp" else 0,
            "end": True,
            **extra,
        }
        self.config = spead2.recv.StreamConfig(
            max_heaps=8 if mode == "inflight" else 4,
            substreams=2 if mode == "substreams" else 1,
        )
        self.ring = spead2.recv.RingStreamConfig(heaps=8, contiguous_only=False)
        self.check = check_serial if mode == "serial" else check_self_contained


def add_reader(stream: Any, run: Run) -> None:
    settings = run.settings
    transport = settings["transport"]
    for _ in range(20):  # a free port (retried if taken meanwhile)
        family = socket.AF_INET6 if settings["host"] == "::1" else socket.AF_INET
        kind = socket.SOCK_STREAM if transport == "tcp" else socket.SOCK_DGRAM
        with socket.socket(family, kind) as probe:
            probe.bind(("::1" if family == socket.AF_INET6 else LOCALHOST, 0))
            port = probe.getsockname()[1]
        try:
            if transport == "tcp":
                stream.add_tcp_reader(port, bind_hostname=settings["host"])
            elif transport == "mcast":
                stream.add_udp_reader(settings["host"], port, interface_address=LOCALHOST)
            else:
                stream.add_udp_reader(port, bind_hostname=settings["host"])
        except OSError:
            continue
        settings["port"] = port
        return
    raise AssertionError("no free port")


def attempts(run: Run) -> Any:
    """Yields for each attempt; stops once one succeeds, or when a failure is not a UDP loss."""
    for attempt in range(ATTEMPTS):
        before = rcvbuf_errors()
        try:
            yield attempt
            return
        except AssertionError:
            lost = rcvbuf_errors() - before
            if run.settings["transport"] == "tcp" or lost == 0 or attempt == ATTEMPTS - 1:
                raise
            run.settings["rate"] /= 4  # the machine is busy: slower


def receive_blocking(python: Path | None, thread_pool: spead2.ThreadPool, run: Run) -> None:
    for _ in attempts(run):
        stream = spead2.recv.Stream(thread_pool, run.config, run.ring)
        add_reader(stream, run)
        with subprocess.Popen(
            sender_command(python, run.settings),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tempfile.gettempdir(),
            env=refvenv.clean_env(),
        ) as proc:
            heaps = list(stream)  # the end-of-stream heap (or the TCP close) stops the stream
            stdout, stderr = proc.communicate(timeout=120)
        stream.stop()
        check_sender(python, proc, stdout, stderr)
        run.check(heaps)
        stats = stream.stats
        assert stats["incomplete_heaps_evicted"] == stats["incomplete_heaps_flushed"] == 0


async def receive_asyncio(python: Path | None, run: Run) -> None:
    for _ in attempts(run):
        stream = spead2.recv.asyncio.Stream(None, run.config, run.ring)
        add_reader(stream, run)
        proc = await asyncio.create_subprocess_exec(
            *sender_command(python, run.settings),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=tempfile.gettempdir(),
            env=refvenv.clean_env(),
        )
        communicate = asyncio.ensure_future(proc.communicate())
        heaps = [heap async for heap in stream]
        stdout, stderr = await asyncio.wait_for(communicate, 120)
        stream.stop()
        check_sender(python, proc, stdout.decode(), stderr.decode())
        run.check(heaps)


def random_group() -> str:
    return f"239.255.{random.randrange(256)}.{random.randrange(1, 255)}"


# ---- UDP ----


@pytest.mark.parametrize("packet_size", [1472, 9000])
def test_udp_blocking(sender: Path | None, thread_pool: spead2.ThreadPool, packet_size: int) -> None:
    receive_blocking(sender, thread_pool, Run("udp", packet_size=packet_size, host=LOCALHOST))


@pytest.mark.asyncio
@pytest.mark.parametrize("host", [LOCALHOST, "::1"], ids=["ipv4", "ipv6"])
async def test_udp_asyncio(sender: Path | None, host: str) -> None:
    await receive_asyncio(sender, Run("udp", host=host))


def test_multicast_blocking(sender: Path | None, thread_pool: spead2.ThreadPool) -> None:
    receive_blocking(sender, thread_pool, Run("mcast", packet_size=9000, host=random_group()))


@pytest.mark.asyncio
async def test_multicast_asyncio(sender: Path | None) -> None:
    await receive_asyncio(sender, Run("mcast", host=random_group()))


def test_heaps_in_flight(sender: Path | None, thread_pool: spead2.ThreadPool) -> None:
    """Groups of four heaps whose packets are interleaved (round robin)."""
    receive_blocking(sender, thread_pool, Run("udp", mode="inflight", host=LOCALHOST))


def test_substreams(sender: Path | None, thread_pool: spead2.ThreadPool) -> None:
    """Two senders at once, odd and even heap cnts; the receiver has two substreams of one live
    heap each, so a heap only completes if the substreams keep the senders apart."""
    run = Run("udp", mode="substreams", host=LOCALHOST)
    run.config = spead2.recv.StreamConfig(max_heaps=1, substreams=2)
    receive_blocking(sender, thread_pool, run)


# ---- TCP ----


@pytest.mark.parametrize("end", [True, False], ids=["end-heap", "connection-close"])
def test_tcp_blocking(sender: Path | None, thread_pool: spead2.ThreadPool, end: bool) -> None:
    receive_blocking(sender, thread_pool, Run("tcp", packet_size=9000, host=LOCALHOST, end=end))


@pytest.mark.asyncio
async def test_tcp_asyncio(sender: Path | None) -> None:
    await receive_asyncio(sender, Run("tcp", host="::1", end=False))


@pytest.mark.asyncio
async def test_tcp_in_flight_asyncio(sender: Path | None) -> None:
    await receive_asyncio(sender, Run("tcp", mode="inflight", host=LOCALHOST))
