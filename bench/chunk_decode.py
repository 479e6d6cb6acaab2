#!/usr/bin/env python3
"""Chunk streams in memory (no sockets): a ChunkRingStream fed by add_buffer_reader, with a numba
place function, this project against the reference, in the same run.

    bench/chunk_decode.py [--cpus 1] [--heap-sizes 65536,8192] [--packet-sizes 1472,9000]
        [--heaps-per-chunk N] [--total-mib 256] [--reps 3] [--rounds 3]
        [--ref-python PY] [--mine-python PY]

For each heap and packet size the reference's PacketGenerator writes --total-mib of heaps (heap
cnts 1, 2, ...; one uint8 item of the heap size, every byte of heap c equal to c mod 251; no
descriptors) to a temporary file.  Each round runs each implementation in a process of its own
(alternating), with the same code: a place function compiled by numba (a cfunc given as a
scipy.LowLevelCallable, as the reference's documentation shows) puts heap c at chunk
(c - 1) // N, index (c - 1) % N, for N = --heaps-per-chunk (default: chunks of 16 MiB); the main
thread takes each chunk from the data ring, checks that every heap is present and that the first
and last byte of each heap are its own, and hands the chunk back (add_free_chunk).  Timed: from
add_buffer_reader to the end of the data ring; a warm-up run first (numba compiles).  A run that
misses a heap, or finds one in the wrong place, fails the benchmark.

Reported: GB/s of payload and heaps/s, the median over rounds of each process's best of --reps
[min - max], and the ratio mine / reference (higher is better).  --cpus N pins both to the first N
CPUs (taskset).  The reference's venv is found or created (tests/interop/refvenv.py), and numba
and scipy are installed into it if missing; ours needs them too (``pip install -e '.[numba]'``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

NUMBA = {"numba": "numba", "scipy": "scipy"}

# Run by the reference: argv = output path, heap size, packet size, total bytes.
HEAPS = r"""
import json, sys
import numpy as np
import spead2, spead2.send
path, heap_size, packet, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
group = spead2.send.ItemGroup(flavour=spead2.Flavour(4, 64, 48, 0))
group.add_item(0x1000, "payload", "", (heap_size,), dtype=np.uint8)
count = max(1, total // heap_size)
with open(path, "wb") as f:
    for cnt in range(1, count + 1):
        group["payload"].value = np.full(heap_size, cnt % 251, np.uint8)
        heap = group.get_heap(descriptors="none", data="all")
        for packet_bytes in spead2.send.PacketGenerator(heap, cnt, packet):
            f.write(bytes(packet_bytes))
print(json.dumps({"heaps": count}))
"""

# Run by either implementation: argv = file, heap size, heaps per chunk, number of heaps, reps.
WORKER = r"""
import json, sys, time
import numba, numpy as np, scipy
import spead2, spead2.recv
from numba import types
from spead2.numba import intp_to_voidptr
from spead2.recv.numba import chunk_place_data

path, heap_size, per_chunk, count, reps = sys.argv[1], *map(int, sys.argv[2:6])
data = open(path, "rb").read()
FREE_CHUNKS = 8

@numba.cfunc(types.void(types.CPointer(chunk_place_data), types.uintp), nopython=True)
def place(place_ptr, place_size):
    info = numba.carray(place_ptr, 1)
    values = numba.carray(intp_to_voidptr(info[0].items), 2, dtype=np.int64)
    cnt, length = values[0], values[1]
    if cnt >= 1 and length == heap_size:
        info[0].chunk_id = (cnt - 1) // per_chunk
        info[0].heap_index = (cnt - 1) % per_chunk
        info[0].heap_offset = info[0].heap_index * heap_size

callback = scipy.LowLevelCallable(place.ctypes, signature="void (void *, size_t)")
firsts = np.arange(per_chunk) * heap_size
lasts = firsts + heap_size - 1

def check(chunk, expected_id):
    cnts = np.arange(per_chunk) + chunk.chunk_id * per_chunk + 1
    wanted = (cnts % 251).astype(np.uint8)
    whole = cnts <= count
    if chunk.chunk_id != expected_id or not np.all(chunk.present[whole]):
        raise SystemExit(f"chunk {chunk.chunk_id} (expected {expected_id}): heaps missing")
    data = chunk.data
    if np.any(data[firsts[whole]] != wanted[whole]) or np.any(data[lasts[whole]] != wanted[whole]):
        raise SystemExit(f"chunk {chunk.chunk_id}: a heap's bytes are not its own")
    return int(np.count_nonzero(chunk.present[whole]))

def run():
    chunk_config = spead2.recv.ChunkStreamConfig(
        items=[spead2.HEAP_CNT_ID, spead2.HEAP_LENGTH_ID], max_chunks=4, place=callback)
    data_ring = spead2.recv.ChunkRingbuffer(4)
    stream = spead2.recv.ChunkRingStream(spead2.ThreadPool(), spead2.recv.StreamConfig(max_heaps=4),
                                         chunk_config, data_ring, spead2.recv.ChunkRingbuffer(FREE_CHUNKS))
    for _ in range(FREE_CHUNKS):  # pages touched before the clock starts
        stream.add_free_chunk(spead2.recv.Chunk(present=np.zeros(per_chunk, np.uint8),
                                                data=np.ones(per_chunk * heap_size, np.uint8)))
    present = 0
    start = time.perf_counter()
    stream.add_buffer_reader(data)
    for expected_id, chunk in enumerate(data_ring):
        present += check(chunk, expected_id)
        stream.add_free_chunk(chunk)
    elapsed = time.perf_counter() - start
    stream.stop()
    if present != count:
        raise SystemExit(f"{present} heaps of {count} present")
    return elapsed

run()
best = min(run() for _ in range(reps))
print(json.dumps({"seconds": best, "version": spead2.__version__, "file": spead2.__file__}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--heap-sizes", default="65536,8192")
    parser.add_argument("--packet-sizes", default="1472,9000")
    parser.add_argument("--heaps-per-chunk", type=int, default=0, help="[chunks of 16 MiB]")
    parser.add_argument("--total-mib", type=int, default=256)
    _common.add_worker_options(parser)
    _common.add_common_options(parser)
    args = parser.parse_args()
    ref = _common.reference_with(args.ref_python, NUMBA)
    print(
        f"ChunkRingStream over add_buffer_reader, {_common.describe_cpus(args.cpus)}, {args.total_mib} MiB "
        f"per run, best of {args.reps} per process, median of {args.rounds} rounds; every heap checked"
    )
    rows = []
    for heap_size in [int(h) for h in args.heap_sizes.split(",")]:
        per_chunk = args.heaps_per_chunk or max(1, (16 << 20) // heap_size)
        for packet in [int(p) for p in args.packet_sizes.split(",")]:
            rates = measure(args, ref, heap_size, packet, per_chunk)
            ref_gbps, mine_gbps = (
                [heaps * heap_size / 1e9 for heaps in rates[label]] for label in ("reference", "mine")
            )
            rows.append(
                [
                    str(heap_size),
                    str(packet),
                    str(per_chunk),
                    _common.spread(ref_gbps),
                    _common.spread(mine_gbps),
                    f"{_common.median(rates['reference']) / 1e3:.1f} k",
                    f"{_common.median(rates['mine']) / 1e3:.1f} k",
                    f"{_common.median(mine_gbps) / _common.median(ref_gbps):.2f}",
                ]
            )
    print()
    _common.print_table(
        [
            "heap",
            "packet",
            "heaps/chunk",
            "reference GB/s",
            "mine GB/s",
            "reference heaps/s",
            "mine heaps/s",
            "ratio",
        ],
        rows,
    )
    return 0


def measure(
    args: argparse.Namespace, ref: str, heap_size: int, packet: int, per_chunk: int
) -> dict[str, list[float]]:
    """Heaps per second of each implementation, one figure per round."""
    mine = args.mine_python
    rates: dict[str, list[float]] = {"reference": [], "mine": []}
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "heaps.spead")
        made = _common.run_worker(
            ref, mine, HEAPS, path, str(heap_size), str(packet), str(args.total_mib << 20)
        )
        count = int(made["heaps"])  # type: ignore[call-overload]
        for _ in range(args.rounds):
            for label, python in (("reference", ref), ("mine", mine)):
                result = _common.run_worker(
                    python,
                    mine,
                    WORKER,
                    path,
                    str(heap_size),
                    str(per_chunk),
                    str(count),
                    str(args.reps),
                    cpus=args.cpus,
                )
                rates[label].append(count / float(result["seconds"]))  # type: ignore[arg-type]
    return rates


if __name__ == "__main__":
    sys.exit(main())
