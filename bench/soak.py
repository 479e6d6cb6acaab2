"""Soak: millions of packets with reordering, loss and duplicates through a live stream, with RSS
sampled over time.

    python bench/soak.py [--packets 10000000] [--loss 0.001] [--dup 0.0005] [--window 32] ...

A producer thread writes heaps of ``--heap-packets`` packets each (every heap's item starts with
its cnt, then a pattern), shuffles them inside windows of ``--window`` packets, drops and
duplicates some at random, and feeds them to an InprocQueue (``--transport inproc``: lossless,
so the script knows exactly which heaps arrived whole) or sends them over UDP on loopback
(``--transport udp``, paced by the stream's packet count so that the socket never overflows).
A blocking Stream with out-of-order assembly consumes them.

Checks: every heap none of whose packets was dropped is delivered, with the right contents;
no other heap is delivered as complete; RSS after warm-up stays flat (the spread of the samples
after the first ``--warmup`` fraction is reported, and must stay under ``--rss-slack`` MiB).
Exit status 0 when every check passes.  ``--json FILE`` writes the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import struct
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

import spead2
import spead2.recv
import spead2.send

_CNT = struct.Struct(">Q")


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1 << 20)


class Templates:
    """The packets of one heap, made once; each heap patches its cnt into them."""

    def __init__(self, heap_packets: int, payload: int) -> None:
        self.size = heap_packets * payload  # item bytes: the cnt, then a pattern
        item = (bytes(8) + bytes(range(256)) * (self.size // 256 + 1))[: self.size]
        heap = spead2.send.Heap()
        heap.add_item(
            spead2.Item(0x1000, "data", "", (self.size,), np.uint8, value=np.frombuffer(item, np.uint8))
        )
        packets = list(spead2.send.PacketGenerator(heap, 1, payload + 8 + 8 * 5))
        self.packets = [bytearray(p) for p in packets]
        self.n = len(packets)
        # HEAP_CNT is the first pointer: its low 40 bits at bytes 11..16; the item starts right
        # after the first packet's pointers
        n_items = struct.unpack_from(">Q", packets[0])[0] & 0xFFFF
        self.item_offset = 8 + 8 * n_items

    def heap(self, cnt: int) -> list[bytes]:
        out = []
        for i, p in enumerate(self.packets):
            p[11:16] = cnt.to_bytes(5, "big")
            if i == 0:
                _CNT.pack_into(p, self.item_offset, cnt)
            out.append(bytes(p))
        return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=10_000_000)
    ap.add_argument("--heap-packets", type=int, default=8)
    ap.add_argument("--payload", type=int, default=1024, help="payload bytes per packet")
    ap.add_argument("--loss", type=float, default=0.001)
    ap.add_argument("--dup", type=float, default=0.0005)
    ap.add_argument("--window", type=int, default=32, help="packets shuffled together")
    ap.add_argument("--max-heaps", type=int, default=8)
    ap.add_argument("--ring", type=int, default=8)
    ap.add_argument("--ahead", type=int, default=4000, help="heaps the producer may run ahead")
    ap.add_argument("--sample", type=float, default=0.5, help="seconds between RSS samples")
    ap.add_argument("--warmup", type=float, default=0.2, help="fraction of the run that is warm-up")
    ap.add_argument("--rss-slack", type=float, default=8.0, help="MiB of RSS spread allowed after warm-up")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--transport", choices=("inproc", "udp"), default="inproc")
    ap.add_argument("--backlog", type=int, default=500, help="udp: packets in flight at most")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.window > (args.max_heaps - 2) * args.heap_packets:
        ap.error("--window must stay within max_heaps - 2 heaps, or complete heaps may be evicted")

    tpl = Templates(args.heap_packets, args.payload)
    n_heaps = args.packets // tpl.n
    rng = random.Random(args.seed)
    dropped_heaps = bytearray(n_heaps + 1)  # 1: some packet of the heap was dropped
    delivered = bytearray(n_heaps + 1)
    progress = {"produced": 0, "seen": 0, "sent": 0, "lost_in_socket": 0}
    cond = threading.Condition()
    queue = spead2.InprocQueue()
    udp_rx = udp_tx = None
    if args.transport == "udp":
        udp_rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp_rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        udp_rx.bind(("127.0.0.1", 0))
        udp_tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp_tx.connect(udp_rx.getsockname())
    streams: list[spead2.recv.Stream] = []

    def seen_packets() -> int:
        st = streams[0].stats
        return int(st["packets"]) + st.drops["too_large"]

    def send(p: bytes) -> None:
        if udp_tx is None:
            queue.add_packet(p)
            return
        udp_tx.send(p)
        progress["sent"] += 1
        if progress["sent"] % 128 == 0:
            while progress["sent"] - seen_packets() > args.backlog:
                time.sleep(0.0002)
        progress["sent"] -= 1  # counted by the caller

    def produce() -> None:
        window: list[tuple[int, bytes]] = []
        for cnt in range(1, n_heaps + 1):
            window += [(cnt, p) for p in tpl.heap(cnt)]
            if len(window) >= args.window or cnt == n_heaps:
                rng.shuffle(window)
                for c, p in window:
                    r = rng.random()
                    if r < args.loss:
                        dropped_heaps[c] = 1
                        continue
                    send(p)
                    progress["sent"] += 1
                    if r > 1 - args.dup:
                        send(p)
                        progress["sent"] += 1
                window = []
                with cond:
                    progress["produced"] = cnt
                    while cnt - progress["seen"] > args.ahead:
                        cond.wait(0.1)
        if udp_tx is not None:
            deadline = time.monotonic() + 10
            while seen_packets() < progress["sent"] and time.monotonic() < deadline:
                time.sleep(0.001)
            progress["lost_in_socket"] = progress["sent"] - seen_packets()
            end = spead2.send.ItemGroup().get_end()
            for p in spead2.send.PacketGenerator(end, n_heaps + 1, 1472):
                udp_tx.send(p)
        queue.stop()

    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def sample() -> None:
        t0 = time.monotonic()
        while not done.wait(args.sample):
            samples.append((time.monotonic() - t0, rss_mib()))

    bad: list[str] = []
    with spead2.ThreadPool() as pool:
        stream = spead2.recv.Stream(
            pool,
            spead2.recv.StreamConfig(max_heaps=args.max_heaps, allow_out_of_order=True),
            spead2.recv.RingStreamConfig(heaps=args.ring),
        )
        streams.append(stream)
        if udp_rx is not None:
            stream.add_udp_reader(udp_rx, max_size=args.payload + 1024)
            udp_rx.close()
        else:
            stream.add_inproc_reader(queue)
        producer = threading.Thread(target=produce, name="soak-producer", daemon=True)
        sampler = threading.Thread(target=sample, name="soak-rss", daemon=True)
        t0 = time.monotonic()
        rss0 = rss_mib()
        producer.start()
        sampler.start()
        n = 0
        for heap in stream:
            n += 1
            cnt = heap.cnt
            (item,) = heap.get_items()
            if len(item) != tpl.size or _CNT.unpack_from(bytes(item[:8]))[0] != cnt:
                bad.append(f"heap {cnt}: wrong contents")
            if delivered[cnt]:
                bad.append(f"heap {cnt}: delivered twice")
            delivered[cnt] = 1
            if n % 256 == 0:
                with cond:
                    progress["seen"] = max(progress["seen"], cnt)
                    cond.notify_all()
        took = time.monotonic() - t0
        done.set()
        producer.join()
        stream.stop()
        stats = stream.stats

    whole = [c for c in range(1, n_heaps + 1) if not dropped_heaps[c]]
    missing = [c for c in whole if not delivered[c]]
    extra = [c for c in range(1, n_heaps + 1) if delivered[c] and dropped_heaps[c]]
    if progress["lost_in_socket"]:
        bad.append(
            f"{progress['lost_in_socket']} datagrams lost in the socket (pacing failed): not a receiver fault"
        )
    if missing:
        bad.append(f"{len(missing)} heaps that arrived whole were not delivered (first: {missing[:5]})")
    if extra:
        bad.append(
            f"{len(extra)} heaps with a dropped packet were delivered as complete (first: {extra[:5]})"
        )
    steady = [r for t, r in samples if t >= args.warmup * took] or [r for _, r in samples]
    spread = (max(steady) - min(steady)) if steady else 0.0
    if spread > args.rss_slack:
        bad.append(f"RSS after warm-up spread over {spread:.1f} MiB")
    figures = {
        "transport": args.transport,
        "packets_sent": progress["sent"],
        "heaps": n_heaps,
        "heaps_whole": len(whole),
        "heaps_delivered": n,
        "seconds": round(took, 1),
        "packets_per_second": round(progress["sent"] / took),
        "rss_start_mib": round(rss0, 1),
        "rss_after_warmup_min_mib": round(min(steady), 1) if steady else None,
        "rss_after_warmup_max_mib": round(max(steady), 1) if steady else None,
        "rss_peak_mib": round(max(r for _, r in samples), 1) if samples else None,
        "rss_samples": [[round(t, 1), round(r, 1)] for t, r in samples],
        "stats": {
            k: stats[k]
            for k in (
                "heaps",
                "packets",
                "incomplete_heaps_evicted",
                "incomplete_heaps_flushed",
                "worker_blocked",
            )
        },
        "drops": {k: v for k, v in stats.drops.items() if v},
        "problems": bad,
    }
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    short = {k: v for k, v in figures.items() if k != "rss_samples"}
    print(json.dumps(short, indent=1))
    print("RSS (MiB) over time:", " ".join(f"{r:.0f}" for _, r in samples[:: max(1, len(samples) // 40)]))
    print("PASS" if not bad else "FAIL")
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
