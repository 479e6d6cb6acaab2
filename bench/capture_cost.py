#!/usr/bin/env python3
"""spead2_capture against this project's receiver: packets kept and CPU per packet, with the
reference's spead2_send.py as sender on loopback, in the same run.

    bench/capture_cost.py [--rates-gbps 1,2,3] [--heaps 1000] [--heap-size 1048576] [--packet 1472]
        [--reps 3] [--pin] [--ref-python PY] [--mine-python PY]

For each rate and rep: the receiver (a blocking stream, the sender's stop heap ends it) and then
spead2_capture (to a temporary file, stopped by SIGINT once the sender is done and the socket
drained) each get the same stream.  Reported per rate: the medians of packets kept (capture) and
complete heaps (receiver), CPU µs per packet of each, and the ratio capture / receiver (lower is
better; the goal is at most 1.2).  The reference's venv is found or created (tests/interop/refvenv.py).
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common


def run_receiver(args: argparse.Namespace, ref: str, rate: float) -> tuple[int, int, float]:
    """(complete heaps, packets, CPU seconds) of our receiver for one stream."""
    port = _common.free_port()
    child = _common.Child(
        _common.pinned(
            [args.mine_python, "-c", _common.RECEIVER, str(port), str(args.heap_size)],
            1 if args.pin else None,
        )
    )
    child.wait_for("ready")
    _common.send_reference(ref, port, args.heaps, args.heap_size, args.packet, rate, 0 if args.pin else None)
    if child.finish(timeout=30) != 0:
        raise RuntimeError(f"receiver failed: {''.join(child.err)[-2000:]}")
    result = _common.last_json(child.out)
    return int(result["heaps"]), int(result["packets"]), child.cpu  # type: ignore[call-overload]


def run_capture(args: argparse.Namespace, ref: str, rate: float) -> tuple[int, float]:
    """(packets captured, CPU seconds) of spead2_capture for one stream."""
    port = _common.free_port()
    with tempfile.TemporaryDirectory() as tmp:
        output = "-" if args.discard else str(Path(args.dir or tmp) / "capture_cost.pcap")
        cmd = [args.mine_python, "-m", "spead2.tools.capture", "-q", "-o", output, f"127.0.0.1:{port}"]
        cmd += ["--buffered-io"] if args.buffered_io else []
        child = _common.Child(_common.pinned(cmd, 1 if args.pin else None))
        child.wait_for("capturing UDP on")
        _common.send_reference(
            ref, port, args.heaps, args.heap_size, args.packet, rate, 0 if args.pin else None
        )
        time.sleep(0.5)  # let the capture drain its socket
        child.proc.send_signal(signal.SIGINT)
        if child.finish(timeout=60) != 0:
            raise RuntimeError(f"capture failed: {''.join(child.err)[-2000:]}")
    match = re.search(r": (\d+) packets", "".join(child.err))
    if match is None:
        raise RuntimeError(f"capture printed no count: {''.join(child.err)[-2000:]}")
    return int(match[1]), child.cpu


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates-gbps", default="1,2,3", help="offered rates, Gb/s [%(default)s]")
    parser.add_argument("--heaps", type=int, default=1000, help="heaps per stream [%(default)s]")
    parser.add_argument("--heap-size", type=int, default=1048576, help="[%(default)s]")
    parser.add_argument("--packet", type=int, default=1472, help="packet size [%(default)s]")
    parser.add_argument("--reps", type=int, default=3, help="[%(default)s]")
    parser.add_argument("--dir", help="directory of the capture file [a temporary directory]")
    parser.add_argument("--discard", action="store_true", help="capture to '-' (count only, no file)")
    parser.add_argument("--buffered-io", action="store_true", help="capture with --buffered-io (no O_DIRECT)")
    _common.add_common_options(parser)
    args = parser.parse_args()
    ref = _common.reference_python(args.ref_python)
    print(f"sender: the reference's spead2_send.py ({ref}); receiver and capture: {args.mine_python}")
    print(
        f"{args.heaps} heaps of {args.heap_size} B in {args.packet} B packets per stream, {args.reps} reps,"
        f" {'pinned (sender CPU 0, measured CPU 1)' if args.pin else 'unpinned'}"
    )
    rows = []
    for rate in [float(r) for r in args.rates_gbps.split(",")]:
        recv_heaps, recv_cost, cap_packets, cap_cost, sent = [], [], [], [], []
        for _ in range(args.reps):
            heaps, packets, cpu = run_receiver(args, ref, rate)
            recv_heaps.append(heaps)
            recv_cost.append(cpu / max(packets, 1) * 1e6)
            sent.append(packets)
            captured, cpu = run_capture(args, ref, rate)
            cap_packets.append(captured)
            cap_cost.append(cpu / max(captured, 1) * 1e6)
        r, c = _common.median(recv_cost), _common.median(cap_cost)
        rows.append(
            [
                f"{rate:g}",
                f"{_common.median(recv_heaps):.0f}/{args.heaps}",
                f"{_common.median(cap_packets):.0f}/{_common.median(sent):.0f}",
                f"{r:.2f}",
                f"{c:.2f}",
                f"{c / r:.2f}",
            ]
        )
    print()
    _common.print_table(
        ["Gb/s", "receiver heaps", "capture packets", "receiver us/pkt", "capture us/pkt", "ratio"], rows
    )
    print(
        "\nheaps: complete heaps received of those sent ; capture"
        " packets: captured of the packets the receiver counted at the same rate (a lossless receiver"
        " counts them all)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
