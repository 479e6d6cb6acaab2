#!/usr/bin/env python3
"""pcap replay speed: this project's add_udp_pcap_file_reader against the reference's, on the
same capture file, in the same run.

    bench/pcap_replay.py [--file capture.pcap] [--size-mib 1100] [--packet 1472] [--rounds 3]
        [--ref-python PY] [--mine-python .venv/bin/python]

Without --file, writes a classic pcap (Ethernet / IPv4 / UDP frames of SPEAD packets of at most
--packet bytes, heaps of --heap-size bytes) to a temporary file, deleted afterwards.  Each round
runs each implementation once in a process of its own (alternating, after one warm-up replay per
implementation so that the file is in the page cache): a blocking Stream, one
add_udp_pcap_file_reader, and iteration until the stream stops.  Reported: packets/s (and
heaps/s) over the replay, and the ratio mine / reference (higher is better).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

WORKER = r"""
import json, sys, time
import spead2, spead2.recv
path = sys.argv[1]
pool = spead2.ThreadPool()
stream = spead2.recv.Stream(pool, spead2.recv.StreamConfig(max_heaps=4),
                            spead2.recv.RingStreamConfig(heaps=8))
start = time.perf_counter()
stream.add_udp_pcap_file_reader(path)
heaps = 0
for heap in stream:
    heaps += 1
elapsed = time.perf_counter() - start
stream.stop()
print(json.dumps({"heaps": heaps, "packets": stream.stats["packets"], "elapsed": elapsed,
                  "version": spead2.__version__, "file": spead2.__file__}))
"""


def spead_packets(heap_size: int, packet: int, cnt: int) -> list[bytes]:
    """The packets of one heap carrying one uint8 item of heap_size bytes (flavour 64-40)."""
    item_id = 0x1000
    header_items = 5  # heap cnt, heap length, payload offset, payload length, item pointer
    room = packet - 8 - 8 * header_items
    out = []
    for offset in range(0, heap_size, room):
        length = min(room, heap_size - offset)
        pointers = [
            (1 << 63) | (1 << 40) | cnt,
            (1 << 63) | (2 << 40) | heap_size,
            (1 << 63) | (3 << 40) | offset,
            (1 << 63) | (4 << 40) | length,
            (item_id << 40) | 0,
        ]
        head = struct.pack(">BBBBHH", 0x53, 4, 3, 5, 0, len(pointers))
        out.append(head + b"".join(struct.pack(">Q", p) for p in pointers) + bytes(length))
    return out


def ip_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f">{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def frame(payload: bytes) -> bytes:
    udp = struct.pack(">HHHH", 40000, 8888, 8 + len(payload), 0) + payload
    ip = bytearray(
        struct.pack(
            ">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0, b"\x7f\0\0\x01", b"\x7f\0\0\x01"
        )
    )
    struct.pack_into(">H", ip, 10, ip_checksum(bytes(ip)))
    return b"\0" * 12 + b"\x08\x00" + bytes(ip) + udp


def write_capture(path: Path, size: int, heap_size: int, packet: int) -> tuple[int, int]:
    template = [frame(p) for p in spead_packets(heap_size, packet, 1)]
    cnt_offset = 14 + 20 + 8 + 8 + 3  # the low 5 bytes of the HEAP_CNT pointer
    heaps = packets = written = 0
    with path.open("wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        while written < size:
            heaps += 1
            cnt = heaps.to_bytes(5, "big")
            chunk = []
            for fr in template:
                record = bytearray(struct.pack("<IIII", heaps, 0, len(fr), len(fr)) + fr)
                record[16 + cnt_offset : 16 + cnt_offset + 5] = cnt
                chunk.append(record)
            data = b"".join(chunk)
            f.write(data)
            written += len(data)
            packets += len(template)
    return heaps, packets


def run(python: str, path: Path) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [python, "-E", "-s", "-c", WORKER, str(path)],
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
        env=env,
        timeout=600,
    )
    if proc.returncode != 0:
        sys.exit(f"{python} failed:\n{proc.stderr}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--file", type=Path)
    parser.add_argument("--size-mib", type=int, default=1100)
    parser.add_argument("--packet", type=int, default=1472)
    parser.add_argument("--heap-size", type=int, default=1 << 20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ref-python", help="[found, or created from PyPI, by tests/interop/refvenv.py]")
    parser.add_argument("--mine-python", default=sys.executable)
    args = parser.parse_args()
    args.ref_python = _common.reference_python(args.ref_python)

    tmp = None
    path = args.file
    if path is None:
        tmp = tempfile.NamedTemporaryFile(suffix=".pcap", delete=False)
        tmp.close()
        path = Path(tmp.name)
        heaps, packets = write_capture(path, args.size_mib << 20, args.heap_size, args.packet)
        print(f"wrote {path}: {path.stat().st_size / 2**20:.0f} MiB, {heaps} heaps, {packets} packets")
    try:
        pythons = {"reference": args.ref_python, "mine": args.mine_python}
        for name, python in pythons.items():
            info = run(python, path)  # warm-up (and the page cache)
            print(f"{name}: spead2 {info['version']} from {info['file']}")
        rates: dict[str, list[float]] = {name: [] for name in pythons}
        for i in range(args.rounds):
            for name, python in pythons.items():
                result = run(python, path)
                rate = result["packets"] / result["elapsed"]
                rates[name].append(rate)
                print(
                    f"round {i + 1} {name:9s}: {result['packets']} packets, {result['heaps']} heaps "
                    f"in {result['elapsed']:.3f} s = {rate / 1e6:.2f} M packets/s"
                )
        ref, mine = statistics.median(rates["reference"]), statistics.median(rates["mine"])
        print(
            f"median: reference {ref / 1e6:.2f} M packets/s, mine {mine / 1e6:.2f} M packets/s, "
            f"ratio mine/reference {mine / ref:.2f}"
        )
    finally:
        if tmp is not None:
            path.unlink()


if __name__ == "__main__":
    main()
