#!/usr/bin/env python3
"""In-memory decode speed (add_buffer_reader, no sockets): this project against the reference,
on the same buffer, in the same run.

    bench/buffer_decode.py [--api blocking|asyncio] [--cpus 1] [--heap-sizes 1048576,65536]
        [--packet-sizes 1472,9000] [--total-mib 256] [--reps 5] [--rounds 3]
        [--ref-python PY] [--mine-python PY]

For each heap and packet size the reference's PacketGenerator writes a buffer of --total-mib of
heaps (one uint8 item of the heap size each) to a temporary file.  Each round runs each
implementation in a process of its own (alternating), which reads the file, decodes it --reps
times (a fresh stream each time: a MemoryPool-free default allocator, heaps consumed by a
blocking loop or ``async for``) and reports the best GB/s of payload.  Reported: the median
over rounds, [min - max], and the ratio mine / reference (higher is better).  --cpus N pins both
to the first N CPUs (taskset).  The reference's venv is found or created (tests/interop/refvenv.py).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

GENERATOR = r"""
import sys
import numpy as np
import spead2, spead2.send
path, heap_size, packet, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
flavour = spead2.Flavour(4, 64, 48, 0)
ig = spead2.send.ItemGroup(flavour=flavour)
ig.add_item(0x1000, "data", "payload", (heap_size,), dtype=np.uint8, value=np.ones(heap_size, np.uint8))
with open(path, "wb") as f:
    for cnt in range(1, max(1, total // heap_size) + 1):
        heap = ig.get_heap(descriptors="all" if cnt == 1 else "none", data="all")
        for p in spead2.send.PacketGenerator(heap, cnt, packet):
            f.write(bytes(p))
"""

WORKER = r"""
import asyncio, json, sys, time
import spead2, spead2.recv, spead2.recv.asyncio
path, api, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = open(path, "rb").read()

def blocking():
    stream = spead2.recv.Stream(spead2.ThreadPool(), spead2.recv.StreamConfig(max_heaps=4),
                                spead2.recv.RingStreamConfig(heaps=8))
    start = time.perf_counter()
    stream.add_buffer_reader(data)
    n = 0
    for heap in stream:
        n += 1
    return time.perf_counter() - start, n

async def coro():
    stream = spead2.recv.asyncio.Stream(spead2.ThreadPool(), spead2.recv.StreamConfig(max_heaps=4),
                                        spead2.recv.RingStreamConfig(heaps=8))
    start = time.perf_counter()
    stream.add_buffer_reader(data)
    n = 0
    async for heap in stream:
        n += 1
    return time.perf_counter() - start, n

best, heaps = float("inf"), 0
for _ in range(reps):
    elapsed, heaps = blocking() if api == "blocking" else asyncio.run(coro())
    best = min(best, elapsed)
print(json.dumps({"seconds": best, "heaps": heaps, "version": spead2.__version__, "file": spead2.__file__}))
"""


def decode(python: str, mine: str, path: Path, args: argparse.Namespace) -> tuple[float, int, str]:
    cmd = _common.command(python, mine, "-c", WORKER, str(path), args.api, str(args.reps))
    if args.cpus:
        cmd = ["taskset", "-c", ",".join(str(c) for c in range(args.cpus)), *cmd]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        env=_common.env_for(python, mine),
        cwd=tempfile.gettempdir(),
        timeout=900,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{python}: {proc.stderr[-2000:]}")
    result = _common.last_json(proc.stdout.splitlines())
    return float(result["seconds"]), int(result["heaps"]), str(result["file"])  # type: ignore[call-overload]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--api", choices=["blocking", "asyncio"], default="blocking")
    parser.add_argument("--cpus", type=int, default=0, help="pin both to the first N CPUs [unpinned]")
    parser.add_argument("--heap-sizes", default="1048576,65536")
    parser.add_argument("--packet-sizes", default="1472,9000")
    parser.add_argument("--total-mib", type=int, default=256)
    parser.add_argument("--reps", type=int, default=5, help="decodes per process (the best counts)")
    parser.add_argument("--rounds", type=int, default=3, help="processes per implementation")
    _common.add_common_options(parser)
    args = parser.parse_args()
    ref = _common.reference_python(args.ref_python)
    mine = args.mine_python
    print(
        f"api {args.api}, {'pinned to ' + str(args.cpus) + ' CPU(s)' if args.cpus else 'unpinned'}, "
        f"{args.total_mib} MiB per buffer, best of {args.reps} per process, median of {args.rounds} rounds"
    )
    rows = []
    for heap_size in [int(h) for h in args.heap_sizes.split(",")]:
        for packet in [int(p) for p in args.packet_sizes.split(",")]:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "buffer.spead"
                subprocess.run(
                    _common.command(
                        ref,
                        mine,
                        "-c",
                        GENERATOR,
                        str(path),
                        str(heap_size),
                        str(packet),
                        str(args.total_mib << 20),
                    ),
                    check=True,
                    env=_common.env_for(ref, mine),
                    cwd=tempfile.gettempdir(),
                )
                payload = (args.total_mib << 20) // heap_size * heap_size
                rates: dict[str, list[float]] = {"reference": [], "mine": []}
                for _ in range(args.rounds):
                    for label, python in (("reference", ref), ("mine", mine)):
                        seconds, _heaps, _where = decode(python, mine, path, args)
                        rates[label].append(payload / seconds / 1e9)
            ref_med, mine_med = _common.median(rates["reference"]), _common.median(rates["mine"])
            rows.append(
                [
                    str(heap_size),
                    str(packet),
                    f"{ref_med:.2f} [{min(rates['reference']):.2f}-{max(rates['reference']):.2f}]",
                    f"{mine_med:.2f} [{min(rates['mine']):.2f}-{max(rates['mine']):.2f}]",
                    f"{mine_med / ref_med:.2f}",
                ]
            )
    print()
    _common.print_table(["heap", "packet", "reference GB/s", "mine GB/s", "ratio"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
