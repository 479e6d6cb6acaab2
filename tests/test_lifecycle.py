"""Load and shutdown: stop while packets pour in, start/stop cycles without fd or thread leaks,
interpreter exit with live streams, and a consumer slower than the sender."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rawpackets import Encoder, Heap, Item

import spead2
import spead2.recv
import spead2.recv.asyncio

ROOT = Path(__file__).resolve().parent.parent
ENC = Encoder(max_packet_size=1472)


def heap_packets(cnt: int, size: int = 4000) -> list[bytes]:
    return ENC.packets(Heap(cnt, [Item(0x1000, bytes([cnt % 256]) * size)]))


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.fixture(scope="module")
def warm_up() -> None:
    """One-time process-wide resources are not leaks: libuv (uvloop) opens a global signal pipe
    with its first loop, and keeps it for the life of the process."""
    with spead2.ThreadPool() as pool:
        stream = spead2.recv.Stream(pool)
        cycle_inproc(stream)
        stream.get()
        stream.stop()
    asyncio.run(asyncio.sleep(0))


@pytest.fixture
def no_leaks(warm_up: None) -> Iterator[None]:
    """Fails the test if it leaves file descriptors or threads behind."""
    gc.collect()
    fds, threads, py_threads = open_fds(), os_threads(), threading.active_count()
    yield
    deadline = time.monotonic() + 5
    while True:
        gc.collect()
        now = (open_fds(), os_threads(), threading.active_count())
        if now == (fds, threads, py_threads) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert now == (fds, threads, py_threads), "fds, OS threads, Python threads: before vs after"


# ---- stop while packets pour in --------------------------------------------------------------------


def pour(queue: spead2.InprocQueue, stop: threading.Event) -> None:
    cnt = 1
    while not stop.is_set():
        for p in heap_packets(cnt):
            queue.add_packet(p)
        cnt += 1
        if cnt % 64 == 0:
            time.sleep(0.0005)  # let the queue drain now and then


def consume_into(stream: spead2.recv.Stream, got: list[int], flowing: threading.Event, n: int = 50) -> None:
    """Iterates the stream into ``got``; sets ``flowing`` once ``n`` heaps came (the stop then
    lands while heaps pour in)."""
    for heap in stream:
        got.append(heap.cnt)
        if len(got) == n:
            flowing.set()


@pytest.mark.parametrize("ring", [2, 64])
def test_stop_while_pouring_blocking(no_leaks: None, ring: int) -> None:
    with spead2.ThreadPool() as pool:
        stream = spead2.recv.Stream(pool, ring_config=spead2.recv.RingStreamConfig(heaps=ring))
        queue = spead2.InprocQueue()
        stream.add_inproc_reader(queue)
        done = threading.Event()
        producer = threading.Thread(target=pour, args=(queue, done))
        producer.start()
        got: list[int] = []
        flowing = threading.Event()
        consumer = threading.Thread(target=consume_into, args=(stream, got, flowing))
        consumer.start()
        assert flowing.wait(30), "no heaps came"
        t0 = time.monotonic()
        stream.stop()
        consumer.join(10)
        assert not consumer.is_alive(), "the consumer's iteration ends at the stop"
        assert time.monotonic() - t0 < 5
        done.set()
        producer.join(10)
        assert got and got == sorted(got)
        assert stream.stats["heaps"] >= len(got)
        with pytest.raises(spead2.Stopped):
            stream.get()


def test_stop_while_pouring_asyncio(no_leaks: None) -> None:
    async def main() -> int:
        stream = spead2.recv.asyncio.Stream(None, ring_config=spead2.recv.RingStreamConfig(heaps=4))
        queue = spead2.InprocQueue()
        stream.add_inproc_reader(queue)
        done = threading.Event()
        producer = threading.Thread(target=pour, args=(queue, done))
        producer.start()
        n = 0
        try:
            async for _heap in stream:
                n += 1
                if n == 200:
                    stream.stop()
        finally:
            done.set()
            await asyncio.to_thread(producer.join, 10)
        return n

    n = asyncio.run(main())
    assert n >= 200


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_stop_while_pouring_network(no_leaks: None, transport: str) -> None:
    """A sender blasting at the stream's socket while the stream is stopped: stop returns, the
    consumer's iteration ends, the sender sees the socket go away (TCP) or keeps sending into the
    void (UDP), and nothing is left open."""
    method = METHODS[transport]
    if not hasattr(spead2.recv.Stream, method):
        pytest.skip(f"this build has no {method}")
    data = b"".join(p for cnt in range(1, 200) for p in heap_packets(cnt))
    done = threading.Event()
    with spead2.ThreadPool() as pool:
        stream = spead2.recv.Stream(pool, ring_config=spead2.recv.RingStreamConfig(heaps=4))
        kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.bind(("127.0.0.1", 0))
            if transport == "udp":
                stream.add_udp_reader(sock)
            else:
                sock.listen(1)
                stream.add_tcp_reader(sock)
            addr = sock.getsockname()

        def send() -> None:
            packets = [p for cnt in range(1, 200) for p in heap_packets(cnt)]
            try:
                if transport == "udp":
                    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
                        while not done.is_set():
                            for p in packets:
                                tx.sendto(p, addr)
                else:
                    with socket.create_connection(addr) as tx:
                        while not done.is_set():
                            tx.sendall(data)
            except OSError:
                pass  # the receiver went away

        sender = threading.Thread(target=send)
        sender.start()
        got: list[int] = []
        flowing = threading.Event()
        consumer = threading.Thread(target=consume_into, args=(stream, got, flowing))
        consumer.start()
        assert flowing.wait(30), "no heaps came"
        t0 = time.monotonic()
        stream.stop()
        consumer.join(10)
        assert not consumer.is_alive()
        assert time.monotonic() - t0 < 5
        done.set()
        sender.join(10)
        assert not sender.is_alive()
        assert got


def test_stop_mid_buffer(no_leaks: None) -> None:
    """A buffer of 20000 heaps: stop after the first few, from the consumer's thread.  The
    iteration ends with at most the heaps that were already queued (the ring's 4, and the 60 a
    reader may add past a full ring to finish its batch of input)."""
    data = b"".join(p for cnt in range(1, 20001) for p in heap_packets(cnt, 100))
    with spead2.ThreadPool() as pool:
        stream = spead2.recv.Stream(pool, ring_config=spead2.recv.RingStreamConfig(heaps=4))
        stream.add_buffer_reader(data)
        got = []
        for heap in stream:
            got.append(heap.cnt)
            if len(got) == 10:
                stream.stop()
        assert got == list(range(1, len(got) + 1))
        assert len(got) <= 10 + 4 + 60


# ---- start/stop cycles -----------------------------------------------------------------------------

CYCLES = int(os.environ.get("SPEAD2_LIFECYCLE_CYCLES", "1000"))
PACKETS = heap_packets(1) + heap_packets(2)
_pcap_file: list[str] = []


def cycle_buffer(stream: Any) -> None:
    stream.add_buffer_reader(b"".join(PACKETS))


def cycle_inproc(stream: Any) -> None:
    queue = spead2.InprocQueue()
    for p in PACKETS:
        queue.add_packet(p)
    stream.add_inproc_reader(queue)  # not stopped: the stream's stop ends it


def cycle_udp(stream: Any) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        stream.add_udp_reader(sock)  # duplicated by the reader
        for p in PACKETS:
            sock.sendto(p, sock.getsockname())


def cycle_tcp(stream: Any) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        stream.add_tcp_reader(listener)
        addr = listener.getsockname()
    with socket.create_connection(addr) as conn:
        conn.sendall(b"".join(PACKETS))


def cycle_pcap(stream: Any) -> None:
    if not _pcap_file:
        from test_hostile import write_pcap

        fd, path = tempfile.mkstemp(suffix=".pcap")
        os.close(fd)
        write_pcap(path, PACKETS)
        _pcap_file.append(path)
    stream.add_udp_pcap_file_reader(_pcap_file[0])


READERS: dict[str, Callable[[Any], None]] = {
    "buffer": cycle_buffer,
    "inproc": cycle_inproc,
    "udp": cycle_udp,
    "tcp": cycle_tcp,
    "pcap": cycle_pcap,
}
METHODS = {"udp": "add_udp_reader", "tcp": "add_tcp_reader", "pcap": "add_udp_pcap_file_reader"}


def reader_param(reader: str) -> Callable[[Any], None]:
    method = METHODS.get(reader)
    if method and not hasattr(spead2.recv.Stream, method):
        pytest.skip(f"this build has no {method}")
    return READERS[reader]


@pytest.mark.parametrize("reader", list(READERS))
def test_cycles_blocking(no_leaks: None, reader: str) -> None:
    add = reader_param(reader)
    with spead2.ThreadPool() as pool:
        for i in range(CYCLES):
            stream = spead2.recv.Stream(pool)
            if i % 3 == 0:
                assert stream.fd >= 0  # the notification pipe must be closed with the stream too
            add(stream)
            if i % 2 == 0:
                assert stream.get().cnt == 1
            stream.stop()
            del stream


@pytest.mark.parametrize("reader", list(READERS))
def test_cycles_asyncio(no_leaks: None, reader: str) -> None:
    add = reader_param(reader)

    async def main() -> None:
        for i in range(CYCLES):
            stream = spead2.recv.asyncio.Stream()
            if i % 3 == 0:
                assert stream.fd >= 0
            add(stream)
            if i % 2 == 0:
                assert (await stream.get()).cnt == 1
            stream.stop()
            del stream

    asyncio.run(main())


def test_cycles_thread_pools(no_leaks: None) -> None:
    """Each cycle with its own ThreadPool: every worker thread is joined."""
    for _ in range(max(1, CYCLES // 10)):
        with spead2.ThreadPool(2) as pool:
            stream = spead2.recv.Stream(pool)
            cycle_inproc(stream)
            assert stream.get().cnt == 1
        with pytest.raises(spead2.Stopped):
            while True:
                stream.get()


def test_dropped_without_stop(no_leaks: None) -> None:
    """Streams dropped without stop() (readers still running) are cleaned up."""
    with spead2.ThreadPool() as pool:
        for _ in range(100):
            stream = spead2.recv.Stream(pool)
            cycle_inproc(stream)
            del stream
        gc.collect()
        pool_threads = threading.active_count()
    assert threading.active_count() <= pool_threads


# ---- interpreter exit -------------------------------------------------------------------------------

EXIT_SCRIPT = """
import asyncio, sys, threading, time
import spead2, spead2.recv, spead2.recv.asyncio
from rawpackets import Encoder, Heap, Item

enc = Encoder()
queue = spead2.InprocQueue()
def pour():
    cnt = 1
    while True:
        for p in enc.packets(Heap(cnt, [Item(0x1000, bytes(3000))])):
            queue.add_packet(p)
        cnt += 1
        time.sleep(0.0005)
threading.Thread(target=pour, daemon=True).start()

pool = spead2.ThreadPool(2)
streams = []
for _ in range(3):
    s = spead2.recv.Stream(pool, ring_config=spead2.recv.RingStreamConfig(heaps=2))
    s.add_inproc_reader(queue)
    streams.append(s)
# a consumer blocked in get() on a stream that never gets a packet
idle = spead2.recv.Stream(pool)
idle.add_inproc_reader(spead2.InprocQueue())
def wait_idle():
    try:
        idle.get()
    except spead2.Stopped:
        pass
threading.Thread(target=wait_idle, daemon=True).start()
# a stream whose ring is full and whose reader is paused
streams[0].get()

MODE = sys.argv[1]
if MODE == "asyncio":
    async def main():
        s = spead2.recv.asyncio.Stream()
        s.add_inproc_reader(queue)
        await s.get()
        # leave it running: asyncio.run() closes the loop under it
    asyncio.run(main())
elif MODE == "exception":
    raise SystemExit(3)
from spead2._kernel import lib
while lib.sp2_ring_waiters(idle._core.kernel) == 0:  # until the idle consumer is asleep in get()
    time.sleep(0.001)
print("exiting", flush=True)
"""


@pytest.mark.parametrize(("mode", "code"), [("plain", 0), ("asyncio", 0), ("exception", 3)])
def test_interpreter_exit_with_live_streams(mode: str, code: int, tmp_path: Path) -> None:
    script = tmp_path / "exit.py"
    script.write_text(textwrap.dedent(EXIT_SCRIPT))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(script), mode], capture_output=True, text=True, timeout=60, env=env
    )
    assert proc.returncode == code, proc.stderr
    assert time.monotonic() - t0 < 30
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "Fatal" not in proc.stderr, proc.stderr


# ---- a consumer slower than the sender ----------------------------------------------------------------


def test_slow_consumer_blocking(no_leaks: None) -> None:
    """The ring bounds memory: the reader pauses (worker_blocked rises), nothing is lost on a
    lossless transport, and the consumer gets every heap in order."""
    n = 400
    data = b"".join(p for cnt in range(1, n + 1) for p in heap_packets(cnt, 60000))
    with spead2.ThreadPool() as pool:
        stream = spead2.recv.Stream(pool, ring_config=spead2.recv.RingStreamConfig(heaps=4))
        stream.add_buffer_reader(data)
        got = []
        peak = 0
        for heap in stream:
            got.append(heap.cnt)
            peak = max(peak, stream.ringbuffer.size())
            time.sleep(0.0005)
        stream.stop()
        assert got == list(range(1, n + 1))
        assert peak <= 4
        assert stream.stats["worker_blocked"] > 0
        assert sum(stream.stats.drops.values()) == 0


def test_slow_consumer_asyncio(no_leaks: None) -> None:
    n = 300

    async def main() -> tuple[list[int], int, int]:
        stream = spead2.recv.asyncio.Stream(None, ring_config=spead2.recv.RingStreamConfig(heaps=2))
        queue = spead2.InprocQueue()
        for cnt in range(1, n + 1):
            for p in heap_packets(cnt, 20000):
                queue.add_packet(p)
        queue.stop()
        stream.add_inproc_reader(queue)
        got = []
        peak = 0
        async for heap in stream:
            got.append(heap.cnt)
            peak = max(peak, stream.ringbuffer.size())
            await asyncio.sleep(0.0005)
        stream.stop()
        return got, peak, stream.stats["worker_blocked"]

    got, peak, blocked = asyncio.run(main())
    assert got == list(range(1, n + 1))
    assert peak <= 2
    assert blocked > 0


# ---- the soak script (bench/soak.py), briefly ---------------------------------------------------------


@pytest.mark.parametrize("transport", ["inproc", "udp"])
def test_soak_smoke(transport: str, tmp_path: Path) -> None:
    """A short run of the soak script: every heap that arrived whole is delivered, RSS flat."""
    if transport == "udp" and not hasattr(spead2.recv.Stream, "add_udp_reader"):
        pytest.skip("this build has no add_udp_reader")
    out = tmp_path / "soak.json"
    cmd = [sys.executable, str(ROOT / "bench" / "soak.py"), "--packets", "40000", "--transport", transport]
    proc = subprocess.run([*cmd, "--json", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    figures = json.loads(out.read_text())
    assert figures["problems"] == []
    assert figures["heaps_delivered"] == figures["heaps_whole"] > 4000
