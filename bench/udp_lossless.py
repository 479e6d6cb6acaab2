#!/usr/bin/env python3
"""UDP over loopback, the reference's spead2_send.py as sender: the highest rate each receiver
(this project's, the reference's) takes without loss, and its CPU per packet at a fixed rate, in
the same run.

    bench/udp_lossless.py [--packet-sizes 1472,9000] [--heap-size 1048576] [--reps 3]
        [--cost-rates 1472:2.5,9000:12] [--tol 0.04] [--trial-seconds 0.4] [--pin]
        [--receiver stream|chunk] [--ref-python PY] [--mine-python PY]

A trial starts a receiver process (the same blocking-stream code under either interpreter: a
MemoryPool, max_heaps 4, 8-heap ring; the sender's stop heap ends it), sends about
--trial-seconds of heaps at a rate (the reference's own rate limiter; 0 = unlimited) and is
lossless when every heap arrived complete.  The search: two unlimited trials, and when both are
lossless the result is "sender-limited" (a lower bound); otherwise the rate is bisected to
--tol.  CPU per packet: the receiver process's CPU time (all threads, from its start to the stop
heap, not its exit) over its packets, median of 3 trials at the --cost-rates rate.  Ratios are
mine / reference (lossless rate: higher is better; CPU: lower is better).  The reference's venv is
found or created (tests/interop/refvenv.py).

``--receiver chunk`` runs bench/chunk_receiver.py instead (a ChunkRingStream, 8 heaps per chunk,
a numba place function; numba and scipy are installed into the reference's venv if missing),
started and stopped over its stdin.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common


def trial(
    python: str, args: argparse.Namespace, ref: str, packet: int, rate: float
) -> tuple[bool, float, float]:
    """(lossless, CPU µs per packet, achieved Gb/s) of one stream."""
    heaps = max(50, int((rate or 4.0) * 1e9 / 8 * args.trial_seconds / args.heap_size))
    port = _common.free_port()
    child = start_receiver(python, args, port, packet)
    seconds = _common.send_reference(ref, port, heaps, args.heap_size, packet, rate, 0 if args.pin else None)
    cpu = stop_chunk_receiver(child) if args.receiver == "chunk" else None
    if child.finish(timeout=5) != 0:  # a lost stop heap: killed, counted as a loss
        return False, float("nan"), 0.0
    result = _common.last_json(child.out)
    child.cpu = float(str(result["cpu"])) if cpu is None else cpu
    packets = int(result["packets"])  # type: ignore[call-overload]
    lossless = int(result["heaps"]) == heaps and not result.get("incomplete")  # type: ignore[call-overload]
    return lossless, child.cpu / max(packets, 1) * 1e6, heaps * args.heap_size * 8e-9 / seconds


def start_receiver(python: str, args: argparse.Namespace, port: int, packet: int) -> _common.Child:
    """The receiver process, once its socket is bound."""
    if args.receiver == "chunk":
        script = str(Path(__file__).resolve().parent / "chunk_receiver.py")
        cmd = _common.command(python, args.mine_python, script)
    else:
        cmd = _common.command(
            python, args.mine_python, "-c", _common.RECEIVER, str(port), str(args.heap_size)
        )
    child = _common.Child(
        _common.pinned(cmd, 1 if args.pin else None),
        env=_common.env_for(python, args.mine_python),
        stdin=args.receiver == "chunk",
    )
    if args.receiver == "chunk":
        start = {"host": "127.0.0.1", "port": port, "max_packet": packet, "heap_size": args.heap_size}
        child.tell({"cmd": "start", "buffer": 8 << 20, **start})
    child.wait_for("ready")
    return child


def stop_chunk_receiver(child: _common.Child) -> float:
    """Stops the chunk receiver; returns its CPU seconds up to its answer (not its exit, where
    unloading numba costs more than a trial's packets)."""
    child.tell({"cmd": "stop"})
    child.wait_for('"heaps"', timeout=10, mark=False)
    cpu = child.cpu_so_far()
    child.tell({"cmd": "exit"}, close=True)
    return cpu


def highest_lossless(python: str, args: argparse.Namespace, ref: str, packet: int) -> str:
    results = [trial(python, args, ref, packet, 0) for _ in range(2)]
    if all(ok for ok, _, _ in results):
        return f"{min(r[2] for r in results):.2f} (sender-limited)"
    low, high = 0.0, max(r[2] for r in results) * 1.1
    while high - low > args.tol * high:
        mid = (low + high) / 2
        if all(trial(python, args, ref, packet, mid)[0] for _ in range(2)):
            low = mid
        else:
            high = mid
    return f"{low:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--packet-sizes", default="1472,9000")
    parser.add_argument("--heap-size", type=int, default=1048576)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--cost-rates", default="1472:2.5,9000:12", help="PACKET:GBPS,... for CPU per packet")
    parser.add_argument("--tol", type=float, default=0.04)
    parser.add_argument("--trial-seconds", type=float, default=0.4)
    parser.add_argument(
        "--receiver", choices=["stream", "chunk"], default="stream", help="stream or bench/chunk_receiver.py"
    )
    _common.add_common_options(parser)
    args = parser.parse_args()
    ref = _common.reference_for(args.receiver, args.ref_python)
    cost_rates = {int(k): float(v) for k, v in (item.split(":") for item in args.cost_rates.split(","))}
    print(
        f"sender: the reference's spead2_send.py; {args.receiver} receivers: reference {ref}, "
        f"mine {args.mine_python}; "
        f"{'pinned (sender CPU 0, receiver CPU 1)' if args.pin else 'unpinned'}"
    )
    rows = []
    for packet in [int(p) for p in args.packet_sizes.split(",")]:
        found: dict[str, list[str]] = {"reference": [], "mine": []}
        cost: dict[str, list[float]] = {"reference": [], "mine": []}
        for _ in range(args.reps):
            for label, python in (("reference", ref), ("mine", args.mine_python)):
                found[label].append(highest_lossless(python, args, ref, packet))
                rate = cost_rates.get(packet, 2.0)
                cost[label] += [trial(python, args, ref, packet, rate)[1] for _ in range(3)]
        r, m = _common.median(cost["reference"]), _common.median(cost["mine"])
        rows.append(
            [
                str(packet),
                " / ".join(found["reference"]),
                " / ".join(found["mine"]),
                f"{cost_rates.get(packet, 2.0):g}",
                f"{r:.2f}",
                f"{m:.2f}",
                f"{m / r:.2f}",
            ]
        )
    print()
    _common.print_table(
        [
            "packet",
            "reference lossless Gb/s (per rep)",
            "mine lossless Gb/s (per rep)",
            "at Gb/s",
            "reference us/pkt",
            "mine us/pkt",
            "ratio",
        ],
        rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
