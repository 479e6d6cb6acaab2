"""add_tcp_reader over real loopback connections: both overloads on both façades and loops, every
.bin vector as a byte stream, the ways a connection can end, errors and backpressure."""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import struct
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import vectors
from conftest import LOOP_FACTORIES
from test_readers_udp import FLAVOUR, packet, stop_packet
from test_vectors_stream import bin_params, check_stream_results, make_configs

import spead2
import spead2.recv
import spead2.recv.asyncio
import spead2.send
from spead2._kernel import ffi, lib

LOCALHOST = "127.0.0.1"


def listen_free(add: Callable[[int], None], family: int = socket.AF_INET, host: str = LOCALHOST) -> int:
    """Calls ``add(port)`` with a free TCP port (retrying if it is taken meanwhile)."""
    for _ in range(20):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        try:
            add(port)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                continue
            raise
        return port
    raise AssertionError("no free port")


def send_and_close(address: tuple[Any, ...], data: bytes, family: int = socket.AF_INET) -> None:
    with socket.socket(family, socket.SOCK_STREAM) as conn:
        conn.connect(address)
        conn.sendall(data)


def large_packet(cnt: int, payload: bytes) -> bytes:
    """A heap in one packet however large its payload (the send side's encoder)."""
    heap = spead2.send.Heap(FLAVOUR)
    heap.add_item(spead2.Item(0x1000, "", "", (None,), format=[("u", 8)], value=list(payload)))
    (data,) = spead2.send.PacketGenerator(heap, cnt, len(payload) + 4096)
    return data


def heaps_bytes(cnts: range, payload: bytes = b"payload!") -> bytes:
    return b"".join(packet(cnt, payload) for cnt in cnts)


@pytest.fixture(scope="module", params=list(LOOP_FACTORIES))
def module_pool(request: pytest.FixtureRequest) -> Iterator[spead2.ThreadPool]:
    pool = spead2.ThreadPool(loop_factory=LOOP_FACTORIES[request.param])
    yield pool
    pool.stop()


# ---- every .bin vector as a byte stream ----

#: Runs in the reference's interpreter: each vector over its TCP reader, the heaps' cnts out.
REFERENCE_TCP = """
import json, socket, sys
import spead2, spead2.recv
out = {}
for key, path, stream_config, ring_config in json.loads(sys.stdin.read()):
    config = spead2.recv.StreamConfig(**stream_config)
    stream = spead2.recv.Stream(spead2.ThreadPool(), config, spead2.recv.RingStreamConfig(**ring_config))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        stream.add_tcp_reader(listener)
        with socket.create_connection(listener.getsockname()) as conn:
            conn.sendall(open(path, "rb").read())
    out[key] = [heap.cnt for heap in stream]
print(json.dumps(out))
"""


def frames_whole(data: bytes) -> bool:
    """Whether every packet of a byte stream decodes (else a buffer reader stops early, where a
    TCP reader skips the bad packet and goes on)."""
    info = ffi.new("sp2_packet_info *")
    pos = 0
    while pos < len(data):
        rest = data[pos:]
        if lib.sp2_decode_packet(rest, len(rest), 0, info) != lib.SP2_DROP_NONE:
            return False
        pos += int(info.size)
    return True


@pytest.fixture(scope="module")
def reference_tcp_heaps(reference: Path) -> dict[str, list[int]]:
    """The heaps the reference's TCP reader gives for each .bin vector that does not frame whole."""
    jobs = []
    for param in bin_params():
        scenario, form = param.values
        if scenario is not None and not frames_whole(scenario.file(form).read_bytes()):
            key = f"{scenario.name}/{form}"
            jobs.append([key, str(scenario.file(form)), scenario.stream_config, scenario.ring_config])
    proc = subprocess.run(
        [str(reference), "-I", "-c", REFERENCE_TCP],  # (-I: never our spead2 from the checkout)
        input=json.dumps(jobs),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


@pytest.mark.parametrize(("scenario", "form"), bin_params())
def test_vectors(
    module_pool: spead2.ThreadPool, scenario: vectors.Scenario, form: str, request: pytest.FixtureRequest
) -> None:
    """A vector that frames whole gives what the buffer reader gives (the vectors' expectations);
    one with a bad packet gives what the reference's TCP reader gives, which skips it."""
    data = scenario.file(form).read_bytes()
    stream = spead2.recv.Stream(module_pool, *make_configs(scenario))
    port = listen_free(lambda p: stream.add_tcp_reader(p, bind_hostname=LOCALHOST))
    send_and_close((LOCALHOST, port), data)
    heaps = list(stream)
    stream.stop()
    if frames_whole(data):
        check_stream_results(scenario, form, heaps, stream.stats)
    else:
        expected = request.getfixturevalue("reference_tcp_heaps")[f"{scenario.name}/{form}"]
        assert [h.cnt for h in heaps] == expected


# ---- the overloads on both façades ----


def test_port_blocking(thread_pool: spead2.ThreadPool) -> None:
    stream = spead2.recv.Stream(thread_pool)
    port = listen_free(lambda p: stream.add_tcp_reader(p, 65536, 1 << 20, LOCALHOST))
    send_and_close((LOCALHOST, port), heaps_bytes(range(1, 11)))
    assert [h.cnt for h in stream] == list(range(1, 11))


def test_port_ipv6_blocking(thread_pool: spead2.ThreadPool) -> None:
    stream = spead2.recv.Stream(thread_pool)
    port = listen_free(lambda p: stream.add_tcp_reader(p, bind_hostname="::1"), socket.AF_INET6, "::1")
    send_and_close(("::1", port), heaps_bytes(range(1, 4)), socket.AF_INET6)
    assert [h.cnt for h in stream] == [1, 2, 3]


def test_port_any_address(thread_pool: spead2.ThreadPool) -> None:
    stream = spead2.recv.Stream(thread_pool)
    port = listen_free(lambda p: stream.add_tcp_reader(p), host="0.0.0.0")
    send_and_close((LOCALHOST, port), heaps_bytes(range(1, 4)))
    assert [h.cnt for h in stream] == [1, 2, 3]


@pytest.mark.asyncio
@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6], ids=["ipv4", "ipv6"])
async def test_port_asyncio(family: int) -> None:
    host = LOCALHOST if family == socket.AF_INET else "::1"
    stream = spead2.recv.asyncio.Stream()
    port = listen_free(lambda p: stream.add_tcp_reader(port=p, bind_hostname=host), family, host)
    send_and_close((host, port), heaps_bytes(range(1, 11)), family)
    assert [h.cnt async for h in stream] == list(range(1, 11))


def _acceptor(family: int = socket.AF_INET) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind((LOCALHOST if family == socket.AF_INET else "::1", 0))
    sock.listen(1)
    return sock


def test_acceptor_blocking(thread_pool: spead2.ThreadPool) -> None:
    acceptor = _acceptor()
    address = acceptor.getsockname()
    stream = spead2.recv.Stream(thread_pool)
    stream.add_tcp_reader(acceptor, max_size=4096)
    acceptor.close()  # the reader has its own copy
    send_and_close(address, heaps_bytes(range(1, 6)))
    assert [h.cnt for h in stream] == [1, 2, 3, 4, 5]


@pytest.mark.asyncio
async def test_acceptor_asyncio() -> None:
    acceptor = _acceptor(socket.AF_INET6)
    address = acceptor.getsockname()
    stream = spead2.recv.asyncio.Stream()
    stream.add_tcp_reader(acceptor=acceptor)
    acceptor.close()
    send_and_close(address, heaps_bytes(range(1, 6)), socket.AF_INET6)
    assert [h.cnt async for h in stream] == [1, 2, 3, 4, 5]


def test_defaults() -> None:
    for cls in (spead2.recv.Stream, spead2.recv.asyncio.Stream):
        assert cls.DEFAULT_TCP_MAX_SIZE == 65536
        assert cls.DEFAULT_TCP_BUFFER_SIZE == 212992


# ---- one connection; its end stops the stream ----


def test_single_connection(thread_pool: spead2.ThreadPool) -> None:
    stream = spead2.recv.Stream(thread_pool)
    port = listen_free(lambda p: stream.add_tcp_reader(p, bind_hostname=LOCALHOST))
    with socket.create_connection((LOCALHOST, port)) as conn:
        conn.sendall(packet(1, b"first"))
        assert stream.get().cnt == 1  # accepted, and the listener is closed
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((LOCALHOST, port)).close()
        conn.sendall(packet(2, b"second"))
    assert [h.cnt for h in stream] == [2]


def test_stop_before_connection(thread_pool: spead2.ThreadPool) -> None:
    stream = spead2.recv.Stream(thread_pool)
    port = listen_free(lambda p: stream.add_tcp_reader(p, bind_hostname=LOCALHOST))
    stream.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((LOCALHOST, port)).close()


def test_stop_during_connection(thread_pool: spead2.ThreadPool) -> None:
    stream = spead2.recv.Stream(thread_pool)
    port = listen_free(lambda p: stream.add_tcp_reader(p, bind_hostname=LOCALHOST))
    with socket.create_connection((LOCALHOST, port)) as conn:
        conn.sendall(packet(1, b"x"))
        assert stream.get().cnt == 1
        stream.stop()
        assert conn.recv(10) == b""  # the reader closed its end


def test_stop_item_ends_stream(thread_pool: spead2.ThreadPool) -> None:
    stream = spead2.recv.Stream(thread_pool)
    port = listen_free(lambda p: stream.add_tcp_reader(p, bind_hostname=LOCALHOST))
    with socket.create_connection((LOCALHOST, port)) as conn:
        conn.sendall(heaps_bytes(range(1, 3)) + stop_packet())
        assert [h.cnt for h in stream] == [1, 2]


@pytest.mark.parametrize(
    ("tail", "message"),
    [
        (lambda p: p[:5], "in the middle of a packet header"),
        (lambda p: p[:20], "in the middle of a packet header"),  # inside the item pointers
        (lambda p: p[:-3], "in the middle of a packet payload"),
    ],
    ids=["mid-header", "mid-pointers", "mid-payload"],
)
def test_connection_closed_mid_packet(
    thread_pool: spead2.ThreadPool,
    caplog: pytest.LogCaptureFixture,
    tail: Callable[[bytes], bytes],
    message: str,
) -> None:
    """Every complete heap before the cut is delivered, the reason is logged, the stream stops."""
    stream = spead2.recv.Stream(thread_pool)
    port = listen_free(lambda p: stream.add_tcp_reader(p, max_size=4096, bind_hostname=LOCALHOST))
    with caplog.at_level(logging.WARNING, logger="spead2"):
        send_and_close((LOCALHOST, port), heaps_bytes(range(1, 4)) + tail(packet(4, b"the fourth heap")))
        heaps = list(stream)
    assert [h.cnt for h in heaps] == [1, 2, 3]
    assert message in caplog.text


REJECTED = "packet rejected because "
INVALID = "discarding packet due to invalid header"
TRUNCATED = "dropping packet due to truncation"


@pytest.mark.parametrize(
    ("tail", "lines", "resyncs"),
    [
        (lambda p: b"\x00" * 16 + p, [REJECTED + "magic or version did not match", INVALID], True),
        (lambda p: b"\x53\x05" + p[2:], [REJECTED + "magic or version did not match", INVALID], True),
        (lambda p: large_packet(9, b"z" * 5000), [TRUNCATED], True),
        (
            lambda p: p[:8] + b"\xff" * 8 + p[16:],
            [REJECTED + "it does not have required items", INVALID],
            True,
        ),
        # headers that announce more than max_size: refused before the rest arrives, and skipped
        # as far as they announce (which here swallows what follows)
        (lambda p: p[:6] + b"\xff\xff" + p[8:], [TRUNCATED], False),
        (lambda p: p[:32] + struct.pack(">Q", (1 << 63) | (4 << 40) | 5000) + p[40:], [TRUNCATED], False),
    ],
    ids=["bad-magic", "bad-version", "too-large", "garbage-pointer", "many-pointers", "long-payload"],
)
def test_bad_packet_is_skipped(
    thread_pool: spead2.ThreadPool,
    caplog: pytest.LogCaptureFixture,
    tail: Callable[[bytes], bytes],
    lines: list[str],
    resyncs: bool,
) -> None:
    """As the reference: the bad packet is skipped (whole if its header tells its size, else 8
    bytes at a time), counted and logged with the reference's lines, and reading goes on."""
    stream = spead2.recv.Stream(thread_pool)
    port = listen_free(lambda p: stream.add_tcp_reader(p, max_size=4096, bind_hostname=LOCALHOST))
    fourth = packet(4, b"the fourth heap!")  # (a multiple of 8 bytes: skipping 8 at a time resyncs)
    with caplog.at_level(logging.INFO, logger="spead2"):
        send_and_close((LOCALHOST, port), heaps_bytes(range(1, 4)) + tail(fourth) + heaps_bytes(range(5, 7)))
        cnts = {h.cnt for h in stream}
        stream.stop()  # (waits for the loop thread, which logs as the stream ends)
    assert {1, 2, 3} <= cnts
    assert {5, 6} <= cnts if resyncs else {5, 6}.isdisjoint(cnts)
    assert sum(stream.stats.drops.values()) >= 1
    for line in lines:
        assert line in caplog.messages
    assert "closing the connection" not in caplog.text


@pytest.mark.asyncio
async def test_connection_ends_badly_asyncio(caplog: pytest.LogCaptureFixture) -> None:
    stream = spead2.recv.asyncio.Stream()
    port = listen_free(lambda p: stream.add_tcp_reader(p, bind_hostname=LOCALHOST))
    with caplog.at_level(logging.WARNING, logger="spead2"):
        send_and_close((LOCALHOST, port), heaps_bytes(range(1, 4)) + packet(4, b"fourth")[:-2])
        assert [h.cnt async for h in stream] == [1, 2, 3]
    assert "in the middle of a packet payload" in caplog.text


def test_large_packets(thread_pool: spead2.ThreadPool) -> None:
    """Packets larger than the reader's initial buffer (it grows, up to max_size)."""
    payloads = [bytes([i]) * (700_000 + i) for i in range(1, 4)]
    stream = spead2.recv.Stream(thread_pool)
    port = listen_free(lambda p: stream.add_tcp_reader(p, max_size=1 << 20, bind_hostname=LOCALHOST))
    send_and_close((LOCALHOST, port), b"".join(large_packet(i + 1, p) for i, p in enumerate(payloads)))
    heaps = list(stream)
    assert [h.cnt for h in heaps] == [1, 2, 3]
    for heap, payload in zip(heaps, payloads, strict=True):
        assert bytes(heap.get_items()[0]) == payload


def test_backpressure(thread_pool: spead2.ThreadPool) -> None:
    """Far more data than the ring and the socket buffers hold: TCP flow control stalls the sender
    while the reader is paused; nothing is lost."""
    n = 3000
    stream = spead2.recv.Stream(thread_pool, ring_config=spead2.recv.RingStreamConfig(heaps=2))
    port = listen_free(lambda p: stream.add_tcp_reader(p, buffer_size=65536, bind_hostname=LOCALHOST))
    data = heaps_bytes(range(1, n + 1), b"y" * 1000)
    import threading

    sender = threading.Thread(target=send_and_close, args=((LOCALHOST, port), data))
    sender.start()
    cnts = [h.cnt for h in stream]
    sender.join()
    assert cnts == list(range(1, n + 1))
    assert stream.stats["worker_blocked"] > 0


@pytest.mark.asyncio
async def test_backpressure_asyncio() -> None:
    import asyncio

    n = 2000
    stream = spead2.recv.asyncio.Stream(None, ring_config=spead2.recv.RingStreamConfig(heaps=2))
    port = listen_free(lambda p: stream.add_tcp_reader(p, bind_hostname=LOCALHOST))
    _, writer = await asyncio.open_connection(LOCALHOST, port)
    writer.write(heaps_bytes(range(1, n + 1), b"z" * 1000))
    writer.write_eof()
    cnts = [h.cnt async for h in stream]
    writer.close()
    assert cnts == list(range(1, n + 1))
    assert stream.stats["worker_blocked"] > 0


def test_explicit_start(thread_pool: spead2.ThreadPool) -> None:
    stream = spead2.recv.Stream(thread_pool, spead2.recv.StreamConfig(explicit_start=True))
    port = listen_free(lambda p: stream.add_tcp_reader(p, bind_hostname=LOCALHOST))
    send_and_close((LOCALHOST, port), heaps_bytes(range(1, 4)))  # waits in the listen backlog
    with pytest.raises(spead2.Empty):
        stream.get_nowait()
    stream.start()
    assert [h.cnt for h in stream] == [1, 2, 3]


def test_no_fd_leak(thread_pool: spead2.ThreadPool) -> None:
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd")

    def cycle() -> None:
        stream = spead2.recv.Stream(thread_pool)
        listen_free(lambda p: stream.add_tcp_reader(p, bind_hostname=LOCALHOST))
        acceptor = _acceptor()
        stream.add_tcp_reader(acceptor)
        acceptor.close()
        stream.stop()
        stream = spead2.recv.Stream(thread_pool)
        port = listen_free(lambda p: stream.add_tcp_reader(p, bind_hostname=LOCALHOST))
        with socket.create_connection((LOCALHOST, port)) as conn:
            conn.sendall(packet(1, b"x"))
            assert stream.get().cnt == 1
            stream.stop()
        # the connection's transport closes its socket on the loop's next iteration
        for _ in range(2):
            stream._portal.call(lambda: None)

    cycle()
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(30):
        cycle()
    assert len(os.listdir("/proc/self/fd")) == before


# ---- errors at the call ----


@pytest.fixture
def stream(thread_pool: spead2.ThreadPool) -> Iterator[spead2.recv.Stream]:
    s = spead2.recv.Stream(thread_pool)
    yield s
    s.stop()


@pytest.mark.parametrize("port", [-1, 65536, 2**40])
def test_port_out_of_range(stream: spead2.recv.Stream, port: int) -> None:
    with pytest.raises(ValueError, match="port must be in the range 0-65535") as info:
        stream.add_tcp_reader(port)
    assert isinstance(info.value, TypeError)  # what the reference raises


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((), {}), (("80",), {}), ((1.0,), {}), ((0, 1, 2, "", 5), {}), ((0,), {"acceptor": None})],
    ids=["none", "str", "float", "too-many", "both"],
)
def test_bad_arguments(stream: spead2.recv.Stream, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        stream.add_tcp_reader(*args, **kwargs)


def test_bad_acceptor(stream: spead2.recv.Stream) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp_sock, pytest.raises(TypeError):
        stream.add_tcp_reader(udp_sock)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as idle:
        idle.bind((LOCALHOST, 0))
        with pytest.raises(ValueError, match="not listening"):
            stream.add_tcp_reader(idle)
    closed = _acceptor()
    closed.close()
    with pytest.raises(ValueError, match="closed"):
        stream.add_tcp_reader(closed)


def test_bind_errors(stream: spead2.recv.Stream) -> None:
    with pytest.raises(OSError, match=r"cannot bind to 192\.0\.2\.123") as info:
        stream.add_tcp_reader(0, bind_hostname="192.0.2.123")
    assert isinstance(info.value, RuntimeError)
    taken = _acceptor()
    with pytest.raises(OSError, match="Address already in use") as info:
        stream.add_tcp_reader(taken.getsockname()[1], bind_hostname=LOCALHOST)
    assert info.value.errno == errno.EADDRINUSE
    taken.close()
