"""add_udp_pcap_file_reader: every .pcap interop vector, the other capture formats and link types
(written here from the vectors' frames), filters, and bad files."""

from __future__ import annotations

import glob
import logging
import operator
import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dpkt
import numpy as np
import pytest
import vectors
from conftest import LOOP_FACTORIES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_vectors_stream import check_stream_results, run_asyncio, run_blocking

import spead2
import spead2.recv
import spead2.recv.asyncio
from spead2._kernel import ffi, lib
from spead2.recv._heap import wrap_heap
from spead2.recv._readers import _bpf
from spead2.recv._readers import pcap as pcap_reader


def pcap_params() -> list[Any]:
    scenarios = [s for s in vectors.load_scenarios() if "pcap" in s.forms]
    if not scenarios:
        return [pytest.param(None, marks=pytest.mark.skip(reason=vectors.missing_reason()), id="no-vectors")]
    return [pytest.param(s, id=s.name) for s in scenarios]


def scenario_named(name: str) -> vectors.Scenario:
    for scenario in vectors.load_scenarios():
        if scenario.name == name:
            return scenario
    pytest.skip(vectors.missing_reason())


# ---- capture files, written by hand (both byte orders, every field under control) ----


def read_pcap(path: Path) -> tuple[int, list[tuple[int, bytes]]]:
    """(link type, [(wire length, captured bytes)]) of a little-endian classic pcap."""
    data = path.read_bytes()
    magic, _, _, _, _, _, linktype = struct.unpack_from("<IHHiIII", data)
    assert magic == 0xA1B2C3D4
    pos, frames = 24, []
    while pos < len(data):
        _, _, caplen, wirelen = struct.unpack_from("<IIII", data, pos)
        frames.append((wirelen, data[pos + 16 : pos + 16 + caplen]))
        pos += 16 + caplen
    return linktype, frames


def write_pcap(
    path: Path, linktype: int, frames: list[tuple[int, bytes]], *, endian: str = "<", nano: bool = False
) -> Path:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)]
    for i, (wirelen, frame) in enumerate(frames):
        out.append(struct.pack(endian + "IIII", 1000 + i, 0, len(frame), wirelen) + frame)
    path.write_bytes(b"".join(out))
    return path


def _block(endian: str, block_type: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    length = len(body) + 12
    return struct.pack(endian + "II", block_type, length) + body + struct.pack(endian + "I", length)


def write_pcapng(
    path: Path, interfaces: list[int], frames: list[tuple[int, int, bytes]], *, endian: str = "<"
) -> Path:
    """frames: (interface, wire length, captured bytes), as enhanced packet blocks."""
    shb = _block(endian, 0x0A0D0D0A, struct.pack(endian + "IHHq", 0x1A2B3C4D, 1, 0, -1))
    idbs = [_block(endian, 1, struct.pack(endian + "HHI", lt, 0, 65535)) for lt in interfaces]
    epbs = [
        _block(endian, 6, struct.pack(endian + "IIIII", iface, 0, i, len(frame), wirelen) + frame)
        for i, (iface, wirelen, frame) in enumerate(frames)
    ]
    path.write_bytes(shb + b"".join(idbs) + b"".join(epbs))
    return path


def ethernet_to_sll2(frame: bytes) -> bytes:
    return struct.pack(">HHIHBB8s", struct.unpack_from(">H", frame, 12)[0], 0, 1, 772, 0, 6, b"") + frame[14:]


def ethernet_to_vlan(frame: bytes) -> bytes:
    return frame[:12] + struct.pack(">HH", 0x8100, 42) + frame[12:]


def ethernet_to_raw(frame: bytes) -> bytes:
    return frame[14:]


def ethernet_to_null(frame: bytes) -> bytes:
    family = 2 if struct.unpack_from(">H", frame, 12)[0] == 0x0800 else 30
    return struct.pack("<I", family) + frame[14:]


def udp_frame(payload: bytes, dport: int = 8888, sport: int = 40000) -> bytes:
    udp = dpkt.udp.UDP(sport=sport, dport=dport, ulen=8 + len(payload), data=payload)
    ip = dpkt.ip.IP(src=b"\x7f\0\0\x01", dst=b"\x7f\0\0\x01", p=dpkt.ip.IP_PROTO_UDP, data=udp)
    eth = dpkt.ethernet.Ethernet(src=b"\0" * 6, dst=b"\0" * 6, type=dpkt.ethernet.ETH_TYPE_IP, data=ip)
    return bytes(eth)


def collect(stream: Any) -> tuple[list[Any], Any]:
    heaps = list(stream)
    stream.stop()
    return heaps, stream.stats


def replay(
    thread_pool: spead2.ThreadPool, path: Any, filter: str = "", **config: Any
) -> tuple[list[Any], Any]:
    stream = spead2.recv.Stream(thread_pool, spead2.recv.StreamConfig(**config))
    stream.add_udp_pcap_file_reader(path, filter)
    return collect(stream)


# ---- the interop vectors ----


@pytest.fixture(scope="module", params=list(LOOP_FACTORIES))
def module_pool(request: pytest.FixtureRequest) -> Iterator[spead2.ThreadPool]:
    """One ThreadPool per loop kind for the many vector cases (a pool per test costs more than
    the test)."""
    pool = spead2.ThreadPool(loop_factory=LOOP_FACTORIES[request.param])
    yield pool
    pool.stop()


def add_pcap_str(stream: Any, scenario: vectors.Scenario, form: str) -> None:
    stream.add_udp_pcap_file_reader(str(scenario.file(form)))


def add_pcap_path(stream: Any, scenario: vectors.Scenario, form: str) -> None:
    stream.add_udp_pcap_file_reader(scenario.file(form))  # a pathlib.Path


@pytest.mark.parametrize("scenario", pcap_params())
def test_vectors_blocking(module_pool: spead2.ThreadPool, scenario: vectors.Scenario) -> None:
    run_blocking(module_pool, scenario, "pcap", add_pcap_str)


@pytest.mark.asyncio
@pytest.mark.parametrize("scenario", pcap_params())
async def test_vectors_asyncio(scenario: vectors.Scenario) -> None:
    await run_asyncio(scenario, "pcap", add_pcap_path)


# ---- the same frames in other formats and link types give the same results ----

Convert = Callable[[Path, vectors.Scenario], Path]


def _as_pcap(endian: str, nano: bool) -> Convert:
    def convert(tmp: Path, scenario: vectors.Scenario) -> Path:
        linktype, frames = read_pcap(scenario.file("pcap"))
        return write_pcap(tmp / "x.pcap", linktype, frames, endian=endian, nano=nano)

    return convert


def _as_pcapng(endian: str) -> Convert:
    def convert(tmp: Path, scenario: vectors.Scenario) -> Path:
        linktype, frames = read_pcap(scenario.file("pcap"))
        # an unused interface first, so that the packets name interface 1
        return write_pcapng(tmp / "x.pcapng", [147, linktype], [(1, w, f) for w, f in frames], endian=endian)

    return convert


def _as_link(linktype: int, fn: Callable[[bytes], bytes]) -> Convert:
    def convert(tmp: Path, scenario: vectors.Scenario) -> Path:
        source_link, frames = read_pcap(scenario.file("pcap"))
        assert source_link == 1
        return write_pcap(tmp / "x.pcap", linktype, [(w - len(f) + len(fn(f)), fn(f)) for w, f in frames])

    return convert


def _dpkt_pcapng(tmp: Path, scenario: vectors.Scenario) -> Path:
    linktype, frames = read_pcap(scenario.file("pcap"))
    path = tmp / "dpkt.pcapng"
    with path.open("wb") as f:
        writer = dpkt.pcapng.Writer(f, linktype=linktype)
        for i, (_, frame) in enumerate(frames):
            writer.writepkt(frame, ts=1000 + i)
    return path


CONVERSIONS: dict[str, Convert] = {
    "pcap-big-endian": _as_pcap(">", False),
    "pcap-nanosecond": _as_pcap("<", True),
    "pcapng": _as_pcapng("<"),
    "pcapng-big-endian": _as_pcapng(">"),
    "linux-sll2": _as_link(276, ethernet_to_sll2),
    "ethernet-vlan": _as_link(1, ethernet_to_vlan),
    "raw-ip": _as_link(101, ethernet_to_raw),
    "bsd-null": _as_link(0, ethernet_to_null),
}


@pytest.mark.parametrize("conversion", list(CONVERSIONS))
@pytest.mark.parametrize("name", ["pcap_non_udp_frames", "malformed_mixed", "lost_packets", "pcap_linux_sll"])
def test_formats(module_pool: spead2.ThreadPool, tmp_path: Path, conversion: str, name: str) -> None:
    scenario = scenario_named(name)
    if name == "pcap_linux_sll" and conversion not in ("pcap-big-endian", "pcap-nanosecond", "pcapng"):
        pytest.skip("the link conversions start from Ethernet frames")
    path = CONVERSIONS[conversion](tmp_path, scenario)
    stream = spead2.recv.Stream(module_pool, *_configs(scenario))
    stream.add_udp_pcap_file_reader(path)
    heaps, stats = collect(stream)
    check_stream_results(scenario, "pcap", heaps, stats)


def test_dpkt_pcapng(thread_pool: spead2.ThreadPool, tmp_path: Path) -> None:
    """A pcapng written by another writer (dpkt's)."""
    scenario = scenario_named("lost_packets")
    stream = spead2.recv.Stream(thread_pool, *_configs(scenario))
    stream.add_udp_pcap_file_reader(_dpkt_pcapng(tmp_path, scenario))
    heaps, stats = collect(stream)
    check_stream_results(scenario, "pcap", heaps, stats)


def _configs(scenario: vectors.Scenario) -> tuple[spead2.recv.StreamConfig, spead2.recv.RingStreamConfig]:
    return spead2.recv.StreamConfig(**scenario.stream_config), spead2.recv.RingStreamConfig(
        **scenario.ring_config
    )


def test_ip_options_and_ethernet_padding(thread_pool: spead2.ThreadPool, tmp_path: Path) -> None:
    """The datagram is where the IPv4 header length says, and as long as the UDP length says
    (not the frame, which Ethernet pads to 60 bytes)."""
    _, frames = read_pcap(scenario_named("lost_packets").file("pcap"))
    out = []
    for _, frame in frames:
        ip = dpkt.ethernet.Ethernet(frame).data
        ip.opts = b"\x01\x01\x01\x00"  # four NOPs... and an end of options
        ip.hl = 6
        ip.len = 0  # recomputed
        ip.sum = 0
        padded = frame[:14] + bytes(ip) + b"\0" * 7
        out.append((len(padded), padded))
    heaps, _ = replay(thread_pool, write_pcap(tmp_path / "x.pcap", 1, out), allow_out_of_order=True)
    heaps_plain, _ = replay(thread_pool, scenario_named("lost_packets").file("pcap"), allow_out_of_order=True)
    assert [h.cnt for h in heaps] == [h.cnt for h in heaps_plain]


# ---- filters ----


def two_port_capture(tmp: Path, pcapng: bool = False) -> tuple[Path, list[int], list[int]]:
    """Single-packet heaps 1..10: odd cnts to port 8888, even ones to port 9999."""
    frames = []
    for cnt in range(1, 11):
        payload = single_packet_heap(cnt)
        frames.append(udp_frame(payload, dport=8888 if cnt % 2 else 9999))
    if pcapng:
        path = write_pcapng(tmp / "ports.pcapng", [1], [(0, len(f), f) for f in frames])
    else:
        path = write_pcap(tmp / "ports.pcap", 1, [(len(f), f) for f in frames])
    return path, [c for c in range(1, 11) if c % 2], [c for c in range(1, 11) if not c % 2]


def single_packet_heap(cnt: int, payload: bytes = b"abcdefgh") -> bytes:
    """A heap of one packet carrying one item (id 0x1000) with ``payload``."""
    pointers = [
        (0x80 << 56) | (1 << 40) | cnt,  # HEAP_CNT
        (0x80 << 56) | (2 << 40) | len(payload),  # HEAP_LENGTH
        (0x80 << 56) | (3 << 40) | 0,  # PAYLOAD_OFFSET
        (0x80 << 56) | (4 << 40) | len(payload),  # PAYLOAD_LENGTH
        (0x1000 << 40) | 0,  # item 0x1000 at address 0
    ]
    header = struct.pack(">BBBBHH", 0x53, 4, 3, 5, 0, len(pointers))
    return header + b"".join(struct.pack(">Q", p) for p in pointers) + payload


needs_compiler = pytest.mark.skipif(
    _bpf.find_compiler() is None, reason="no pcap filter compiler (pip install pcapy-ng)"
)


@needs_compiler
@pytest.mark.parametrize("pcapng", [False, True], ids=["pcap", "pcapng"])
def test_filter_selects_port(thread_pool: spead2.ThreadPool, tmp_path: Path, pcapng: bool) -> None:
    path, odd, even = two_port_capture(tmp_path, pcapng)
    assert [h.cnt for h in replay(thread_pool, path, "udp dst port 8888")[0]] == odd
    assert [h.cnt for h in replay(thread_pool, path, "udp port 9999")[0]] == even
    assert [h.cnt for h in replay(thread_pool, path, "")[0]] == sorted(odd + even)
    assert replay(thread_pool, path, "tcp")[0] == []


@needs_compiler
def test_filter_linux_sll(thread_pool: spead2.ThreadPool) -> None:
    """The filter is compiled for the file's link type."""
    path = scenario_named("pcap_linux_sll").file("pcap")
    assert len(replay(thread_pool, path, "udp dst port 8888")[0]) == 2
    assert replay(thread_pool, path, "udp dst port 8889")[0] == []


@needs_compiler
@pytest.mark.asyncio
async def test_filter_asyncio(tmp_path: Path) -> None:
    path, odd, _ = two_port_capture(tmp_path)
    stream = spead2.recv.asyncio.Stream()
    stream.add_udp_pcap_file_reader(path, filter="dst port 8888")
    assert [h.cnt async for h in stream] == odd


@needs_compiler
@pytest.mark.parametrize("expression", ["udp port", "garbage (((", "port 99999999"])
def test_bad_filter(thread_pool: spead2.ThreadPool, tmp_path: Path, expression: str) -> None:
    path, _, _ = two_port_capture(tmp_path)
    stream = spead2.recv.Stream(thread_pool)
    with pytest.raises(ValueError, match="invalid pcap filter") as info:
        stream.add_udp_pcap_file_reader(path, expression)
    assert isinstance(info.value, RuntimeError)  # as the reference raises
    stream.stop()


def _bundled_libpcap() -> str | None:
    try:
        import pcapy
    except ImportError:
        return None
    libs = Path(pcapy.__file__).parent / "pcapy_ng.libs"
    found = sorted(glob.glob(str(libs / "libpcap*.so*")))
    return found[0] if found else None


def test_filter_through_libpcap(
    monkeypatch: pytest.MonkeyPatch, thread_pool: spead2.ThreadPool, tmp_path: Path
) -> None:
    """Without pcapy-ng, libpcap itself compiles the filter (here the one pcapy-ng bundles)."""
    library = _bundled_libpcap()
    if library is None:
        pytest.skip("no libpcap library to load (pcapy-ng's bundled one is absent)")
    compiler = _bpf._libpcap_compiler(library)
    assert compiler is not None
    monkeypatch.setattr(_bpf, "find_compiler", lambda: compiler)
    path, odd, _ = two_port_capture(tmp_path)
    assert [h.cnt for h in replay(thread_pool, path, "udp dst port 8888")[0]] == odd
    with pytest.raises(ValueError, match="syntax error"):
        compiler(1, 65535, "udp port")


def test_no_filter_compiler(
    monkeypatch: pytest.MonkeyPatch, thread_pool: spead2.ThreadPool, tmp_path: Path
) -> None:
    monkeypatch.setattr(_bpf, "find_compiler", lambda: None)
    path, odd, even = two_port_capture(tmp_path)
    assert [h.cnt for h in replay(thread_pool, path)[0]] == sorted(odd + even)
    stream = spead2.recv.Stream(thread_pool)
    with pytest.raises(RuntimeError, match=r"pip install .*pcap-filter"):
        stream.add_udp_pcap_file_reader(path, "udp port 8888")
    stream.stop()


# ---- bad files: errors at the call, with the path ----


def test_missing_file(thread_pool: spead2.ThreadPool, tmp_path: Path) -> None:
    stream = spead2.recv.Stream(thread_pool)
    path = tmp_path / "nonexistent.pcap"
    with pytest.raises(FileNotFoundError, match=r"nonexistent\.pcap") as info:
        stream.add_udp_pcap_file_reader(path)
    assert isinstance(info.value, RuntimeError)
    with pytest.raises(OSError, match=str(tmp_path)):
        stream.add_udp_pcap_file_reader(str(tmp_path))  # a directory
    stream.stop()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b"root:x:0:0:root:/root:/bin/bash\n", "unknown file format"),
        (b"\xd4\xc3\xb2\xa1\x02\x00", "truncated pcap file header"),
        (struct.pack("<IHHiIII", 0xA1B2C3D4, 1, 0, 0, 0, 65535, 1), "unsupported pcap version"),
        (struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 105), "link type 105"),
        (struct.pack("<II", 0x0A0D0D0A, 28) + b"\0" * 20, "corrupt pcapng section header"),
    ],
    ids=["empty", "text", "short-header", "version", "linktype", "pcapng"],
)
def test_corrupt_file(thread_pool: spead2.ThreadPool, tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.pcap"
    path.write_bytes(content)
    stream = spead2.recv.Stream(thread_pool)
    with pytest.raises(ValueError, match=message) as info:
        stream.add_udp_pcap_file_reader(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, RuntimeError)
    stream.stop()


@pytest.mark.parametrize("cut", ["record-header", "record", "huge-caplen"])
def test_truncated_file(
    thread_pool: spead2.ThreadPool, tmp_path: Path, caplog: pytest.LogCaptureFixture, cut: str
) -> None:
    """Everything before the damage is delivered; a warning says where reading stopped."""
    path, _, _ = two_port_capture(tmp_path)
    data = bytearray(path.read_bytes())
    first = 24 + 16 + struct.unpack_from("<I", data, 24 + 8)[0]  # offset of the second record
    second = first + 16 + struct.unpack_from("<I", data, first + 8)[0]
    if cut == "record-header":
        data = data[: second + 7]
    elif cut == "record":
        data = data[: second + 20]
    else:
        struct.pack_into("<I", data, second + 8, 0x7FFFFFFF)
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="spead2"):
        heaps, _ = replay(thread_pool, path)
    assert [h.cnt for h in heaps] == [1, 2]
    assert f"at byte {second}" in caplog.text
    assert str(path) in caplog.text


@pytest.mark.parametrize("window", [64, 1000, 4096])
@pytest.mark.parametrize("name", ["lost_packets", "jumbo_packets", "pcap_non_udp_frames"])
def test_small_windows(
    monkeypatch: pytest.MonkeyPatch, module_pool: spead2.ThreadPool, tmp_path: Path, window: int, name: str
) -> None:
    """The file read a little at a time (records across windows, records larger than a window):
    the same results, classic pcap and pcapng."""
    monkeypatch.setattr(pcap_reader, "WINDOW", window)
    scenario = scenario_named(name)
    for path in (scenario.file("pcap"), CONVERSIONS["pcapng-big-endian"](tmp_path, scenario)):
        stream = spead2.recv.Stream(module_pool, *_configs(scenario))
        stream.add_udp_pcap_file_reader(path)
        heaps, stats = collect(stream)
        check_stream_results(scenario, "pcap", heaps, stats)


def test_file_truncated_during_replay(
    monkeypatch: pytest.MonkeyPatch,
    thread_pool: spead2.ThreadPool,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A capture cut short while it is replayed (e.g. rotated by its writer) just ends early."""
    monkeypatch.setattr(pcap_reader, "WINDOW", 4096)
    frames = [udp_frame(single_packet_heap(cnt, b"p" * 500)) for cnt in range(1, 201)]
    path = write_pcap(tmp_path / "shrinks.pcap", 1, [(len(f), f) for f in frames])
    stream = spead2.recv.Stream(thread_pool, spead2.recv.StreamConfig(explicit_start=True))
    stream.add_udp_pcap_file_reader(path)  # reads the first window
    os.truncate(path, 10000)
    with caplog.at_level(logging.WARNING, logger="spead2"):
        stream.start()
        cnts = [h.cnt for h in stream]
    assert 0 < len(cnts) < 200
    assert cnts == list(range(1, len(cnts) + 1))
    assert "truncated record" in caplog.text


def test_explicit_start(thread_pool: spead2.ThreadPool, tmp_path: Path) -> None:
    path, odd, even = two_port_capture(tmp_path)
    stream = spead2.recv.Stream(thread_pool, spead2.recv.StreamConfig(explicit_start=True))
    stream.add_udp_pcap_file_reader(path)
    with pytest.raises(spead2.Empty):
        stream.get_nowait()
    assert stream.stats["packets"] == 0
    stream.start()
    assert sorted(h.cnt for h in stream) == sorted(odd + even)
    with pytest.raises(RuntimeError):
        stream.add_udp_pcap_file_reader(path)


def test_many_heaps_backpressure(thread_pool: spead2.ThreadPool, tmp_path: Path) -> None:
    """More heaps than the ring holds: the reader pauses and resumes, and nothing is lost."""
    frames = [udp_frame(single_packet_heap(cnt, bytes([cnt % 256]) * 100)) for cnt in range(1, 3001)]
    path = write_pcap(tmp_path / "many.pcap", 1, [(len(f), f) for f in frames])
    stream = spead2.recv.Stream(thread_pool, ring_config=spead2.recv.RingStreamConfig(heaps=2))
    stream.add_udp_pcap_file_reader(path)
    cnts = []
    for heap in stream:
        cnts.append(heap.cnt)
        item = heap.get_items()[0]
        assert bytes(np.asarray(item)[:1]) == bytes([heap.cnt % 256])
    stream.stop()
    assert cnts == list(range(1, 3001))
    assert stream.stats["worker_blocked"] > 0


def test_no_fd_leak(thread_pool: spead2.ThreadPool, tmp_path: Path) -> None:
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd")
    path, _, _ = two_port_capture(tmp_path)

    def cycle() -> None:
        stream = spead2.recv.Stream(thread_pool, spead2.recv.StreamConfig(explicit_start=True))
        stream.add_udp_pcap_file_reader(path)
        stream.stop()
        stream = spead2.recv.Stream(thread_pool)
        stream.add_udp_pcap_file_reader(path)
        list(stream)
        stream.stop()

    cycle()
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(30):
        cycle()
    assert len(os.listdir("/proc/self/fd")) == before


# ---- robustness: damaged files and filter programs never crash or hang ----


def _capture_file(ng: bool) -> tuple[bytes, list[int]]:
    """The frames of malformed_mixed as a classic pcap or a pcapng file, and the offsets at which
    its records end (the file header or first blocks included)."""
    _, frames = read_pcap(scenario_named("malformed_mixed").file("pcap"))
    if ng:
        shb = _block("<", 0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
        records = [shb + _block("<", 1, struct.pack("<HHI", 1, 0, 65535))]
        records += [
            _block("<", 6, struct.pack("<IIIII", 0, 0, i, len(f), w) + f) for i, (w, f) in enumerate(frames)
        ]
    else:
        records = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
        records += [struct.pack("<IIII", 0, 0, len(f), w) + f for w, f in frames]
    ends, pos = [], 0
    for record in records:
        pos += len(record)
        ends.append(pos)
    return b"".join(records), ends


class Replay:
    """What the C reader and a kernel stream made of a capture: the reader's counts, the stream's
    statistics and the heaps it delivered (cnt, complete, items)."""

    def __init__(self, data: bytes, window: int) -> None:
        self.opened = False
        self.counts = ffi.new("sp2_pcap_counts *")
        self.stats = ffi.new("sp2_stats *")
        self.heaps: list[tuple[Any, ...]] = []
        cfg = ffi.new("sp2_config *")
        lib.sp2_config_init(cfg)
        cfg.ring_heaps = 1 << 16
        cfg.contiguous_only = 0
        out = ffi.new("sp2_stream **")
        assert lib.sp2_stream_new(cfg, ffi.NULL, out) == 0
        stream = ffi.gc(out[0], lib.sp2_stream_free)
        reader = self._run(stream, data, window)
        if reader is not None:
            lib.sp2_pcap_reader_counts(reader, self.counts)
        lib.sp2_stream_get_stats(stream, self.stats)
        while (raw := lib.sp2_ring_pop(stream, 0)) != ffi.NULL:
            heap = wrap_heap(raw)
            items = [(int(i.id), bytes(i)) for i in heap.get_items()]
            self.heaps.append((heap.cnt, isinstance(heap, spead2.recv.Heap), items))

    def _run(self, stream: Any, data: bytes, window: int) -> Any:
        """Walks ``data`` through the C reader in windows of about ``window`` bytes (as the
        Python reader reads the file)."""
        base = 0
        chunk = data[:window]
        buf = ffi.from_buffer(chunk)
        reader_p = ffi.new("sp2_pcap_reader **")
        vals = ffi.new("uint32_t[2]")
        is_ng = ffi.new("int *")
        err = ffi.new("const char **")
        if lib.sp2_pcap_reader_open(
            buf, len(chunk), len(chunk) == len(data), reader_p, vals, vals + 1, is_ng, err
        ):
            return None
        self.opened = True
        reader = ffi.gc(reader_p[0], lib.sp2_pcap_reader_free)
        ended = ffi.new("int *")
        need_more = ffi.new("int *")
        for _ in range(len(data) + 2):
            status = lib.sp2_pcap_reader_run_window(reader, stream, 64, ended, need_more, err)
            if ended[0] or status == lib.SP2_STOPPED:
                return reader
            if need_more[0]:
                pos = lib.sp2_pcap_reader_window_pos(reader)
                size = len(chunk) - pos
                base += pos
                window = max(window, 2 * size)  # (a record longer than the window: grow it)
                chunk = data[base : base + max(window, size + 1)]
                buf = ffi.from_buffer(chunk)
                lib.sp2_pcap_reader_set_window(reader, buf, len(chunk), base + len(chunk) >= len(data))
        raise AssertionError("the reader does not make progress")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_damaged_files(data: st.DataObject) -> None:
    """A damaged capture is read up to its damage exactly as the intact file, and every frame the
    reader took is either handed to the stream or counted as skipped."""
    clean, ends = _capture_file(data.draw(st.booleans()))
    damaged = bytearray(clean)
    for _ in range(data.draw(st.integers(0, 8))):
        damaged[data.draw(st.integers(0, len(clean) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(clean)))
    first_damage = min([cut] + [i for i in range(cut) if damaged[i] != clean[i]])
    got = Replay(bytes(damaged[:cut]), data.draw(st.integers(64, len(clean) + 1)))  # (holds any header)
    counts = got.counts
    assert counts.records == counts.datagrams + sum(counts.skipped)
    assert len(got.heaps) <= got.stats.heaps
    intact = [end for end in ends if end <= first_damage]
    if not intact:
        return  # the header itself is damaged
    want = Replay(clean[: intact[-1]], len(clean))
    assert want.opened and got.opened
    # The intact records came first, and were read as they are in the intact file.
    assert counts.records >= want.counts.records
    assert counts.datagrams >= want.counts.datagrams
    assert all(counts.skipped[i] >= want.counts.skipped[i] for i in range(lib.SP2_PCAP_SKIP_COUNT))
    assert got.stats.packets >= want.stats.packets
    assert all(got.stats.drops[i] >= want.stats.drops[i] for i in range(lib.SP2_DROP_COUNT))
    assert got.heaps[: len(want.heaps)] == want.heaps


#: Instruction codes of every class (valid and not), for the BPF robustness test.
BPF_CODES = [0x00, 0x20, 0x28, 0x30, 0x40, 0x48, 0x50, 0x60, 0x80, 0x01, 0x61, 0x81, 0xB1, 0x02, 0x03]
BPF_CODES += [0x04, 0x14, 0x24, 0x34, 0x3C, 0x44, 0x54, 0x64, 0x74, 0x84, 0x94, 0x9C, 0xA4, 0x05, 0x15]
BPF_CODES += [0x1D, 0x25, 0x35, 0x45, 0x06, 0x16, 0x07, 0x87, 0xFF, 0x1234]


def _bpf_program(insns: list[tuple[int, int, int, int]]) -> Any:
    program = ffi.new("sp2_bpf_insn[]", max(len(insns), 1))
    for i, (code, jt, jf, k) in enumerate(insns):
        program[i].code, program[i].jt, program[i].jf, program[i].k = code, jt, jf, k
    return program


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(BPF_CODES),
            st.one_of(st.integers(0, 3), st.integers(0, 255)),
            st.one_of(st.integers(0, 3), st.integers(0, 255)),
            st.one_of(st.integers(0, 15), st.integers(0, 64), st.integers(0, 2**32 - 1)),
        ),
        min_size=1,
        max_size=24,
    ),
    st.sampled_from([[], [(0x16, 0, 0, 0)], [(0x06, 0, 0, 1), (0x06, 0, 0, 0)]]),
    st.binary(max_size=80),
)
def test_bpf_runs_as_libpcap_defines(
    insns: list[tuple[int, int, int, int]], tail: list[tuple[int, int, int, int]], frame: bytes
) -> None:
    """Every program the validator accepts runs as classic BPF defines (bpf_oracle), and never
    does what the validator is there to prevent (it would fail the oracle's assertions)."""
    insns = insns + tail  # (a return at the end makes many programs valid)
    program = _bpf_program(insns)
    if lib.sp2_bpf_validate(program, len(insns)) == 0:
        result = lib.sp2_bpf_run(program, ffi.from_buffer(frame), len(frame) + 10, len(frame))
        assert result == bpf_oracle(insns, frame, len(frame) + 10)


def test_bpf_validator_refuses_unsafe_programs() -> None:
    refused = [
        [],  # empty
        [(0x00, 0, 0, 1)],  # falls off the end
        [(0x05, 0, 0, 5), (0x06, 0, 0, 0)],  # jumps past the end
        [(0x15, 9, 0, 1), (0x06, 0, 0, 0)],  # conditional jump past the end
        [(0x02, 0, 0, 16), (0x06, 0, 0, 0)],  # scratch memory out of range
        [(0x60, 0, 0, 99), (0x06, 0, 0, 0)],
        [(0xFF, 0, 0, 0), (0x06, 0, 0, 0)],  # unknown code
        [(0x34, 0, 0, 0), (0x06, 0, 0, 0)],  # division by a zero constant
    ]
    for insns in refused:
        assert lib.sp2_bpf_validate(_bpf_program(insns), len(insns)) != 0, insns
    accepted = [(0x28, 0, 0, 12), (0x15, 0, 1, 0x0800), (0x06, 0, 0, 65535), (0x06, 0, 0, 0)]
    assert lib.sp2_bpf_validate(_bpf_program(accepted), len(accepted)) == 0
    ipv4 = bytes(12) + b"\x08\x00" + bytes(20)
    assert lib.sp2_bpf_run(_bpf_program(accepted), ffi.from_buffer(ipv4), 34, 34) == 65535
    assert lib.sp2_bpf_run(_bpf_program(accepted), ffi.from_buffer(bytes(34)), 34, 34) == 0
    assert lib.sp2_bpf_run(_bpf_program(accepted), ffi.from_buffer(bytes(13)), 13, 13) == 0  # short frame


class _Reject(Exception):
    """The program rejects the frame (a load out of the frame, a division by zero)."""


_ALU = {0x00: operator.add, 0x10: operator.sub, 0x20: operator.mul, 0x30: operator.floordiv}
_ALU.update({0x40: operator.or_, 0x50: operator.and_, 0x60: operator.lshift, 0x70: operator.rshift})
_ALU.update({0x90: operator.mod, 0xA0: operator.xor})


def _alu(op: int, a: int, v: int) -> int:
    if op == 0x80:
        return -a
    if op in (0x60, 0x70) and v >= 32:
        return 0
    assert op in _ALU, f"unknown ALU op {op:#x}"
    return int(_ALU[op](a, v))


def bpf_oracle(insns: list[tuple[int, int, int, int]], frame: bytes, wirelen: int) -> int:
    """Classic BPF as libpcap's bpf_filter runs it (the oracle for programs our validator accepts).
    Raises AssertionError for anything a validated program must not do (an unknown code, a jump or
    fall out of the program, scratch memory out of range)."""
    a = x = 0
    mem = [0] * 16
    pc = 0

    def load(off: int, size: int) -> int:
        if off + size > len(frame):
            raise _Reject
        return int.from_bytes(frame[off : off + size], "big")

    try:
        while True:
            assert 0 <= pc < len(insns), "ran off the program"
            code, jt, jf, k = insns[pc]
            cls = code & 0x07
            if cls == 0x06:  # RET
                return a if code & 0x18 == 0x10 else k
            if cls in (0x00, 0x01):  # LD, LDX
                mode, size = code & 0xE0, {0x00: 4, 0x08: 2, 0x10: 1}.get(code & 0x18)
                if mode == 0x00:  # IMM
                    v = k
                elif mode == 0x80:  # LEN
                    v = wirelen
                elif mode == 0x60:  # MEM
                    assert k < 16
                    v = mem[k]
                elif cls == 0x00 and mode in (0x20, 0x40) and size is not None:  # ABS, IND
                    off = k + (x if mode == 0x40 else 0)
                    if off > 0xFFFFFFFF:
                        raise _Reject
                    v = load(off, size)
                elif cls == 0x01 and mode == 0xA0:  # MSH
                    v = (load(k, 1) & 0xF) << 2
                else:
                    raise AssertionError(f"unknown load {code:#x}")
                if cls == 0x00:
                    a = v
                else:
                    x = v
            elif cls in (0x02, 0x03):  # ST, STX
                assert k < 16
                mem[k] = a if cls == 0x02 else x
            elif cls == 0x04:  # ALU
                v = x if code & 0x08 else k
                op = code & 0xF0
                if op in (0x30, 0x90) and v == 0:
                    raise _Reject
                a = _alu(op, a, v) & 0xFFFFFFFF
            elif cls == 0x05:  # JMP
                v = x if code & 0x08 else k
                op = code & 0xF0
                if op == 0x00:
                    pc += 1 + k
                    continue
                tests = {0x10: a == v, 0x20: a > v, 0x30: a >= v, 0x40: a & v != 0}
                assert op in tests, f"unknown jump {code:#x}"
                pc += 1 + (jt if tests[op] else jf)
                continue
            else:  # MISC
                assert code & 0xF8 in (0x00, 0x80), f"unknown misc {code:#x}"
                if code & 0xF8 == 0x00:
                    x = a
                else:
                    a = x
            pc += 1
    except _Reject:
        return 0


@needs_compiler
def test_bpf_matches_libpcap(tmp_path: Path) -> None:
    """Our interpreter agrees with libpcap's (pcapy's BPFProgram.filter) on real frames."""
    compiler = _bpf.find_compiler()
    assert compiler is not None
    pcapy = pytest.importorskip("pcapy")
    _, frames = read_pcap(scenario_named("pcap_non_udp_frames").file("pcap"))
    frames += [(len(f), f) for f in (udp_frame(b"x" * 20, dport=p) for p in (8888, 9999, 53))]
    expressions = ["udp", "udp port 8888", "tcp", "ip6", "arp", "ip[6:2] & 0x1fff != 0", "len > 100"]
    expressions += ["udp and not port 53", "ether proto 0x0800 and ip[9] == 17"]
    for expression in expressions:
        ours = _bpf_program(compiler(1, 65535, expression))
        n = len(compiler(1, 65535, expression))
        theirs = pcapy.compile(1, 65535, expression, 1, _bpf.NETMASK_UNKNOWN)
        for _, frame in frames:
            # (pcapy's filter() takes the captured length as the wire length too)
            mine = lib.sp2_bpf_run(ours, ffi.from_buffer(frame), len(frame), len(frame)) != 0
            assert mine == (theirs.filter(frame) != 0), (expression, frame[:40].hex())
        assert lib.sp2_bpf_validate(ours, n) == 0
