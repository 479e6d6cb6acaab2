"""Hostile senders against this package and against the reference spead2, side by side.

    python bench/hostile_reference.py [--reference PYTHON] [--timeout 20] [--limit-gib 6]

Each scenario runs in a child process of each implementation (same script: the receive API is the
same), guarded by a timeout and an address-space limit (RLIMIT_AS) so that a receiver that
allocates what a packet claims cannot take the machine down.  Reported: the valid heaps that
came out, whether the stream ended, and the child's peak RSS (VmHWM).  The reference is the
interpreter of a venv with spead2 4.5.1 installed (default: ~/.cache/spead2-ref-venv); it is only
run, never imported here.

Scenarios (every one sends 3 valid heaps after the hostile packets, then ends the input):

* ``claim_2^40``: one packet claiming a heap of 2^40 - 64 bytes (64 bytes of payload);
* ``claim_64GiB``: one packet claiming 64 GiB;
* ``claims_1GiB``: two packets each claiming 1 GiB (64 bytes of payload each);
* ``claims_8GiB``: four packets each claiming 8 GiB (under the address-space limit: the
  reference cannot even reserve them; without the limit it would touch 32 GiB);
* ``flood``: 100 one-packet heaps with random cnts, each claiming 256 MiB (every one evicts
  another: what matters is the time and memory each claim costs).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

WORKER = r"""
import json, random, struct, sys, threading, time
import spead2, spead2.recv

def ptr(i, v, imm=True): return (int(imm) << 63) | (i << 40) | v
def pkt(ptrs, payload=b""):
    h = (0x53 << 56) | (4 << 48) | (3 << 40) | (5 << 32) | len(ptrs)
    return struct.pack(">Q", h) + b"".join(struct.pack(">Q", p) for p in ptrs) + payload
def claim(cnt, length, plen=64):
    return pkt([ptr(1, cnt), ptr(2, length), ptr(3, 0), ptr(4, plen), ptr(0x1000, 0, False)], bytes(plen))
def valid(cnt):
    return pkt([ptr(1, cnt), ptr(2, 8), ptr(3, 0), ptr(4, 8), ptr(0x1000, 0, False)], struct.pack(">Q", cnt))

scenario = sys.argv[1]
rng = random.Random(1)
hostile = {
    "claim_2^40": lambda: [claim(100, (1 << 40) - 64)],
    "claim_64GiB": lambda: [claim(100, 64 << 30)],
    "claims_1GiB": lambda: [claim(100 + i, 1 << 30) for i in range(2)],
    "claims_8GiB": lambda: [claim(100 + i, 8 << 30) for i in range(4)],
    "flood": lambda: [claim(rng.randrange(1000, 1 << 40), 256 << 20) for _ in range(100)],
}[scenario]()
packets = hostile + [valid(c) for c in (1, 2, 3)]
queue = spead2.InprocQueue()
for p in packets:
    queue.add_packet(p)
queue.stop()
stream = spead2.recv.Stream(spead2.ThreadPool(1), spead2.recv.StreamConfig(max_heaps=4))
stream.add_inproc_reader(queue)
got = []
def consume():
    for heap in stream:
        if isinstance(heap, spead2.recv.Heap) and heap.cnt in (1, 2, 3):
            got.append(heap.cnt)
t0 = time.monotonic()
consumer = threading.Thread(target=consume, daemon=True)
consumer.start()
consumer.join(float(sys.argv[2]))
print(json.dumps({"valid_heaps": got, "ended": not consumer.is_alive(),
                  "seconds": round(time.monotonic() - t0, 2)}), flush=True)
import os
os._exit(0)
"""

SCENARIOS = ["claim_2^40", "claim_64GiB", "claims_1GiB", "claims_8GiB", "flood"]


def vm_hwm_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run(python: str, env: dict[str, str], scenario: str, timeout: float, limit: int) -> dict[str, object]:
    def guard() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "worker.py"
        script.write_text(WORKER)
        proc = subprocess.Popen(
            [python, str(script), scenario, str(timeout)],
            cwd=tmp,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=guard,
        )
        peak = 0.0
        deadline = time.monotonic() + timeout + 10
        while proc.poll() is None and time.monotonic() < deadline:
            peak = max(peak, vm_hwm_mib(proc.pid) or 0.0)
            time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
        out, err = proc.communicate()
    result: dict[str, object] = {"peak_rss_mib": round(peak)}
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if lines:
        result.update(json.loads(lines[-1]))
    else:
        result["error"] = (err.strip().splitlines() or ["killed"])[-1][:200]
    notes = [line for line in err.splitlines() if "bad_alloc" in line or "exception" in line.lower()]
    if notes:
        result["stderr"] = notes[0][:200]
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", default=str(Path.home() / ".cache" / "spead2-ref-venv" / "bin" / "python"))
    ap.add_argument("--ours", default=sys.executable)
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds to wait for the 3 valid heaps")
    ap.add_argument("--limit-gib", type=float, default=6.0, help="address-space limit of each child")
    ap.add_argument("--scenario", action="append", choices=SCENARIOS)
    args = ap.parse_args()
    limit = int(args.limit_gib * (1 << 30))
    base_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    impls = {"ours": (args.ours, {**base_env, "PYTHONPATH": str(ROOT)})}
    if Path(args.reference).exists():
        impls["reference"] = (args.reference, base_env)
    else:
        print(f"no reference interpreter at {args.reference}: ours only", file=sys.stderr)
    print("| scenario | impl | valid heaps (of 3) | stream ended | seconds | peak RSS MiB | note |")
    print("|---|---|---|---|---|---|---|")
    for scenario in args.scenario or SCENARIOS:
        for name, (python, env) in impls.items():
            r = run(python, env, scenario, args.timeout, limit)
            note = r.get("stderr") or r.get("error") or ""
            valid = r.get("valid_heaps", [])
            assert isinstance(valid, list)
            print(
                f"| {scenario} | {name} | {len(valid)} | {r.get('ended', False)} | "
                f"{r.get('seconds', '-') if r.get('ended') else '-'} | {r['peak_rss_mib']} | {note} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
