"""add_udp_reader over real sockets on loopback: every overload on both façades and both loops,
the fast (recvmmsg) and portable (DatagramProtocol) paths, errors, buffers, backpressure."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import random
import socket
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import vectors
from test_vectors_stream import split_packets

import spead2
import spead2.recv
import spead2.recv.asyncio
import spead2.send
from spead2.recv._readers import udp

LOCALHOST = "127.0.0.1"
ON_LINUX = sys.platform.startswith("linux")


@pytest.fixture(params=["native", "portable"])
def udp_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The fast path (loop.add_reader + recvmmsg in C) and the portable one (DatagramProtocol)."""
    if request.param == "native" and not udp.USE_NATIVE:
        pytest.skip("no native UDP drain on this platform")
    monkeypatch.setattr(udp, "USE_NATIVE", request.param == "native")
    return str(request.param)


# ---- packets ----


FLAVOUR = spead2.Flavour(4, 64, 40, 0)


def one_packet(heap: spead2.send.Heap, cnt: int) -> bytes:
    (data,) = spead2.send.PacketGenerator(heap, cnt, 65000)
    return data


def packet(cnt: int, payload: bytes = b"") -> bytes:
    """A single-packet heap (flavour 64-40) with one item 0x1000 holding ``payload``."""
    heap = spead2.send.Heap(FLAVOUR)
    heap.add_item(spead2.Item(0x1000, "", "", (None,), format=[("u", 8)], value=list(payload)))
    return one_packet(heap, cnt)


def stop_packet(cnt: int = 1 << 30) -> bytes:
    heap = spead2.send.Heap(FLAVOUR)
    heap.add_end()
    return one_packet(heap, cnt)


def scenario_packets(name: str = "descriptors_then_data") -> tuple[vectors.Scenario, list[bytes]]:
    for scenario in vectors.load_scenarios():
        if scenario.name == name:
            return scenario, split_packets(scenario.file("bin").read_bytes())
    pytest.skip(vectors.missing_reason())


def check_heaps(scenario: vectors.Scenario, heaps: list[Any]) -> None:
    """The heaps are those the reference decoded from the same datagrams (the .pcap form)."""
    expected = scenario.expected_heaps("pcap")
    assert [h.cnt for h in heaps] == [h["cnt"] for h in expected]
    group = spead2.ItemGroup()
    for heap, want in zip(heaps, expected, strict=True):
        vectors.check_heap(want, heap, group, vectors.update(group, heap, scenario.new_order))


# ---- sockets ----


def free_port(family: int = socket.AF_INET, host: str = LOCALHOST) -> int:
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def add_on_free_port(add: Callable[[int], None], family: int = socket.AF_INET, host: str = LOCALHOST) -> int:
    """Calls ``add(port)`` with a free port (retrying if another process takes it meanwhile)."""
    for _ in range(20):
        port = free_port(family, host)
        try:
            add(port)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                continue
            raise
        return port
    raise AssertionError("no free port")


def send(datagrams: list[bytes], address: tuple[Any, ...], family: int = socket.AF_INET) -> None:
    """Sends on loopback: each sendto has queued the datagram at the receiver when it returns."""
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        for datagram in datagrams:
            s.sendto(datagram, address)


def send_multicast4(datagrams: list[bytes], group: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(LOCALHOST))
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 0)  # never leaves the host
        for datagram in datagrams:
            s.sendto(datagram, (group, port))


def random_group4() -> str:
    return f"239.255.{random.randrange(256)}.{random.randrange(1, 255)}"


def random_group6() -> str:
    return f"ff11::5ead:{random.randrange(1, 0xFFFF):x}"  # interface-local scope


def lo_index() -> int:
    try:
        return socket.if_nametoindex("lo")
    except OSError:
        pytest.skip("no interface named lo")


# ---- every overload, both façades ----

AddFn = Callable[[Any, int], None]


def _add_port(stream: Any, port: int) -> None:
    stream.add_udp_reader(port, bind_hostname=LOCALHOST)


def _add_port_positional(stream: Any, port: int) -> None:
    stream.add_udp_reader(port, 9200, 1 << 20, LOCALHOST)


def _add_any(stream: Any, port: int) -> None:
    stream.add_udp_reader(port)  # all IPv4 addresses


def _add_multicast_unicast(stream: Any, port: int) -> None:
    stream.add_udp_reader(LOCALHOST, port, interface_address=LOCALHOST)


OVERLOADS: dict[str, AddFn] = {
    "port": _add_port,
    "port-positional": _add_port_positional,
    "port-any-address": _add_any,
    "ipv4-unicast-as-interface": _add_multicast_unicast,
}


def run_blocking(thread_pool: spead2.ThreadPool, add: AddFn, **ring: Any) -> None:
    scenario, packets = scenario_packets()
    stream = spead2.recv.Stream(thread_pool, ring_config=spead2.recv.RingStreamConfig(**ring))
    port = add_on_free_port(lambda p: add(stream, p))
    send([*packets, stop_packet()], (LOCALHOST, port))
    heaps = list(stream)
    stream.stop()
    check_heaps(scenario, heaps)
    assert stream.stats["packets"] == len(packets) + 1


async def run_asyncio(add: AddFn) -> None:
    scenario, packets = scenario_packets()
    stream = spead2.recv.asyncio.Stream()
    port = add_on_free_port(lambda p: add(stream, p))
    send([*packets, stop_packet()], (LOCALHOST, port))
    heaps = [heap async for heap in stream]
    stream.stop()
    check_heaps(scenario, heaps)


@pytest.mark.parametrize("overload", list(OVERLOADS))
def test_overload_blocking(thread_pool: spead2.ThreadPool, udp_path: str, overload: str) -> None:
    run_blocking(thread_pool, OVERLOADS[overload])


@pytest.mark.asyncio
@pytest.mark.parametrize("overload", list(OVERLOADS))
async def test_overload_asyncio(udp_path: str, overload: str) -> None:
    await run_asyncio(OVERLOADS[overload])


def test_ipv6_blocking(thread_pool: spead2.ThreadPool, udp_path: str) -> None:
    scenario, packets = scenario_packets()
    stream = spead2.recv.Stream(thread_pool)
    port = add_on_free_port(
        lambda p: stream.add_udp_reader(p, bind_hostname="::1"), family=socket.AF_INET6, host="::1"
    )
    send([*packets, stop_packet()], ("::1", port), socket.AF_INET6)
    heaps = list(stream)
    check_heaps(scenario, heaps)


@pytest.mark.asyncio
async def test_ipv6_asyncio(udp_path: str) -> None:
    scenario, packets = scenario_packets()
    stream = spead2.recv.asyncio.Stream()
    port = add_on_free_port(
        lambda p: stream.add_udp_reader(p, bind_hostname="::1"), family=socket.AF_INET6, host="::1"
    )
    send([*packets, stop_packet()], ("::1", port), socket.AF_INET6)
    check_heaps(scenario, [heap async for heap in stream])


def _user_socket(family: int = socket.AF_INET) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((LOCALHOST if family == socket.AF_INET else "::1", 0))
    return sock


def _check_user_socket_survives(sock: socket.socket) -> None:
    """The caller's socket is still open and untouched after the stream stopped."""
    assert sock.fileno() >= 0
    assert sock.gettimeout() is None  # still blocking
    send([b"still mine"], sock.getsockname(), sock.family)
    assert sock.recv(100) == b"still mine"
    sock.close()


def test_socket_blocking(thread_pool: spead2.ThreadPool, udp_path: str) -> None:
    scenario, packets = scenario_packets()
    sock = _user_socket()
    stream = spead2.recv.Stream(thread_pool)
    stream.add_udp_reader(sock, max_size=9200)
    send([*packets, stop_packet()], sock.getsockname())
    heaps = list(stream)
    stream.stop()
    check_heaps(scenario, heaps)
    _check_user_socket_survives(sock)


@pytest.mark.asyncio
async def test_socket_asyncio(udp_path: str) -> None:
    scenario, packets = scenario_packets()
    sock = _user_socket(socket.AF_INET6)
    stream = spead2.recv.asyncio.Stream()
    stream.add_udp_reader(socket=sock)
    address = sock.getsockname()
    send([*packets, stop_packet()], address, socket.AF_INET6)
    heaps = [heap async for heap in stream]
    stream.stop()
    check_heaps(scenario, heaps)
    if udp_path == "native":  # (the portable path's transport makes the socket non-blocking)
        _check_user_socket_survives(sock)
    sock.close()


def test_socket_caller_closes_theirs(thread_pool: spead2.ThreadPool) -> None:
    sock = _user_socket()
    address = sock.getsockname()
    stream = spead2.recv.Stream(thread_pool)
    stream.add_udp_reader(sock)
    sock.close()
    send([packet(1, b"x"), stop_packet()], address)
    assert [h.cnt for h in stream] == [1]


def test_multicast_ipv4_blocking(thread_pool: spead2.ThreadPool, udp_path: str) -> None:
    scenario, packets = scenario_packets()
    group = random_group4()
    stream = spead2.recv.Stream(thread_pool)
    port = add_on_free_port(lambda p: stream.add_udp_reader(group, p, interface_address=LOCALHOST))
    send_multicast4([*packets, stop_packet()], group, port)
    heaps = list(stream)
    stream.stop()
    check_heaps(scenario, heaps)


@pytest.mark.asyncio
async def test_multicast_ipv4_asyncio(udp_path: str) -> None:
    scenario, packets = scenario_packets()
    group = random_group4()
    stream = spead2.recv.asyncio.Stream()
    port = add_on_free_port(lambda p: stream.add_udp_reader(group, p, 9200, 1 << 20, LOCALHOST))
    send_multicast4([*packets, stop_packet()], group, port)
    heaps = [heap async for heap in stream]
    stream.stop()
    check_heaps(scenario, heaps)


def test_multicast_ipv4_two_streams(thread_pool: spead2.ThreadPool) -> None:
    """Two streams may join the same group and port (SO_REUSEADDR); each gets every datagram."""
    group = random_group4()
    streams = [spead2.recv.Stream(thread_pool) for _ in range(2)]
    port = add_on_free_port(lambda p: streams[0].add_udp_reader(group, p, interface_address=LOCALHOST))
    streams[1].add_udp_reader(multicast_group=group, port=port, interface_address=LOCALHOST)
    send_multicast4([packet(7, b"seven"), stop_packet()], group, port)
    for stream in streams:
        assert [h.cnt for h in stream] == [7]


def igmp6_groups() -> set[tuple[str, str]]:
    try:
        with open("/proc/net/igmp6") as f:
            return {(line.split()[1], line.split()[2]) for line in f if line.strip()}
    except OSError:
        pytest.skip("needs /proc/net/igmp6")


def hex_group(group: str) -> str:
    return socket.inet_pton(socket.AF_INET6, group).hex()


def test_multicast_ipv6_join(thread_pool: spead2.ThreadPool) -> None:
    """The reader joins the group on lo (by index), and leaves it when the stream stops."""
    group = random_group6()
    index = lo_index()
    stream = spead2.recv.Stream(thread_pool)
    add_on_free_port(
        lambda p: stream.add_udp_reader(group, p, interface_index=index), family=socket.AF_INET6, host="::1"
    )
    assert ("lo", hex_group(group)) in igmp6_groups()
    stream.stop()
    assert ("lo", hex_group(group)) not in igmp6_groups()


def _send_multicast6(datagrams: list[bytes], group: str, port: int, index: int) -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 0)
        for datagram in datagrams:
            try:
                s.sendto(datagram, (group, port, 0, index))
            except OSError as exc:
                if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL):
                    pytest.skip(
                        f"this host cannot send IPv6 multicast on lo ({exc.strerror}: lo has no "
                        "MULTICAST flag or ff00::/8 route); the join itself is covered by "
                        "test_multicast_ipv6_join"
                    )
                raise


@pytest.mark.asyncio
async def test_multicast_ipv6_delivery(udp_path: str) -> None:
    group = random_group6()
    index = lo_index()
    stream = spead2.recv.asyncio.Stream()
    port = add_on_free_port(
        lambda p: stream.add_udp_reader(group, p, interface_index=index), family=socket.AF_INET6, host="::1"
    )
    try:
        _send_multicast6([packet(3, b"three"), stop_packet()], group, port, index)
    except BaseException:
        stream.stop()
        raise
    assert [h.cnt async for h in stream] == [3]


def test_bind_hostname_multicast(monkeypatch: pytest.MonkeyPatch, thread_pool: spead2.ThreadPool) -> None:
    """Overload 1 with a multicast bind_hostname binds to the group and joins it on the interface
    the OS picks (not done for real here: that interface is not loopback)."""
    joined: list[tuple[Any, ...]] = []
    monkeypatch.setattr(
        udp, "_join", lambda sock, family, group, iface: joined.append((family, group, iface))
    )
    group = random_group4()
    stream = spead2.recv.Stream(thread_pool)
    add_on_free_port(lambda p: stream.add_udp_reader(p, bind_hostname=group))
    assert joined == [(socket.AF_INET, group, "0.0.0.0")]
    stream.stop()


# ---- behaviour ----


def test_oversized_datagrams_dropped(thread_pool: spead2.ThreadPool, udp_path: str) -> None:
    stream = spead2.recv.Stream(thread_pool)
    small, large = packet(1, b"a" * 10), packet(2, b"b" * 200)
    port = add_on_free_port(lambda p: stream.add_udp_reader(p, max_size=len(small), bind_hostname=LOCALHOST))
    send([small, large, large, stop_packet()], (LOCALHOST, port))
    assert [h.cnt for h in stream] == [1]
    assert stream.stats.drops["too_large"] == 2
    # exactly max_size is accepted
    stream = spead2.recv.Stream(thread_pool)
    port = add_on_free_port(lambda p: stream.add_udp_reader(p, max_size=len(large), bind_hostname=LOCALHOST))
    send([small, large, stop_packet()], (LOCALHOST, port))
    assert [h.cnt for h in stream] == [1, 2]


def test_max_size_zero(thread_pool: spead2.ThreadPool) -> None:
    """max_size=0 (accepted, as by the reference) drops every datagram."""
    stream = spead2.recv.Stream(thread_pool)
    port = add_on_free_port(lambda p: stream.add_udp_reader(p, max_size=0, bind_hostname=LOCALHOST))
    send([packet(1, b"x")], (LOCALHOST, port))
    stream.stop()
    assert list(stream) == []


def test_backpressure_blocking(thread_pool: spead2.ThreadPool, udp_path: str) -> None:
    """More heaps than the ring holds, no consumer while they arrive: the reader stops reading
    the socket (whose buffer holds them) and nothing is lost."""
    n = 200
    stream = spead2.recv.Stream(
        thread_pool, spead2.recv.StreamConfig(explicit_start=True), spead2.recv.RingStreamConfig(heaps=2)
    )
    port = add_on_free_port(lambda p: stream.add_udp_reader(p, bind_hostname=LOCALHOST, buffer_size=1 << 20))
    send(
        [packet(cnt, bytes([cnt % 256]) * 64) for cnt in range(1, n + 1)] + [stop_packet()], (LOCALHOST, port)
    )
    stream.start()
    assert [h.cnt for h in stream] == list(range(1, n + 1))
    assert stream.stats["worker_blocked"] > 0


@pytest.mark.asyncio
async def test_backpressure_asyncio(udp_path: str) -> None:
    n = 200
    stream = spead2.recv.asyncio.Stream(
        None, spead2.recv.StreamConfig(explicit_start=True), spead2.recv.RingStreamConfig(heaps=2)
    )
    port = add_on_free_port(lambda p: stream.add_udp_reader(p, bind_hostname=LOCALHOST, buffer_size=1 << 20))
    send([packet(cnt, b"x" * 64) for cnt in range(1, n + 1)] + [stop_packet()], (LOCALHOST, port))
    stream.start()
    assert [h.cnt async for h in stream] == list(range(1, n + 1))
    if udp_path == "native":  # (the portable path reads one datagram per loop callback, and the
        # consumer on the same loop keeps up with that)
        assert stream.stats["worker_blocked"] > 0


def test_batches(thread_pool: spead2.ThreadPool) -> None:
    """Datagrams waiting in the socket are read as one recvmmsg batch."""
    if not udp.USE_NATIVE:
        pytest.skip("no native UDP drain on this platform")
    stream = spead2.recv.Stream(
        thread_pool, spead2.recv.StreamConfig(explicit_start=True), spead2.recv.RingStreamConfig(heaps=64)
    )
    port = add_on_free_port(lambda p: stream.add_udp_reader(p, bind_hostname=LOCALHOST))
    send([packet(cnt, b"x") for cnt in range(1, 21)] + [stop_packet()], (LOCALHOST, port))
    assert stream.stats["packets"] == 0  # explicit_start: nothing is read before start()
    stream.start()
    assert len(list(stream)) == 20
    assert stream.stats["max_batch"] == 21
    assert stream.stats["batches"] == 1


def test_explicit_start_refuses_late_readers(thread_pool: spead2.ThreadPool) -> None:
    stream = spead2.recv.Stream(thread_pool, spead2.recv.StreamConfig(explicit_start=True))
    add_on_free_port(lambda p: stream.add_udp_reader(p, bind_hostname=LOCALHOST))
    stream.start()
    with pytest.raises(RuntimeError, match="explicit_start"):
        add_on_free_port(lambda p: stream.add_udp_reader(p, bind_hostname=LOCALHOST))
    stream.stop()


def test_stop_closes_socket(thread_pool: spead2.ThreadPool, udp_path: str) -> None:
    stream = spead2.recv.Stream(thread_pool)
    port = add_on_free_port(lambda p: stream.add_udp_reader(p, bind_hostname=LOCALHOST))
    stream.stop()
    if udp_path == "portable":
        # an asyncio transport closes its socket on the loop's next iteration
        for _ in range(2):
            stream._portal.call(lambda: None)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOCALHOST, port))  # free again


@pytest.mark.asyncio
async def test_stop_closes_socket_asyncio(udp_path: str) -> None:
    stream = spead2.recv.asyncio.Stream()
    port = add_on_free_port(lambda p: stream.add_udp_reader(p, bind_hostname=LOCALHOST))
    stream.stop()
    if udp_path == "portable":
        for _ in range(2):
            await asyncio.sleep(0)  # (one loop iteration, not a timed wait)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOCALHOST, port))


def test_several_readers(thread_pool: spead2.ThreadPool) -> None:
    """Readers of several kinds on one stream: UDP on two ports and TCP; the TCP connection's
    end stops the stream."""
    stream = spead2.recv.Stream(thread_pool, ring_config=spead2.recv.RingStreamConfig(heaps=16))
    port1 = add_on_free_port(lambda p: stream.add_udp_reader(p, bind_hostname=LOCALHOST))
    port2 = add_on_free_port(lambda p: stream.add_udp_reader(p, bind_hostname="::1"), socket.AF_INET6, "::1")
    listener = socket.create_server((LOCALHOST, 0))
    address = listener.getsockname()
    stream.add_tcp_reader(listener)
    listener.close()
    send([packet(1, b"one")], (LOCALHOST, port1))
    assert stream.get().cnt == 1
    send([packet(2, b"two")], ("::1", port2), socket.AF_INET6)
    assert stream.get().cnt == 2
    with socket.create_connection(address) as conn:
        conn.sendall(packet(3, b"three"))
    assert [h.cnt for h in stream] == [3]


def test_no_fd_leak(thread_pool: spead2.ThreadPool, udp_path: str) -> None:
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd")
    group = random_group4()

    def cycle() -> None:
        stream = spead2.recv.Stream(thread_pool, spead2.recv.StreamConfig(explicit_start=True))
        port = add_on_free_port(lambda p: stream.add_udp_reader(p, bind_hostname=LOCALHOST))
        sock = _user_socket()
        stream.add_udp_reader(sock)
        sock.close()
        stream.add_udp_reader(group, port, interface_address=LOCALHOST)
        stream.stop()
        stream = spead2.recv.Stream(thread_pool)
        port = add_on_free_port(lambda p: stream.add_udp_reader(p, bind_hostname=LOCALHOST))
        send([packet(1, b"x"), stop_packet()], (LOCALHOST, port))
        assert len(list(stream)) == 1
        stream.stop()

    def settle() -> None:
        # an asyncio transport (portable path) closes its socket on the loop's next iteration
        if udp_path == "portable":
            stream = spead2.recv.Stream(thread_pool)
            for _ in range(3):
                stream._portal.call(lambda: None)
            stream.stop()

    cycle()
    settle()
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(30):
        cycle()
    settle()
    assert len(os.listdir("/proc/self/fd")) == before


# ---- socket buffer ----


def rmem_max() -> int:
    try:
        with open("/proc/sys/net/core/rmem_max") as f:
            return int(f.read())
    except OSError:
        pytest.skip("needs /proc/sys/net/core/rmem_max")


def test_buffer_size_warning(thread_pool: spead2.ThreadPool, caplog: pytest.LogCaptureFixture) -> None:
    if not ON_LINUX:
        pytest.skip("the limit is Linux's")
    limit = rmem_max()
    if limit >= 2**30:
        pytest.skip("rmem_max is too large to exceed")
    stream = spead2.recv.Stream(thread_pool)
    with caplog.at_level(logging.WARNING, logger="spead2"):
        add_on_free_port(lambda p: stream.add_udp_reader(p, buffer_size=limit * 2, bind_hostname=LOCALHOST))
    assert f"requested socket buffer size {limit * 2} but only received {limit}" in caplog.text
    assert "net.core.rmem_max" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="spead2"):
        add_on_free_port(lambda p: stream.add_udp_reader(p, buffer_size=0, bind_hostname=LOCALHOST))
        add_on_free_port(lambda p: stream.add_udp_reader(p, buffer_size=4096, bind_hostname=LOCALHOST))
        add_on_free_port(lambda p: stream.add_udp_reader(p, buffer_size=2**40, bind_hostname=LOCALHOST))
    assert caplog.text.count("requested socket buffer size") == 1  # only the huge one
    stream.stop()


def test_defaults() -> None:
    for cls in (spead2.recv.Stream, spead2.recv.asyncio.Stream):
        assert cls.DEFAULT_UDP_MAX_SIZE == 9200
        assert cls.DEFAULT_UDP_BUFFER_SIZE == 8 * 1024 * 1024


# ---- errors at the call ----


@pytest.fixture
def stream(thread_pool: spead2.ThreadPool) -> Iterator[spead2.recv.Stream]:
    s = spead2.recv.Stream(thread_pool)
    yield s
    s.stop()


@pytest.mark.parametrize(
    "args",
    [(-1,), (65536,), (2**40,), ("239.255.0.1", 70000), ("239.255.0.1", -1)],
    ids=["negative", "65536", "huge", "multicast-70000", "multicast-negative"],
)
def test_port_out_of_range(stream: spead2.recv.Stream, args: tuple[Any, ...]) -> None:
    with pytest.raises(ValueError, match="port must be in the range 0-65535") as info:
        stream.add_udp_reader(*args)
    assert isinstance(info.value, TypeError)  # what the reference raises


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_size": -1}, "max_size"),
        ({"buffer_size": -1}, "buffer_size"),
    ],
)
def test_size_out_of_range(stream: spead2.recv.Stream, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        stream.add_udp_reader(0, bind_hostname=LOCALHOST, **kwargs)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((), {}),
        ((1.5,), {}),
        (("not a port",), {}),
        ((1, 9200, 0, LOCALHOST, 5), {}),
        ((0,), {"interface_address": LOCALHOST}),
        ((0,), {"bogus": 1}),
        ((socket.socket,), {}),
    ],
    ids=["none", "float", "str-alone", "too-many", "port-with-interface", "unknown-kw", "class"],
)
def test_bad_arguments(stream: spead2.recv.Stream, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        stream.add_udp_reader(*args, **kwargs)


def test_bad_socket(stream: spead2.recv.Stream) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp, pytest.raises(TypeError):
        stream.add_udp_reader(tcp)
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.close()
    with pytest.raises(ValueError, match="closed"):
        stream.add_udp_reader(closed)


def test_unknown_host(stream: spead2.recv.Stream, monkeypatch: pytest.MonkeyPatch) -> None:
    # (resolving a made-up name would query a DNS server off this host: fake the failure)
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(socket.gaierror, match=r"cannot resolve 'nowhere\.example'") as info:
        stream.add_udp_reader(0, bind_hostname="nowhere.example")
    assert isinstance(info.value, RuntimeError)  # as the reference raises
    with pytest.raises(OSError, match="cannot resolve"):
        stream.add_udp_reader("nowhere.example", 0, interface_address=LOCALHOST)


def test_bind_errors(stream: spead2.recv.Stream) -> None:
    with pytest.raises(OSError, match=r"cannot bind to 192\.0\.2\.123") as info:
        stream.add_udp_reader(0, bind_hostname="192.0.2.123")  # not an address of this host
    assert info.value.errno == errno.EADDRNOTAVAIL
    assert isinstance(info.value, RuntimeError)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind((LOCALHOST, 0))
        with pytest.raises(OSError, match="Address already in use") as info:
            stream.add_udp_reader(taken.getsockname()[1], bind_hostname=LOCALHOST)
        assert info.value.errno == errno.EADDRINUSE


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("127.0.0.2", 0), {"interface_address": LOCALHOST}, "not multicast and does not match"),
        ((LOCALHOST, 0), {}, "not multicast and does not match"),
        (("ff11::1", 0), {"interface_address": LOCALHOST}, "not an IPv4 address"),
        (("239.255.0.1", 0), {"interface_index": 1}, "not an IPv6 multicast address"),
        (("::1", 0), {"interface_index": 1}, "not an IPv6 multicast address"),
    ],
    ids=[
        "unicast-other",
        "unicast-default-interface",
        "ipv6-group-ipv4-interface",
        "ipv4-group-index",
        "ipv6-unicast",
    ],
)
def test_multicast_errors(
    stream: spead2.recv.Stream, args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        stream.add_udp_reader(*args, **kwargs)


def test_multicast_interface_not_local(stream: spead2.recv.Stream) -> None:
    with pytest.raises(OSError, match="cannot join multicast group") as info:
        stream.add_udp_reader(random_group4(), 0, interface_address="192.0.2.123")
    assert isinstance(info.value, RuntimeError)
