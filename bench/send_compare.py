#!/usr/bin/env python3
"""Send speed and CPU per packet, ours beside the reference's, in one run.

    python bench/send_compare.py                       # blocking send_heap, 1 MiB and 64 KiB heaps
    python bench/send_compare.py --api asyncio --cpus 1
    python bench/send_compare.py --rate-gbps 1         # accuracy of the rate limiter

Each interpreter (ours: this one, or ``--mine-python``; the reference: ``--ref-python``, else the
venv of tests/interop/refvenv.py, created if missing) runs the same worker, written against the
reference's public API, in a process of its own: a UdpStream to a socket on 127.0.0.1 that the
driver binds and never reads (so only the sender is measured), sending one ItemGroup heap over
and over (blocking ``send_heap``, or asyncio ``async_send_heap`` with ``--window`` futures in
flight).  Per row: payload Gb/s (wall clock), SPEAD packets per second (heaps times the packets
``PacketGenerator`` makes of the heap: GSO makes the kernel's datagram counters useless), the
worker's CPU (user + system, all threads) per SPEAD packet, and ratios mine / reference (higher
is better for Gb/s, lower for CPU).  With ``--rate-gbps``, the achieved SPEAD rate (packet bytes,
headers included) against the rate asked for.  Figures compare only within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve()


def worker(args: argparse.Namespace) -> None:
    import asyncio
    import resource
    import time

    import numpy as np

    import spead2
    import spead2.send
    import spead2.send.asyncio

    rate = args.rate_gbps * 1e9 / 8
    config = spead2.send.StreamConfig(max_packet_size=args.packet_size, rate=rate, max_heaps=args.window)
    group = spead2.send.ItemGroup(flavour=spead2.Flavour(4, 64, 48, 0))
    group.add_item(0x1000, "data", "payload", shape=(args.heap_size,), dtype=np.uint8)
    group["data"].value = np.arange(args.heap_size, dtype=np.uint64).astype(np.uint8)
    heap = group.get_heap(descriptors="none", data="all")
    packets = [bytes(p) for p in spead2.send.PacketGenerator(heap, 1, args.packet_size)]
    endpoint = [("127.0.0.1", args.port)]

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    if args.api == "blocking":
        stream = spead2.send.UdpStream(spead2.ThreadPool(), endpoint, config)

        def run(n: int) -> None:
            for _ in range(n):
                stream.send_heap(heap)

    else:
        loop = asyncio.new_event_loop()

        async def make() -> spead2.send.asyncio.UdpStream:
            return spead2.send.asyncio.UdpStream(spead2.ThreadPool(), endpoint, config)

        astream = loop.run_until_complete(make())

        async def pump(n: int) -> None:
            pending: list[asyncio.Future[int]] = []
            for _ in range(n):
                if len(pending) >= args.window:
                    await pending.pop(0)
                pending.append(astream.async_send_heap(heap))
            for future in pending:
                await future

        def run(n: int) -> None:
            loop.run_until_complete(pump(n))

    run(max(1, args.heaps // 10))  # warm-up
    runs = []
    for _ in range(args.reps):
        c0, t0 = cpu(), time.perf_counter()
        run(args.heaps)
        t1, c1 = time.perf_counter(), cpu()
        runs.append({"wall": t1 - t0, "cpu": c1 - c0})
    report = {
        "version": spead2.__version__,
        "module": spead2.__file__,
        "packets_per_heap": len(packets),
        "heap_wire_bytes": sum(map(len, packets)),
        "runs": runs,
    }
    print(json.dumps(report))


def reference_python(explicit: str | None) -> str:
    if explicit:
        return explicit
    sys.path.insert(0, str(HERE.parent.parent / "tests" / "interop"))
    import refvenv

    python, _ = refvenv.reference_python()
    return str(python)


def run_worker(python: str, args: argparse.Namespace, heap_size: int, packet_size: int, port: int) -> dict:
    heaps = max(8, args.total_mib * 2**20 // heap_size)
    cmd = [python, str(HERE), "--worker", "--api", args.api, "--heap-size", str(heap_size),
           "--packet-size", str(packet_size), "--port", str(port), "--heaps", str(heaps), "--reps",
           str(args.reps), "--window", str(args.window), "--rate-gbps", str(args.rate_gbps)]  # fmt: skip
    if args.cpus:
        cmd = ["taskset", "-c", args.cpus, *cmd]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    with tempfile.TemporaryDirectory() as cwd:  # never import a checkout's spead2 from the cwd
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"worker failed ({python}):\n{proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["heaps"] = heaps
    return result


def summarise(result: dict, heap_size: int) -> dict[str, float]:
    runs, heaps = result["runs"], result["heaps"]
    wall = statistics.median(r["wall"] for r in runs)
    cpu = statistics.median(r["cpu"] for r in runs)
    packets = heaps * result["packets_per_heap"]
    return {
        "gbps": heaps * heap_size * 8 / wall / 1e9,
        "mpps": packets / wall / 1e6,
        "load": cpu / wall,
        "ns": cpu / packets * 1e9,
        "spead_gbps": heaps * result["heap_wire_bytes"] * 8 / wall / 1e9,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ref-python", help="the reference's interpreter [tests/interop/refvenv.py's venv]")
    parser.add_argument("--mine-python", default=sys.executable, help="ours [this interpreter]")
    parser.add_argument("--api", choices=["blocking", "asyncio"], default="blocking")
    parser.add_argument("--heap-sizes", default="1048576,65536")
    parser.add_argument("--packet-sizes", default="1472,9000")
    parser.add_argument("--total-mib", type=int, default=256, help="payload per timed run")
    parser.add_argument("--reps", type=int, default=3, help="timed runs per worker")
    parser.add_argument("--rounds", type=int, default=2, help="workers per implementation, alternating")
    parser.add_argument("--window", type=int, default=8, help="max_heaps, and asyncio futures in flight")
    parser.add_argument("--rate-gbps", type=float, default=0.0, help="rate limit (0: as fast as possible)")
    parser.add_argument("--cpus", help="taskset CPU list for the workers, e.g. 1")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--heap-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--packet-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--heaps", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    impls = [("ref", reference_python(args.ref_python)), ("mine", args.mine_python)]
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sink.bind(("127.0.0.1", 0))
    port = sink.getsockname()[1]
    what = f"rate limit {args.rate_gbps} Gb/s" if args.rate_gbps else "unlimited rate"
    print(f"# api={args.api}, {what}, window {args.window}, {args.total_mib} MiB per run, "
          f"median of {args.rounds}x{args.reps} runs, cpus={args.cpus or 'any'}")  # fmt: skip
    print(f"{'heap':>8} {'packet':>6} {'impl':<5} {'Gb/s':>7} {'Mpkt/s':>7} {'load':>5} {'ns CPU/pkt':>10} "
          f"{'ratio':>6} {'cpu ratio':>9}")  # fmt: skip
    for heap_size in map(int, args.heap_sizes.split(",")):
        for packet_size in map(int, args.packet_sizes.split(",")):
            results: dict[str, list[dict]] = {name: [] for name, _ in impls}
            for _ in range(args.rounds):
                for name, python in impls:
                    results[name].append(run_worker(python, args, heap_size, packet_size, port))
            base = None
            for name, _ in impls:
                merged = dict(results[name][0])
                merged["runs"] = [r for result in results[name] for r in result["runs"]]
                s = summarise(merged, heap_size)
                base = base or s
                line = (f"{heap_size:>8} {packet_size:>6} {name:<5} {s['gbps']:>7.2f} {s['mpps']:>7.3f} "
                        f"{s['load']:>5.2f} {s['ns']:>10.0f} {s['gbps'] / base['gbps']:>6.2f} "
                        f"{s['ns'] / base['ns']:>9.2f}")  # fmt: skip
                if args.rate_gbps:
                    achieved = s["spead_gbps"]
                    line += f"   SPEAD {achieved:.3f} Gb/s = {achieved / args.rate_gbps:.3f} x asked"
                print(line, flush=True)
    sink.close()


if __name__ == "__main__":
    main()
