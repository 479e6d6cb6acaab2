#!/usr/bin/env python3
"""The floor of UDP receive CPU on this machine: a C receiver that only drains the socket
(blocking ``recvmmsg`` of up to 64 datagrams, MSG_WAITFORONE, no SPEAD work at all), beside the
reference's and our blocking stream receivers, at the same offered load from the reference's
sender, in the same run.

    bench/udp_floor.py [--packet-sizes 1472,9000] [--cost-rates 1472:2.5,9000:12] [--trials 5]
        [--receiver stream|chunk] [--heap-size 1048576] [--pin] [--ref-python PY] [--mine-python PY]

The reference's and our receivers are those of bench/udp_lossless.py (``--receiver chunk``: a
ChunkRingStream, bench/chunk_receiver.py), measured the same way.

No receiver built on kernel sockets can spend less CPU per packet than the floor, whatever it
does with the packets: ``floor / reference`` is the lowest ratio to the reference that any such
receiver can reach here.  The C receiver is compiled with ``cc`` into a temporary directory.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common
import udp_lossless

FLOOR_C = r"""
#define _GNU_SOURCE
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>

enum { SLOTS = 64, SLOT = 65536 };

static double cpu_now(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

int main(int argc, char **argv)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int size = 8 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1])),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fd, (struct sockaddr *) &addr, sizeof(addr)) != 0)
        return 1;
    struct timeval idle = {0, 300000};    /* the end: 300 ms without a datagram */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &idle, sizeof(idle));
    static char buffers[SLOTS][SLOT];
    struct mmsghdr msgs[SLOTS];
    struct iovec iovs[SLOTS];
    for (int i = 0; i < SLOTS; i++)
    {
        iovs[i] = (struct iovec){buffers[i], SLOT};
        msgs[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &iovs[i], .msg_iovlen = 1}};
    }
    printf("ready\n");
    fflush(stdout);
    long packets = 0;
    double start = 0;
    for (;;)
    {
        int n = recvmmsg(fd, msgs, SLOTS, MSG_WAITFORONE, NULL);
        if (n <= 0 && packets > 0)
            break;
        if (n > 0 && packets == 0)
            start = cpu_now();
        packets += n > 0 ? n : 0;
    }
    printf("{\"packets\": %ld, \"cpu\": %.6f}\n", packets, cpu_now() - start);
    return 0;
}
"""


def build_floor(directory: Path) -> Path:
    source, binary = directory / "floor.c", directory / "floor"
    source.write_text(FLOOR_C)
    subprocess.run(["cc", "-O2", "-o", str(binary), str(source)], check=True)
    return binary


def floor_trial(binary: Path, args: argparse.Namespace, ref: str, packet: int, rate: float) -> float:
    port = _common.free_port()
    child = _common.Child(_common.pinned([str(binary), str(port)], 1 if args.pin else None))
    child.wait_for("ready")
    heaps = max(50, int(rate * 1e9 / 8 * args.trial_seconds / args.heap_size))
    _common.send_reference(ref, port, heaps, args.heap_size, packet, rate, 0 if args.pin else None)
    child.finish(timeout=10)
    result = _common.last_json(child.out)
    cpu, packets = float(str(result["cpu"])), int(str(result["packets"]))
    return cpu / max(packets, 1) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--packet-sizes", default="1472,9000")
    parser.add_argument("--cost-rates", default="1472:2.5,9000:12", help="PACKET:GBPS,...")
    parser.add_argument("--trials", type=int, default=5, help="trials per receiver (interleaved; the median)")
    parser.add_argument("--heap-size", type=int, default=1048576)
    parser.add_argument("--trial-seconds", type=float, default=0.4)
    parser.add_argument("--receiver", choices=["stream", "chunk"], default="stream")
    _common.add_common_options(parser)
    args = parser.parse_args()
    ref = _common.reference_for(args.receiver, args.ref_python)
    rates = {int(k): float(v) for k, v in (item.split(":") for item in args.cost_rates.split(","))}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        binary = build_floor(Path(tmp))
        for packet in [int(p) for p in args.packet_sizes.split(",")]:
            rate = rates.get(packet, 2.0)
            got: dict[str, list[float]] = {"floor": [], "reference": [], "mine": []}
            for _ in range(args.trials):
                got["floor"].append(floor_trial(binary, args, ref, packet, rate))
                got["reference"].append(udp_lossless.trial(ref, args, ref, packet, rate)[1])
                got["mine"].append(udp_lossless.trial(args.mine_python, args, ref, packet, rate)[1])
            f, r, m = (_common.median(got[k]) for k in ("floor", "reference", "mine"))
            rows.append(
                [str(packet), f"{rate:g}", f"{f:.2f}", f"{r:.2f}", f"{m:.2f}", f"{f / r:.2f}", f"{m / r:.2f}"]
            )
    where = "pinned (sender CPU 0, receivers CPU 1)" if args.pin else "unpinned"
    print(f"{args.receiver} receivers' CPU µs/packet, median of {args.trials} trials; {where}")
    _common.print_table(["packet", "Gb/s", "floor", "reference", "mine", "floor/ref", "mine/ref"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
