"""Writes the fuzz target's seed corpus: the interop vectors' packets, plus synthetic traffic.

    python fuzz/make_seeds.py OUT_DIR [--vectors DIR]

Each interop scenario (``shared/vectors``) becomes three inputs under its own stream config:
its packets as single datagrams, as datagram batches, and as a TCP-like byte stream cut at
random places.  Synthetic inputs add what the vectors lack: out-of-order and duplicated
packets, unsized heaps, many substreams, tiny limits, and hostile headers (huge HEAP_LENGTH /
offsets / item counts, item pointers past the payload, descriptors inside descriptors).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))  # rawpackets: the tests' packet builder

import fuzz_input as fi  # noqa: E402
from rawpackets import Encoder, Heap, Item, packet, pointer  # noqa: E402

from spead2._kernel import ffi, lib  # noqa: E402

MAX_INPUT = 1 << 16


def default_vectors() -> Path:
    env = os.environ.get("SPEAD2_VECTORS_DIR")
    return Path(env) if env else HERE.parent.parent / "shared" / "vectors"


def split(data: bytes) -> tuple[list[bytes], bytes]:
    """Packets of a .bin, and whatever could not be framed at the end."""
    info = ffi.new("sp2_packet_info *")
    out: list[bytes] = []
    pos = 0
    while pos < len(data):
        rest = data[pos:]
        if lib.sp2_decode_packet(rest, len(rest), 0, info) != 0:
            return out, rest
        out.append(rest[: info.size])
        pos += info.size
    return out, b""


def config_for(scenario: dict) -> fi.FuzzConfig:
    sc = scenario.get("stream_config", {})
    rc = scenario.get("ring_config", {})
    return fi.FuzzConfig(
        allow_out_of_order=bool(sc.get("allow_out_of_order", False)),
        allow_unsized_heaps=bool(sc.get("allow_unsized_heaps", True)),
        stop_on_stop_item=bool(sc.get("stop_on_stop_item", True)),
        contiguous_only=bool(rc.get("contiguous_only", True)),
        keep_payload_ranges=bool(rc.get("incomplete_keep_payload_ranges", False)),
        max_heaps=min(16, max(1, int(sc.get("max_heaps", 4)))),
        substreams=min(8, max(1, int(sc.get("substreams", 1)))),
        bug_compat=int(sc.get("bug_compat", 0)) & 15,
    )


def fit(ops: list[bytes], budget: int = MAX_INPUT - 8) -> list[bytes]:
    out, used = [], 0
    for o in ops:
        if used + len(o) > budget:
            break
        out.append(o)
        used += len(o)
    return out


def stream_forms(rng: random.Random, cfg: fi.FuzzConfig, packets: list[bytes], tail: bytes) -> list[bytes]:
    """The same packets as datagrams, as batches and as a byte stream."""
    singles = fit([fi.op(fi.OP_DATAGRAM, p) for p in packets if len(p) <= fi.MAX_OP])
    batches: list[bytes] = []
    group: list[bytes] = []
    for p in packets:
        if sum(len(q) + 2 for q in group) + len(p) + 2 > fi.MAX_OP or len(group) == 16:
            batches.append(fi.datagrams_op(group))
            group = []
        if len(p) + 2 <= fi.MAX_OP:
            group.append(p)
    if group:
        batches.append(fi.datagrams_op(group))
    data = b"".join(packets) + tail
    chunks = []
    pos = 0
    while pos < len(data):
        n = min(fi.MAX_OP, rng.randint(1, 4096))
        chunks.append(fi.op(fi.OP_BYTES, data[pos : pos + n]))
        pos += n
    return [
        fi.build(cfg, singles),
        fi.build(cfg, fit(batches)),
        fi.build(cfg, fit(chunks)),
    ]


def vector_seeds(vectors: Path) -> list[bytes]:
    rng = random.Random(1)
    seeds = []
    for path in sorted(vectors.glob("*.json")):
        if path.name == "index.json":
            continue
        scenario = json.loads(path.read_text())
        binary = vectors / f"{scenario['name']}.bin"
        if not binary.exists():
            continue
        packets, tail = split(binary.read_bytes())
        seeds += stream_forms(rng, config_for(scenario), packets, tail)
    return seeds


def random_heap(rng: random.Random, cnt: int, hab: int) -> Heap:
    """Items whose ids, values and payload fit the flavour."""
    items = []
    base = 0x1000 if hab <= 48 else 0x10
    longest = 300 if hab > 8 else 40
    for i in range(rng.randint(0, 4)):
        if rng.random() < 0.3:
            items.append(Item(base + i, rng.randrange(1 << min(hab, 20)), immediate=True))
        else:
            items.append(Item(base + i, rng.randbytes(rng.randint(0, longest))))
    return Heap(cnt, items)


def synthetic_seeds() -> list[bytes]:
    rng = random.Random(2)
    seeds = []
    for k in range(60):
        hab = rng.choice((40, 48, 24, 56, 8 * rng.randint(1, 7)))
        enc = Encoder(heap_address_bits=hab, max_packet_size=rng.choice((96, 128, 200, 600, 1500)))
        heaps = [random_heap(rng, cnt, hab) for cnt in range(1, rng.randint(2, 12))]
        try:
            packets = enc.stream_packets(
                heaps,
                repeat_pointers=rng.random() < 0.3,
                heap_length=rng.random() < 0.7,
            )
        except ValueError:
            continue
        if rng.random() < 0.5:
            rng.shuffle(packets)
        if rng.random() < 0.3:
            packets += rng.sample(packets, min(len(packets), 5))
        if rng.random() < 0.2:
            packets += enc.stop_packets(1000)
        cfg = fi.FuzzConfig(
            allow_out_of_order=rng.random() < 0.6,
            allow_unsized_heaps=rng.random() < 0.8,
            stop_on_stop_item=rng.random() < 0.7,
            contiguous_only=rng.random() < 0.5,
            keep_payload_ranges=rng.random() < 0.5,
            memcpy_nontemporal=rng.random() < 0.2,
            allocator=rng.randrange(4),
            max_heaps=rng.randint(1, 16),
            substreams=rng.randint(1, 8),
            ring_heaps=rng.randint(1, 8),
            max_heap_pointers=rng.choice((None, None, rng.randint(1, 64))),
            max_heap_ranges=rng.randint(1, 16),
            max_heap_size_log2=rng.choice((24, 24, 30, 20, 12, rng.randint(0, 24))),
            pool_log2=rng.randint(6, 17),
        )
        ops = [fi.op(fi.OP_DATAGRAM, p) for p in packets]
        if k % 3 == 1:
            ops = [fi.datagrams_op(packets[i : i + 8]) for i in range(0, len(packets), 8)]
        elif k % 3 == 2:
            data = b"".join(packets)
            ops = [fi.op(fi.OP_BYTES, data[i : i + 777]) for i in range(0, len(data), 777)]
        if rng.random() < 0.5:
            ops.insert(rng.randrange(len(ops) + 1), fi.op(fi.OP_POP, bytes([7])))
        if rng.random() < 0.2:
            ops.insert(rng.randrange(len(ops) + 1), fi.op(fi.OP_RING_STOP))
        seeds.append(fi.build(cfg, fit(ops)))
    return seeds


def hostile_packets() -> list[bytes]:
    """Headers a hostile sender would write (each a datagram)."""

    def p(*fields: tuple[int, int, bool], payload: bytes = b"", n_items: int | None = None) -> bytes:
        return packet([pointer(i, v, imm) for i, v, imm in fields], payload, n_items=n_items)

    cnt, hlen, off, plen = 1, 2, 3, 4
    big = (1 << 40) - 1
    return [
        p((cnt, 1, True), (hlen, big, True), (off, 0, True), (plen, 8, True), payload=bytes(8)),
        p(
            (cnt, 2, True),
            (hlen, 1 << 33, True),
            (off, (1 << 33) - 8, True),
            (plen, 8, True),
            payload=bytes(8),
        ),
        p((cnt, 3, True), (off, big - 8, True), (plen, 8, True), payload=bytes(8)),  # unsized, far
        p(
            (cnt, 4, True),
            (hlen, 16, True),
            (off, 0, True),
            (plen, 16, True),
            (0x1000, big, False),
            payload=bytes(16),
        ),
        p((cnt, 5, True), (hlen, 0, True), (off, 0, True), (plen, 0, True)),
        p((cnt, 6, True), (hlen, 8, True), (off, 0, True), (plen, 8, True), n_items=0xFFFF),
        p(
            (cnt, 7, True),
            (hlen, 24, True),
            (off, 0, True),
            (plen, 24, True),
            (5, 0, False),
            (5, 8, False),
            (5, 16, False),
            payload=Encoder().descriptor(0x1000, "x", "y", (1,), dtype=np.dtype("u1"))[:24],
        ),
        p((cnt, big, True), (hlen, 8, True), (off, 0, True), (plen, 8, True), (6, 2, True), payload=bytes(8)),
        p((cnt, 9, True), (hlen, 8, True), (off, 4, True), (plen, 8, True), payload=bytes(8)),
        p((cnt, 10, True), (hlen, 9000, True), (off, 0, True), (plen, 8992, True), payload=bytes(8992)),
        b"",
        bytes(8),
        bytes.fromhex("5304020600000000"),
    ]


def hostile_seeds() -> list[bytes]:
    rng = random.Random(3)
    packets = hostile_packets()
    seeds = []
    for allocator in range(4):
        for flags in range(4):
            cfg = fi.FuzzConfig(
                allow_out_of_order=bool(flags & 1),
                contiguous_only=bool(flags & 2),
                keep_payload_ranges=True,
                allocator=allocator,
                max_heap_size_log2=(24, 30, 3, 16)[flags],
            )
            order = packets[:]
            rng.shuffle(order)
            seeds.append(fi.build(cfg, [fi.op(fi.OP_DATAGRAM, q) for q in order]))
            seeds.append(fi.build(cfg, [fi.op(fi.OP_BYTES_MAX, b"".join(order)[: fi.MAX_OP])]))
    # a flood of one-packet heaps with random cnts
    flood = [
        packet(
            [
                pointer(1, rng.randrange(1 << 40), True),
                pointer(2, 64, True),
                pointer(3, rng.randrange(64), True),
                pointer(4, 1, True),
            ],
            b"x",
        )
        for _ in range(300)
    ]
    seeds.append(
        fi.build(
            fi.FuzzConfig(allow_out_of_order=True),
            [fi.datagrams_op(flood[i : i + 60]) for i in range(0, 300, 60)],
        )
    )
    return seeds


def pcapng(packets: list[bytes], linktype: int = 1) -> bytes:
    """A little-endian pcapng file: section header, one interface, enhanced packet blocks."""
    import struct

    def block(kind: int, body: bytes) -> bytes:
        body += bytes(-len(body) % 4)
        n = 12 + len(body)
        return struct.pack("<II", kind, n) + body + struct.pack("<I", n)

    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += block(1, struct.pack("<HHI", linktype, 0, 65535))
    for i, frame in enumerate(packets):
        out += block(6, struct.pack("<IIIII", 0, 0, i, len(frame), len(frame)) + frame)
    return out


def pcap_seeds(vectors: Path) -> list[bytes]:
    """Seeds of fuzz_pcap.c: each vector capture as a file (modes 0 and 1), as pcapng, and a few
    BPF programs and frames."""
    import struct

    seeds = []
    for path in sorted(vectors.glob("*.pcap")):
        data = path.read_bytes()
        if len(data) > 4 * MAX_INPUT:
            continue
        seeds += [bytes([0]) + data, bytes([1]) + data, bytes([8]) + data]
        frames: list[bytes] = []
        pos = 24
        while pos + 16 <= len(data) and len(frames) < 32:
            (incl,) = struct.unpack_from("<I", data, pos + 8)
            frames.append(data[pos + 16 : pos + 16 + incl])
            pos += 16 + incl
        if frames:
            seeds.append(bytes([4]) + pcapng(frames))
            seeds.append(bytes([3]) + frames[0])
            seeds.append(bytes([7]) + frames[-1])
    udp_only = [
        (0x28, 0, 0, 12),
        (0x15, 0, 3, 0x800),
        (0x30, 0, 0, 23),
        (0x15, 0, 1, 17),
        (0x06, 0, 0, 65535),
        (0x06, 0, 0, 0),
    ]
    prog = b"".join(struct.pack("<HBBI", *i) for i in udp_only)
    seeds.append(bytes([2, len(udp_only)]) + prog + bytes(14) + b"\x08\x00" + bytes(9) + b"\x11" + bytes(20))
    return seeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--vectors", type=Path, default=default_vectors())
    parser.add_argument("--target", choices=("kernel", "pcap"), default="kernel")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.target == "pcap":
        seeds = pcap_seeds(args.vectors) if args.vectors.is_dir() else []
    else:
        seeds = synthetic_seeds() + hostile_seeds()
    if args.target == "kernel" and args.vectors.is_dir():
        seeds += vector_seeds(args.vectors)
    elif not args.vectors.is_dir():
        print(f"no interop vectors at {args.vectors}", file=sys.stderr)
    for seed in seeds:
        name = hashlib.sha1(seed).hexdigest()
        (args.out / name).write_bytes(seed)
    print(f"wrote {len(seeds)} seeds to {args.out}")


if __name__ == "__main__":
    main()
