"""spead2_capture and mcdump: pcap frames (written in C), the round trip capture ->
add_udp_pcap_file_reader, and the reference's mcdump command line."""

from __future__ import annotations

import io
import signal
import socket
import struct
import time
from pathlib import Path
from typing import Any

import dpkt
import numpy as np
import pytest
from test_tools_recv import TIMEOUT, ToolProcess, assert_one_line_error, free_port, needs, run_tool

import spead2
import spead2.recv
from spead2.tools import capture, demo


def read_pcap(path: Path) -> list[tuple[float, Any]]:
    with open(path, "rb") as f:
        return [(ts, dpkt.ethernet.Ethernet(buf)) for ts, buf in dpkt.pcap.Reader(f)]


def decode(stream: Any) -> list[tuple[int, dict[str, Any]]]:
    item_group = spead2.ItemGroup()
    return [(heap.cnt, {k: v.value for k, v in item_group.update(heap).items()}) for heap in stream]


def check_demo_heaps(heaps: list[tuple[int, dict[str, Any]]], n: int) -> None:
    assert [cnt for cnt, _ in heaps] == list(range(1, n + 1))
    for cnt, values in heaps:
        for name, value in demo.heap_values(cnt - 1).items():
            np.testing.assert_array_equal(values[name], value)


def internet_checksum(data: bytes) -> int:
    """The Internet checksum of ``data`` (0 when data holds a correct checksum)."""
    if len(data) % 2:
        data += b"\0"
    total = int(np.frombuffer(data, dtype=">u2").sum(dtype=np.uint64))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


# ---------------------------------------------------------------- frames


def test_ipv4_frame() -> None:
    f = io.BytesIO()
    writer = capture.PcapWriter(f)
    writer.write(
        b"hello", (bytes([10, 0, 0, 1]), 1234), (bytes([239, 1, 2, 3]), 7148), 1_700_000_000_123_456_789
    )
    f.seek(0)
    reader = dpkt.pcap.Reader(f)
    assert reader.datalink() == dpkt.pcap.DLT_EN10MB
    ((ts, buf),) = list(reader)
    assert float(ts) == pytest.approx(1_700_000_000.123456789, abs=1e-6)
    f.seek(0)
    assert f.read(4) == bytes.fromhex("4d3cb2a1")  # nanosecond pcap, little-endian
    eth = dpkt.ethernet.Ethernet(buf)
    assert eth.dst == bytes.fromhex("01005e010203")  # the multicast MAC of 239.1.2.3
    ip = eth.data
    assert isinstance(ip, dpkt.ip.IP)
    assert (ip.src, ip.dst, ip.ttl, ip.len) == (bytes([10, 0, 0, 1]), bytes([239, 1, 2, 3]), 64, 20 + 8 + 5)
    # the header checksum verifies: the sum over the header (checksum included) is 0xffff
    assert internet_checksum(bytes(ip)[:20]) == 0
    udp = ip.data
    assert (udp.sport, udp.dport, udp.data) == (1234, 7148, b"hello")


def test_ipv6_frame() -> None:
    f = io.BytesIO()
    writer = capture.PcapWriter(f)
    src = socket.inet_pton(socket.AF_INET6, "::1")
    dst = socket.inet_pton(socket.AF_INET6, "ff15::1")
    writer.write(b"odd", (src, 5000), (dst, 7148), 0)
    f.seek(0)
    ((_, buf),) = list(dpkt.pcap.Reader(f))
    eth = dpkt.ethernet.Ethernet(buf)
    assert eth.dst == bytes.fromhex("333300000001")
    ip6 = eth.data
    assert isinstance(ip6, dpkt.ip6.IP6)
    udp = ip6.data
    assert (udp.sport, udp.dport, udp.data) == (5000, 7148, b"odd")
    pseudo = src + dst + struct.pack("!II", 8 + 3, socket.IPPROTO_UDP)
    assert internet_checksum(pseudo + bytes(udp)) == 0  # the UDP checksum (mandatory over IPv6) verifies


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [("8888", "", 8888), ("239.1.2.3:7148", "239.1.2.3", 7148), ("[::1]:9", "::1", 9)],
)
def test_parse_endpoint(text: str, host: str, port: int) -> None:
    endpoint = capture.parse_endpoint(text)
    assert (endpoint.host, endpoint.port) == (host, port)
    assert (endpoint.group is not None) == host.startswith("239")


# ---------------------------------------------------------------- errors


def test_bad_arguments() -> None:
    assert_one_line_error(run_tool("spead2.tools.capture", "8888"), 2, "the following arguments are required")
    assert_one_line_error(
        run_tool("spead2.tools.capture", "-o", "x.pcap", "nonsense"), 2, "not PORT, HOST:PORT"
    )
    assert_one_line_error(
        run_tool("spead2.tools.capture", "-o", "x.pcap", "-c", "0", "1"), 2, "must be positive"
    )


def test_unreachable_address(tmp_path: Path) -> None:
    proc = run_tool("spead2.tools.capture", "-o", str(tmp_path / "x.pcap"), f"192.0.2.1:{free_port()}")
    assert_one_line_error(proc, 1, "cannot receive from 192.0.2.1:")


def test_unwritable_output(tmp_path: Path) -> None:
    proc = run_tool(
        "spead2.tools.capture", "-o", str(tmp_path / "no" / "such" / "dir.pcap"), f"127.0.0.1:{free_port()}"
    )
    assert_one_line_error(proc, 1, "cannot write")


# ---------------------------------------------------------------- capturing


def start_capture(path: Path, *args: str) -> ToolProcess:
    tool = ToolProcess("spead2.tools.capture", ["-o", str(path), *args])
    tool.wait_for_stderr("capturing UDP on")
    return tool


def test_round_trip(tmp_path: Path, thread_pool: spead2.ThreadPool) -> None:
    """Capture the demo stream, check every frame, and decode the file back into the same heaps."""
    port = free_port()
    path = tmp_path / "demo.pcap"
    packets = demo.packets(6)
    tool = start_capture(path, "-c", str(len(packets)), f"127.0.0.1:{port}")
    sender = demo.DemoSender(port, n_heaps=6, rate=200)
    sender.run()
    status, _, err = tool.finish()
    assert status == 0, err
    assert f"{len(packets)} packets" in err and "stopped by count" in err
    frames = read_pcap(path)
    assert [bytes(eth.data.data.data) for _, eth in frames] == packets
    for _, eth in frames:
        assert (eth.data.src, eth.data.dst) == (bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
        assert eth.data.data.dport == port
    stamps = [float(ts) for ts, _ in frames]
    assert stamps == sorted(stamps) and abs(stamps[0] - time.time()) < 600

    # The payloads decode to the demo heaps (as datagrams, through an in-process queue)...
    queue = spead2.InprocQueue()
    for _, eth in frames:
        queue.add_packet(bytes(eth.data.data.data))
    queue.stop()
    stream = spead2.recv.Stream(thread_pool)
    stream.add_inproc_reader(queue)
    check_demo_heaps(decode(stream), 6)
    # ...and the file itself is read by add_udp_pcap_file_reader.
    if not hasattr(spead2.recv.Stream, "add_udp_pcap_file_reader"):
        pytest.skip("Stream.add_udp_pcap_file_reader is not implemented in this build")
    stream = spead2.recv.Stream(thread_pool)
    stream.add_udp_pcap_file_reader(str(path))
    check_demo_heaps(decode(stream), 6)
    assert stream.stats["packets"] == len(packets)


@needs("add_udp_pcap_file_reader")
def test_two_endpoints_and_filter(tmp_path: Path, thread_pool: spead2.ThreadPool) -> None:
    """Two streams into one file; a pcap filter separates them again."""
    ports = [free_port(), free_port()]
    path = tmp_path / "two.pcap"
    n = len(demo.packets(3))
    tool = start_capture(path, "-c", str(2 * n), *(f"127.0.0.1:{p}" for p in ports))
    for port in ports:
        demo.DemoSender(port, n_heaps=3, rate=200).run()
    status, _, err = tool.finish()
    assert status == 0, err
    for port in ports:
        assert f"127.0.0.1:{port}: {n} packets" in err
    pytest.importorskip("pcapy")
    for port in ports:
        stream = spead2.recv.Stream(thread_pool)
        stream.add_udp_pcap_file_reader(str(path), f"udp dst port {port}")
        check_demo_heaps(decode(stream), 3)


def test_ctrl_c_and_duration(tmp_path: Path) -> None:
    """Ctrl-C (and --duration) end the capture with a complete file."""
    port = free_port()
    path = tmp_path / "int.pcap"
    tool = start_capture(path, "--interval", "0.05", f"127.0.0.1:{port}")
    n = len(demo.packets(2, stop=False))
    demo.DemoSender(port, n_heaps=2, rate=200, stop=False).run()
    tool.wait_for_stderr(f"| {n} packets")  # the live count has seen them all
    tool.proc.send_signal(signal.SIGINT)
    status, _, err = tool.finish()
    assert status == 0, err
    assert "stopped by signal" in err
    assert len(read_pcap(path)) == n

    path = tmp_path / "time.pcap"
    start = time.monotonic()
    proc = run_tool("spead2.tools.capture", "-q", "-t", "0.3", "-o", str(path), f"127.0.0.1:{free_port()}")
    assert proc.returncode == 0 and "stopped by time" in proc.stderr
    assert 0.3 <= time.monotonic() - start < TIMEOUT
    assert read_pcap(path) == []


def test_ipv6_loopback(tmp_path: Path) -> None:
    """An [::1]:PORT endpoint: IPv6 frames with the real addresses and a valid UDP checksum."""
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
        probe.bind(("::1", 0))
        port = probe.getsockname()[1]
    path = tmp_path / "v6.pcap"
    packets = demo.packets(2)
    tool = start_capture(path, "-c", str(len(packets)), f"[::1]:{port}")
    demo.DemoSender(port, "::1", n_heaps=2, rate=200).run()
    status, _, err = tool.finish()
    assert status == 0, err
    frames = read_pcap(path)
    assert [bytes(eth.data.data.data) for _, eth in frames] == packets
    loopback = socket.inet_pton(socket.AF_INET6, "::1")
    for _, eth in frames:
        ip6 = eth.data
        assert isinstance(ip6, dpkt.ip6.IP6) and ip6.src == ip6.dst == loopback
        udp = bytes(ip6.data)
        pseudo = loopback + loopback + struct.pack("!II", len(udp), socket.IPPROTO_UDP)
        assert internet_checksum(pseudo + udp) == 0


def test_frame_rejects_mixed_families() -> None:
    writer = capture.PcapWriter(io.BytesIO())
    with pytest.raises(ValueError, match="different families"):
        writer.write(b"x", (bytes(4), 1), (bytes(16), 2), 0)


# ---------------------------------------------------------------- mcdump's command line


def test_mcdump_arguments() -> None:
    args = capture.parse_args(
        ["-i", "127.0.0.1", "-N", "0", "-D", "1", "-D", "2", "--count", "5", "-", "239.1.2.3:7148"],
        capture.MCDUMP_PROG,
    )
    assert (args.interface, args.output, args.count, args.affinity) == ("127.0.0.1", "-", 5, 0)
    assert args.io == "buffered"  # mcdump's default, as the reference's
    assert args.disk_affinity == [1, 2] and args.endpoint[0].port == 7148
    with pytest.raises(SystemExit):
        capture.parse_args(["out.pcap", "239.1.2.3:7148"], capture.MCDUMP_PROG)  # -i is required


def test_mcdump_counts_without_a_file(tmp_path: Path) -> None:
    """mcdump -i ADDR - HOST:PORT: counts packets, writes nothing (the reference's '-')."""
    port = free_port()
    n = len(demo.packets(3))
    tool = ToolProcess(
        "spead2.tools.mcdump",
        ["-i", "127.0.0.1", "--count", str(n), "-", f"127.0.0.1:{port}"],
        cwd=tmp_path,
    )
    tool.wait_for_stderr("capturing UDP on")
    demo.DemoSender(port, n_heaps=3, rate=200).run()
    status, _, err = tool.finish()
    assert status == 0, err
    assert f"mcdump: {n} packets" in err and "stopped by count" in err
    assert list(tmp_path.iterdir()) == []


def test_direct_io(tmp_path: Path) -> None:
    """--direct-io: whole blocks through O_DIRECT, the tail after it is cleared; the file is whole."""
    port = free_port()
    path = tmp_path / "direct.pcap"
    packets = demo.packets(5)
    tool = ToolProcess(
        "spead2.tools.capture", ["-o", str(path), "--direct-io", "-c", str(len(packets)), f"127.0.0.1:{port}"]
    )
    try:
        tool.wait_for_stderr("capturing UDP on")
    except AssertionError as exc:
        if "Invalid argument" in str(exc):
            pytest.skip(f"this filesystem refuses O_DIRECT: {exc}")
        raise
    demo.DemoSender(port, n_heaps=5, rate=200).run()
    status, _, err = tool.finish()
    assert status == 0, err
    assert [bytes(eth.data.data.data) for _, eth in read_pcap(path)] == packets


def test_io_modes(tmp_path: Path) -> None:
    """spead2_capture takes O_DIRECT where the filesystem does, unless --buffered-io."""
    assert capture.parse_args(["-o", "x", "1"]).io == "auto"
    assert capture.parse_args(["-o", "x", "--direct-io", "1"]).io == "direct"
    assert capture.parse_args(["-o", "x", "--buffered-io", "1"]).io == "buffered"
    with pytest.raises(SystemExit):
        capture.parse_args(["-o", "x", "--direct-io", "--buffered-io", "1"])
    for mode, may_be_direct in (("auto", True), ("buffered", False)):
        args = capture.parse_args(
            ["-o", str(tmp_path / f"{mode}.pcap"), f"--{mode}-io" if mode != "auto" else "-q", "1"]
        )
        session = capture.CaptureSession(args, None)
        try:
            session._open_output()
            assert session.direct is False or may_be_direct
        finally:
            session.teardown()


def test_capture_session_parts(tmp_path: Path) -> None:
    """The parts of a run, alone: setup (sockets, file), poll (ends by count), summary, teardown."""
    port = free_port()
    path = tmp_path / "parts.pcap"
    args = capture.parse_args(["-q", "-c", "3", "-o", str(path), f"127.0.0.1:{port}"])
    session = capture.CaptureSession(args, None)
    try:
        session.setup()
        session.announce()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for i in range(5):
                sender.sendto(bytes([i]) * 10, ("127.0.0.1", port))
        assert session.poll([], interval=5) == "count"
        assert session.counts() == {"packets": 3, "bytes": 30}
        session.close_output()
        lines = session.summary(1.0, "count")
        assert lines[0] == f"spead2_capture: 3 packets (30 B) in 1.00 s to {path}"
        assert lines[-1] == "  stopped by count"
    finally:
        session.teardown()
    assert [bytes(eth.data.data.data) for _, eth in read_pcap(path)] == [bytes([i]) * 10 for i in range(3)]
    args = capture.parse_args(["-q", "-t", "0.05", "-o", "-", f"127.0.0.1:{free_port()}"])
    session = capture.CaptureSession(args, None)
    try:
        session.setup()
        session.announce()
        assert session.poll([], interval=5) == "time"
        assert session.poll([2], interval=5) == "signal"
    finally:
        session.teardown()
