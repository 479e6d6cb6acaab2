#!/usr/bin/env python3
"""What a consumer pays per heap: ``ItemGroup.update``, alone and behind a receive loop, this
project against the reference, in the same run.

    bench/update_cost.py [--cpus 1] [--heaps 20000] [--reps 3] [--rounds 3]
        [--ref-python PY] [--mine-python PY]

The reference's BytesStream writes --heaps heaps of a product with six items of the kinds a
telescope sends (an immediate 48-bit counter, a float64 scalar, a variable-length string, a
float32 spectrum, a complex64 vector and a 2-D uint8 array of flags; descriptors in the first
heap) to a temporary file.  Each round runs each implementation in a process of its own
(alternating), which decodes the file with ``add_buffer_reader`` and times, per heap:

* ``update alone``: the heaps are received into a list first; only ``item_group.update(heap)``
  over that list is timed;
* ``blocking receive + update``: a blocking Stream with ``update`` in its ``for`` loop;
* ``asyncio receive + update``: the same with spead2.recv.asyncio.Stream and ``async for``.

Each process checks the last values it decoded and reports its best of --reps.  Reported:
microseconds per heap, the median over rounds [min - max], and the ratio mine / reference (lower
is better).  --cpus N pins both to the first N CPUs (taskset).  The reference's venv is found or
created (tests/interop/refvenv.py).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

MEASURES = {
    "update": "update alone",
    "blocking": "blocking receive + update",
    "asyncio": "asyncio receive + update",
}

# Run by the reference: argv = output path, number of heaps.
PRODUCT = r"""
import json, sys
import numpy as np
import spead2, spead2.send
path, count = sys.argv[1], int(sys.argv[2])
group = spead2.send.ItemGroup(flavour=spead2.Flavour(4, 64, 48, 0))
group.add_item(0x1800, "adc_count", "samples since the epoch", (), format=[("u", 48)])
group.add_item(0x1801, "centre_freq", "Hz", (), dtype=np.float64)
group.add_item(0x1802, "target", "what the dish points at", (None,), format=[("c", 8)])
group.add_item(0x1803, "spectrum", "power per channel", (1024,), dtype=np.float32)
group.add_item(0x1804, "beam", "beamformer weights", (256,), dtype=np.complex64)
group.add_item(0x1805, "flags", "per channel and polarisation", (64, 4), dtype=np.uint8)
out = spead2.send.BytesStream(spead2.ThreadPool(), spead2.send.StreamConfig(max_packet_size=9000))
channels = np.arange(1024, dtype=np.float32)
for n in range(count):
    group["adc_count"].value = 4096 * n
    group["centre_freq"].value = 1.284e9 + n
    group["target"].value = f"source {n % 97}"
    group["spectrum"].value = channels + n
    group["beam"].value = np.full(256, n + 1j, np.complex64)
    group["flags"].value = np.full((64, 4), n % 256, np.uint8)
    out.send_heap(group.get_heap(descriptors="all" if n == 0 else "none", data="all"))
with open(path, "wb") as f:
    f.write(out.getvalue())
print(json.dumps({"heaps": count, "bytes": len(out.getvalue())}))
"""

# Run by either implementation: argv = file, number of heaps, reps.
WORKER = r"""
import asyncio, json, sys, time
import spead2, spead2.recv, spead2.recv.asyncio
path, count, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = open(path, "rb").read()
ring = spead2.recv.RingStreamConfig(heaps=32)

def opened(cls):
    stream = cls(spead2.ThreadPool(), spead2.recv.StreamConfig(max_heaps=4), ring)
    stream.add_buffer_reader(data)
    return stream

def checked(group, heaps):
    if heaps != count or group["adc_count"].value != 4096 * (count - 1):
        raise SystemExit(f"decoded {heaps} heaps of {count}; last adc_count {group['adc_count'].value}")
    if group["target"].value != f"source {(count - 1) % 97}" or group["spectrum"].value[3] != count + 2:
        raise SystemExit("the last heap's values are wrong")

def update_alone():
    heaps = list(opened(spead2.recv.Stream))
    group = spead2.ItemGroup()
    start = time.perf_counter()
    for heap in heaps:
        group.update(heap)
    elapsed = time.perf_counter() - start
    checked(group, len(heaps))
    return elapsed

def blocking():
    group, heaps = spead2.ItemGroup(), 0
    start = time.perf_counter()
    for heap in opened(spead2.recv.Stream):
        group.update(heap)
        heaps += 1
    elapsed = time.perf_counter() - start
    checked(group, heaps)
    return elapsed

async def in_asyncio():
    group, heaps = spead2.ItemGroup(), 0
    start = time.perf_counter()
    async for heap in opened(spead2.recv.asyncio.Stream):
        group.update(heap)
        heaps += 1
    elapsed = time.perf_counter() - start
    checked(group, heaps)
    return elapsed

runs = {"update": update_alone, "blocking": blocking, "asyncio": lambda: asyncio.run(in_asyncio())}
best = {name: min(run() for _ in range(reps)) / count * 1e6 for name, run in runs.items()}
print(json.dumps({"us": best, "version": spead2.__version__, "file": spead2.__file__}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--heaps", type=int, default=20000)
    _common.add_worker_options(parser)
    _common.add_common_options(parser)
    args = parser.parse_args()
    ref = _common.reference_python(args.ref_python)
    mine = args.mine_python
    print(
        f"{args.heaps} heaps of 6 items, {_common.describe_cpus(args.cpus)}, best of {args.reps} per "
        f"process, median of {args.rounds} rounds; us per heap; ratio mine / reference (lower is better)"
    )
    figures: dict[str, dict[str, list[float]]] = {"reference": {}, "mine": {}}
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "product.spead")
        _common.run_worker(ref, mine, PRODUCT, path, str(args.heaps))
        for _ in range(args.rounds):
            for label, python in (("reference", ref), ("mine", mine)):
                result = _common.run_worker(
                    python, mine, WORKER, path, str(args.heaps), str(args.reps), cpus=args.cpus
                )
                for name, micros in dict(result["us"]).items():  # type: ignore[call-overload]
                    figures[label].setdefault(name, []).append(float(micros))
    rows = []
    for name, title in MEASURES.items():
        r, m = figures["reference"][name], figures["mine"][name]
        rows.append(
            [title, _common.spread(r), _common.spread(m), f"{_common.median(m) / _common.median(r):.2f}"]
        )
    print()
    _common.print_table(["", "reference us", "mine us", "ratio"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
