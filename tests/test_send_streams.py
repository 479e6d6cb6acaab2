"""The send streams on real transports (loopback UDP, multicast, TCP, in-process queues, bytes),
blocking and asyncio (both event loops), received by our own receiver; group modes, substreams,
cnt sequences, the rate limiter, and the errors of the reference's send API."""

from __future__ import annotations

import asyncio
import errno
import gc
import socket
import sys
import time
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import spead2
import spead2.recv
import spead2.send
import spead2.send.asyncio
from spead2.send import GroupMode, HeapReference, StreamConfig

N = 5
SIZE = 20000


def make_heaps(n: int = N) -> list[spead2.send.Heap]:
    """Self-contained heaps; heap i's item "x" is filled with i."""
    heaps = []
    for i in range(n):
        group = spead2.send.ItemGroup()
        group.add_item(0x1000, "x", "x", (SIZE,), np.uint8, value=np.full(SIZE, i, np.uint8))
        group.add_item(0x1001, "tag", "tag", (), format=[("u", 32)], value=1000 + i)
        heaps.append(group.get_heap())
    return heaps


def decoded(heaps: list[Any]) -> dict[int, int]:
    """cnt -> the value of x's first byte, for every complete heap with an x."""
    out = {}
    for heap in heaps:
        if isinstance(heap, spead2.recv.Heap):
            values = spead2.ItemGroup().update(heap)
            if "x" in values:
                assert values["tag"].value == 1000 + int(values["x"].value[0])
                out[heap.cnt] = int(values["x"].value[0])
    return out


def udp_receiver(pool: spead2.ThreadPool, substreams: int = 1) -> tuple[spead2.recv.Stream, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", 0))
    stream = spead2.recv.Stream(pool, spead2.recv.StreamConfig(max_heaps=8, substreams=substreams))
    stream.add_udp_reader(sock)
    port = sock.getsockname()[1]
    sock.close()
    return stream, port


def tcp_listener() -> socket.socket:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    return listener


RATE = StreamConfig(rate=100e6, max_heaps=8)  # gentle on UDP: a small receive buffer holds it


# ---- blocking ----


def test_udp_blocking(thread_pool: spead2.ThreadPool) -> None:
    receiver, port = udp_receiver(thread_pool)
    stream = spead2.send.UdpStream(thread_pool, [("127.0.0.1", port)], RATE)
    assert stream.num_substreams == 1
    for heap in make_heaps():
        assert stream.send_heap(heap) > N * SIZE // N
    stream.send_heap(spead2.send.Heap())  # an empty heap: padding only
    stream.send_heap(make_group_end())
    assert decoded(list(receiver)) == {i + 1: i for i in range(N)}


def make_group_end() -> spead2.send.Heap:
    return spead2.send.ItemGroup().get_end()


def test_tcp_blocking(thread_pool: spead2.ThreadPool) -> None:
    listener = tcp_listener()
    receiver = spead2.recv.Stream(thread_pool)
    receiver.add_tcp_reader(listener)
    config = StreamConfig(max_packet_size=9000, max_heaps=N)
    stream = spead2.send.TcpStream(thread_pool, [listener.getsockname()], config)
    stream.send_heaps([HeapReference(h) for h in make_heaps()], GroupMode.SERIAL)
    del stream
    gc.collect()  # closes the connection: the receiver's stream ends
    assert decoded(list(receiver)) == {i + 1: i for i in range(N)}
    listener.close()


def test_tcp_with_user_socket(thread_pool: spead2.ThreadPool) -> None:
    listener = tcp_listener()
    receiver = spead2.recv.Stream(thread_pool)
    receiver.add_tcp_reader(listener)
    sock = socket.create_connection(listener.getsockname())
    stream = spead2.send.TcpStream(thread_pool, sock)
    sock.close()  # the stream has its own duplicate
    stream.send_heap(make_heaps(1)[0])
    stream.send_heap(make_group_end())
    assert decoded(list(receiver)) == {1: 0}
    listener.close()


def test_inproc_and_substreams(thread_pool: spead2.ThreadPool) -> None:
    queues = [spead2.InprocQueue(), spead2.InprocQueue()]
    stream = spead2.send.InprocStream(thread_pool, queues)
    assert stream.queues == queues and stream.num_substreams == 2
    for i, heap in enumerate(make_heaps()):
        stream.send_heap(heap, substream_index=i % 2)
    for queue in queues:
        queue.stop()
    results = []
    for queue in queues:
        receiver = spead2.recv.Stream(thread_pool)
        receiver.add_inproc_reader(queue)
        results.append(decoded(list(receiver)))
    assert results == [{1: 0, 3: 2, 5: 4}, {2: 1, 4: 3}]


def test_udp_substreams_and_socket_form(thread_pool: spead2.ThreadPool) -> None:
    receivers = [udp_receiver(thread_pool) for _ in range(2)]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stream = spead2.send.UdpStream(thread_pool, sock, [("127.0.0.1", port) for _, port in receivers], RATE)
    sock.close()
    assert stream.num_substreams == 2
    refs = [HeapReference(h, substream_index=i % 2) for i, h in enumerate(make_heaps(4))]
    stream.send_heaps(refs, GroupMode.ROUND_ROBIN)
    for index in range(2):
        stream.send_heap(make_group_end(), substream_index=index)
    assert [decoded(list(r)) for r, _ in receivers] == [{1: 0, 3: 2}, {2: 1, 4: 3}]


def test_multicast_ipv4(thread_pool: spead2.ThreadPool) -> None:
    group_address = "239.255.77.7"
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    receiver = spead2.recv.Stream(thread_pool)
    receiver.add_udp_reader(group_address, port, interface_address="127.0.0.1")
    stream = spead2.send.UdpStream(thread_pool, [(group_address, port)], RATE, 1 << 20, 1, "127.0.0.1")
    for heap in make_heaps(2):
        stream.send_heap(heap)
    stream.send_heap(make_group_end())
    assert decoded(list(receiver)) == {1: 0, 2: 1}


def test_group_modes_order_packets(thread_pool: spead2.ThreadPool) -> None:
    """ROUND_ROBIN takes one packet from each heap in turn; SERIAL sends heap after heap."""
    for mode, expected in [(GroupMode.SERIAL, [10] * 15 + [11] * 15), (GroupMode.ROUND_ROBIN, [10, 11] * 15)]:
        stream = spead2.send.BytesStream(thread_pool)
        refs = [HeapReference(h, cnt=10 + i) for i, h in enumerate(make_heaps(2))]
        stream.send_heaps(spead2.send.HeapReferenceList(refs), mode)
        data = stream.getvalue()
        cnts = []
        while data:
            n = int.from_bytes(data[6:8], "big")
            pointers = [int.from_bytes(data[8 + 8 * i : 16 + 8 * i], "big") for i in range(n)]
            cnts.append(pointers[0] & ((1 << 40) - 1))
            length = pointers[3] & ((1 << 40) - 1)
            data = data[8 + 8 * n + length :]
        assert cnts == expected


def test_cnt_sequence(thread_pool: spead2.ThreadPool) -> None:
    stream = spead2.send.BytesStream(thread_pool)
    stream.set_cnt_sequence(2**40 - 1, 5)  # wraps: the low bits are taken
    heaps = make_heaps(3)
    stream.send_heap(heaps[0])
    stream.send_heap(heaps[1], cnt=77)
    stream.send_heap(heaps[2])
    receiver = spead2.recv.Stream(thread_pool)
    receiver.add_buffer_reader(stream.getvalue())
    assert sorted(decoded(list(receiver))) == [4, 77, 2**40 - 1]
    with pytest.raises(ValueError, match="step cannot be 0"):
        stream.set_cnt_sequence(1, 0)


def test_rate_limit(thread_pool: spead2.ThreadPool) -> None:
    """100 kB at 2 MB/s cannot be sent in less than about 50 ms (lower bound only)."""
    stream = spead2.send.BytesStream(thread_pool, StreamConfig(rate=2e6, burst_size=4000))
    heaps = make_heaps()
    start = time.monotonic()
    total = sum(stream.send_heap(heap) for heap in heaps)
    assert time.monotonic() - start >= 0.9 * (total - 4000) / 2e6
    fast = time.monotonic()
    stream.send_heap(heaps[0], rate=0.0)  # a per-heap rate overrides the stream's
    assert time.monotonic() - fast < 0.9 * SIZE / 2e6


@pytest.mark.parametrize(
    ("call", "error", "code"),
    [
        (lambda s, h: s.send_heap(h, substream_index=1), OSError, errno.EINVAL),
        (lambda s, h: s.send_heap(h, cnt=2**40), OSError, errno.EINVAL),
        (lambda s, h: s.send_heaps([], GroupMode.SERIAL), OSError, errno.EINVAL),
        (lambda s, h: s.send_heaps([HeapReference(h)] * 5, GroupMode.SERIAL), BlockingIOError, errno.EAGAIN),
    ],
    ids=["substream", "cnt", "empty", "queue-full"],
)
def test_send_errors_blocking(
    thread_pool: spead2.ThreadPool, call: Callable[..., Any], error: type, code: int
) -> None:
    stream = spead2.send.BytesStream(thread_pool)
    with pytest.raises(error) as info:
        call(stream, make_heaps(1)[0])
    assert info.value.errno == code
    assert stream.getvalue() == b""
    stream.send_heap(make_heaps(1)[0])  # the stream still works
    assert stream.getvalue()


def test_packet_too_small(thread_pool: spead2.ThreadPool) -> None:
    stream = spead2.send.BytesStream(thread_pool, StreamConfig(max_packet_size=40))
    with pytest.raises(ValueError, match="packet size is too small"):
        stream.send_heap(make_heaps(1)[0])


def test_udp_packet_too_large(thread_pool: spead2.ThreadPool) -> None:
    _, port = udp_receiver(thread_pool)
    stream = spead2.send.UdpStream(thread_pool, [("127.0.0.1", port)], StreamConfig(max_packet_size=70000))
    group = spead2.send.ItemGroup()
    group.add_item(0x1000, "big", "", (100000,), np.uint8, value=np.zeros(100000, np.uint8))
    with pytest.raises(OSError) as info:
        stream.send_heap(group.get_heap())
    assert info.value.errno == errno.EMSGSIZE


def test_constructor_errors(thread_pool: spead2.ThreadPool) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        spead2.send.UdpStream(thread_pool, [])
    with pytest.raises(OSError):
        spead2.send.UdpStream(thread_pool, [("no-such-host.invalid", 8888)])
    with pytest.raises(ConnectionRefusedError):
        listener = tcp_listener()
        port = listener.getsockname()[1]
        listener.close()
        spead2.send.TcpStream(thread_pool, [("127.0.0.1", port)])
    with pytest.raises(ValueError, match="exactly one"):
        spead2.send.TcpStream(thread_pool, [("127.0.0.1", 1), ("127.0.0.1", 2)])
    with pytest.raises(TypeError):
        spead2.send.UdpStream(thread_pool, [("127.0.0.1", 8888)], 3)
    with pytest.raises(TypeError):
        spead2.send.BytesStream(None)  # type: ignore[arg-type]


def test_tcp_peer_closes(thread_pool: spead2.ThreadPool) -> None:
    """Once the peer is gone, sends fail with the connection's error instead of hanging."""
    listener = tcp_listener()
    stream = spead2.send.TcpStream(thread_pool, [listener.getsockname()], StreamConfig(max_packet_size=9000))
    peer, _ = listener.accept()
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    peer.close()  # a reset
    listener.close()
    with pytest.raises(OSError) as info:
        for heap in make_heaps(50):
            stream.send_heap(heap)
    assert info.value.errno in (errno.ECONNRESET, errno.EPIPE)
    with pytest.raises(OSError):
        stream.send_heap(make_heaps(1)[0])


# ---- asyncio ----


@pytest.mark.asyncio
async def test_udp_asyncio() -> None:
    pool = spead2.ThreadPool()
    receiver, port = udp_receiver(pool)
    stream = spead2.send.asyncio.UdpStream(pool, [("127.0.0.1", port)], RATE)
    futures = [stream.async_send_heap(heap) for heap in make_heaps()]
    sent = await asyncio.gather(*futures)
    assert all(n > SIZE for n in sent)
    await stream.async_send_heap(make_group_end())
    assert decoded(await asyncio.get_running_loop().run_in_executor(None, list, receiver)) == {
        i + 1: i for i in range(N)
    }


@pytest.mark.asyncio
async def test_tcp_asyncio() -> None:
    pool = spead2.ThreadPool()
    listener = tcp_listener()
    receiver = spead2.recv.Stream(pool, spead2.recv.StreamConfig(max_heaps=N))  # interleaved heaps
    receiver.add_tcp_reader(listener)
    config = StreamConfig(max_heaps=N + 1)
    stream = await spead2.send.asyncio.TcpStream.connect(pool, [listener.getsockname()], config)
    future = stream.async_send_heaps([HeapReference(h) for h in make_heaps()], GroupMode.ROUND_ROBIN)
    await stream.async_flush()
    assert future.done() and future.result() > N * SIZE
    stream.async_send_heap(make_group_end())
    stream.flush()
    assert decoded(await asyncio.get_running_loop().run_in_executor(None, list, receiver)) == {
        i + 1: i for i in range(N)
    }
    address = listener.getsockname()
    listener.close()
    with pytest.raises(ConnectionRefusedError):
        await spead2.send.asyncio.TcpStream.connect(pool, [address])


@pytest.mark.asyncio
async def test_inproc_asyncio_max_heaps() -> None:
    """More than max_heaps in flight: the extra futures fail with EAGAIN, the rest are sent."""
    queue = spead2.InprocQueue()
    stream = spead2.send.asyncio.InprocStream(spead2.ThreadPool(), [queue], StreamConfig(max_heaps=2))
    futures = [stream.async_send_heap(heap) for heap in make_heaps(4)]
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert [isinstance(r, BlockingIOError) for r in results] == [False, False, True, True]
    bad = stream.async_send_heap(make_heaps(1)[0], substream_index=3)
    with pytest.raises(OSError):
        await bad
    empty = stream.async_send_heaps([], GroupMode.SERIAL)
    with pytest.raises(OSError):
        await empty
    queue.stop()
    receiver = spead2.recv.Stream(spead2.ThreadPool())
    receiver.add_inproc_reader(queue)
    assert decoded(list(receiver)) == {1: 0, 2: 1}


@pytest.mark.asyncio
async def test_values_live_until_sent() -> None:
    """The heap and its buffers may be dropped by the caller right after queueing."""
    queue = spead2.InprocQueue()
    stream = spead2.send.asyncio.InprocStream(spead2.ThreadPool(), [queue], StreamConfig(max_heaps=8))
    futures = [stream.async_send_heap(heap) for heap in make_heaps()]
    gc.collect()
    cancelled = futures.pop()
    cancelled.cancel()  # the heap is still sent; only the future is gone
    await asyncio.gather(*futures)
    await stream.async_flush()
    queue.stop()
    receiver = spead2.recv.Stream(spead2.ThreadPool())
    receiver.add_inproc_reader(queue)
    assert decoded(list(receiver)) == {i + 1: i for i in range(N)}


@pytest.mark.asyncio
async def test_rate_limit_asyncio() -> None:
    stream = spead2.send.asyncio.InprocStream(
        spead2.ThreadPool(), [spead2.InprocQueue()], StreamConfig(rate=2e6, burst_size=4000, max_heaps=8)
    )
    for _ in range(2):  # the second round paces again after the stream went idle
        start = time.monotonic()
        total = sum(await asyncio.gather(*[stream.async_send_heap(h) for h in make_heaps()]))
        assert time.monotonic() - start >= 0.9 * (total - 4000) / 2e6
    # Idle, the loop no longer watches the pacing timer, so it holds nothing of the stream.
    alive = weakref.ref(stream._core)
    del stream
    gc.collect()
    assert alive() is None


@pytest.mark.parametrize("gso", ["1", "0"])
def test_udp_with_and_without_gso(
    thread_pool: spead2.ThreadPool, monkeypatch: pytest.MonkeyPatch, gso: str
) -> None:
    """Full-size packets go out as GSO runs where Linux takes them, one datagram each otherwise;
    the receiver sees the same packets either way."""
    from spead2._kernel import lib

    monkeypatch.setenv("SPEAD2_SEND_GSO", gso)
    receiver, port = udp_receiver(thread_pool)
    stream = spead2.send.UdpStream(thread_pool, [("127.0.0.1", port)], RATE)
    if gso == "0" or not sys.platform.startswith("linux"):
        assert not lib.sp2_sender_gso_active(stream._core.sender)
    for heap in make_heaps():
        stream.send_heap(heap)
    stream.send_heap(make_group_end())
    assert decoded(list(receiver)) == {i + 1: i for i in range(N)}
    assert receiver.stats["packets"] == N * 15 + 1


def test_udp_constructor_forms(thread_pool: spead2.ThreadPool) -> None:
    """Every form of the reference's UdpStream constructor, positional and by keyword."""
    endpoint = [("127.0.0.1", 8888)]
    config = StreamConfig()
    lo = socket.if_nametoindex("lo") if hasattr(socket, "if_nametoindex") else 1
    forms: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        ((thread_pool, endpoint), {}),
        ((thread_pool, endpoint, config, 1 << 16, "127.0.0.1"), {}),
        (
            (thread_pool, endpoint),
            {"config": config, "buffer_size": 1 << 16, "interface_address": "127.0.0.1"},
        ),
        ((thread_pool, endpoint, config, 1 << 16, 4), {}),
        ((thread_pool, endpoint), {"ttl": 4}),
        ((thread_pool, [("239.255.1.2", 8888)], config, 1 << 16, 4, "127.0.0.1"), {}),
        ((thread_pool, [("239.255.1.2", 8888)]), {"ttl": 4, "interface_address": "127.0.0.1"}),
        ((thread_pool, [("ff12::1234", 8888)], config, 1 << 16, 4, lo), {}),
        ((thread_pool, [("ff12::1234", 8888)]), {"ttl": 4, "interface_index": lo}),
        ((thread_pool, "127.0.0.1", 8888), {}),  # (host, port): the older form
    ]
    for args, kwargs in forms:
        stream = spead2.send.UdpStream(*args, **kwargs)
        assert stream.num_substreams == 1, (args, kwargs)
    sock_of = lambda s: s._core.resources[0]  # noqa: E731
    v6 = spead2.send.UdpStream(thread_pool, [("ff12::1234", 8888)], ttl=3, interface_index=lo)
    assert sock_of(v6).getsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF) == lo
    assert sock_of(v6).getsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS) == 3
    v4 = spead2.send.UdpStream(thread_pool, [("239.255.1.2", 8888)], ttl=5, interface_address="127.0.0.1")
    assert sock_of(v4).getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL) == 5
    assert sock_of(v4).getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, 4) == socket.inet_aton(
        "127.0.0.1"
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    assert spead2.send.UdpStream(thread_pool, sock, endpoint * 3, config).num_substreams == 3
    assert spead2.send.UdpStream(thread_pool, socket=sock, endpoints=endpoint).num_substreams == 1
    sock.close()
    with pytest.raises(TypeError, match=r"UdpStream\(\) takes one of"):
        spead2.send.UdpStream(thread_pool, endpoint, config, 1 << 16, 4, 3.5)
    with pytest.raises(ValueError, match="same address family"):
        spead2.send.UdpStream(thread_pool, [("127.0.0.1", 1), ("::1", 1)])


def test_heap_too_large_for_the_flavour(thread_pool: spead2.ThreadPool) -> None:
    group = spead2.send.ItemGroup(flavour=spead2.Flavour(4, 64, 16, 0))  # 64 KiB of address space
    group.add_item(0x10, "big", "", (70000,), np.uint8, value=np.zeros(70000, np.uint8))
    stream = spead2.send.BytesStream(thread_pool)
    with pytest.raises(ValueError, match="heap address width"):
        stream.send_heap(group.get_heap(descriptors="none"))
    assert stream.getvalue() == b""


@pytest.mark.asyncio
async def test_tcp_peer_closes_asyncio() -> None:
    """Heaps queued when the peer resets the connection fail; none of the futures hangs."""
    listener = tcp_listener()
    config = StreamConfig(max_packet_size=9000, max_heaps=64)
    stream = await spead2.send.asyncio.TcpStream.connect(
        spead2.ThreadPool(), [listener.getsockname()], config
    )
    peer, _ = listener.accept()
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    peer.close()
    listener.close()
    futures = [stream.async_send_heap(heap) for heap in make_heaps(50)]
    results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), 30)
    errors = [r for r in results if isinstance(r, OSError)]
    assert errors and all(e.errno in (errno.ECONNRESET, errno.EPIPE) for e in errors)
    with pytest.raises(OSError):
        await stream.async_send_heap(make_heaps(1)[0])


@pytest.mark.asyncio
async def test_flush_from_another_thread() -> None:
    queue = spead2.InprocQueue()
    stream = spead2.send.asyncio.InprocStream(spead2.ThreadPool(), [queue], StreamConfig(max_heaps=8))
    futures = [stream.async_send_heap(heap) for heap in make_heaps()]
    await asyncio.get_running_loop().run_in_executor(None, stream.flush)
    assert all(f.done() for f in futures)


def test_dormant_stream_does_not_catch_up(thread_pool: spead2.ThreadPool) -> None:
    """After a pause (a dormant stream), heaps are paced from then on, not sent at once to make
    up for the pause (a catch-up would run at 10 times the rate here)."""
    config = StreamConfig(rate=2e6, burst_size=4000, burst_rate_ratio=10.0)
    stream = spead2.send.BytesStream(thread_pool, config)
    heaps = make_heaps(3)
    stream.send_heap(heaps[0])
    time.sleep(0.1)  # the pause itself is what is tested: 100 ms of silence at 2 MB/s
    start = time.monotonic()
    total = sum(stream.send_heap(heap) for heap in heaps[1:])
    assert time.monotonic() - start >= 0.9 * (total - 4000) / 2e6
