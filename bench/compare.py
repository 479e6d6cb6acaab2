"""Receive benchmarks, ours beside the reference's (run as ``python bench/compare.py``; this was
the local ``spead2_bench`` before that name went to the reference's network benchmark).

``decode``
    In-memory decode speed (``add_buffer_reader``, no sockets).  With the project's benchmark
    harness (``bench/buffer_decode.py``) and a reference interpreter, it runs the harness, which
    compares both in one run.  Without them it runs a built-in version: a buffer made by this
    package's encoder (spead2.send), decoded in a process of each interpreter found (ours, and the reference's
    if there is one), figures side by side.
``udp``
    Highest lossless UDP loopback rate and receiver CPU per packet (``bench/udp_lossless.py``).
    Its sender is the reference spead2, so this needs the harness and the reference.

The reference is looked for as ``--ref-python``, ``$SPEAD2_REF_PYTHON``,
``$SPEAD2_REF_VENV/bin/python``, then ``~/.cache/spead2-ref-venv/bin/python`` (as the harness
does); the harness as ``--bench-dir``, ``$SPEAD2_BENCH_DIR``, ``bench/`` of the source tree, then
``../shared/bench`` beside it.  Arguments after ``--`` go to the harness unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import spead2
from spead2.tools import _cli
from spead2.tools._cli import ToolError

PROG = "bench/compare.py"
HARNESS_FILES = ("buffer_decode.py", "udp_lossless.py")


# ---------------------------------------------------------------- finding things


def source_root() -> Path:
    """The source tree this script belongs to."""
    return Path(__file__).resolve().parent.parent


def find_bench_dir(explicit: str | None) -> tuple[Path | None, list[Path]]:
    """The harness directory, and every place looked at."""
    candidates: list[Path] = []
    if explicit:
        candidates.append(Path(explicit))
    elif os.environ.get("SPEAD2_BENCH_DIR"):
        candidates.append(Path(os.environ["SPEAD2_BENCH_DIR"]))
    else:
        root = source_root()
        candidates += [root / "bench", root.parent / "shared" / "bench"]
    for candidate in candidates:
        if all((candidate / name).is_file() for name in HARNESS_FILES):
            return candidate.resolve(), candidates
    return None, candidates


def find_ref_python(explicit: str | None) -> Path | None:
    if explicit:
        return Path(explicit)
    if os.environ.get("SPEAD2_REF_PYTHON"):
        return Path(os.environ["SPEAD2_REF_PYTHON"])
    if os.environ.get("SPEAD2_REF_VENV"):
        return Path(os.environ["SPEAD2_REF_VENV"]) / "bin" / "python"
    return Path.home() / ".cache" / "spead2-ref-venv" / "bin" / "python"


def clean_env() -> dict[str, str]:
    """The environment for another interpreter: no PYTHONPATH (both packages import as spead2)."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


@dataclass
class Interpreter:
    label: str
    python: str
    version: str
    location: str
    env: dict[str, str] | None  # None: inherit (ours)


_PROBE = (
    "import importlib.util, spead2; print(spead2.__version__); print(spead2.__file__); "
    "print(importlib.util.find_spec('spead2._kernel') is not None)"
)


def probe(python: Path) -> tuple[str, str, bool] | None:
    """(spead2 version, where it is imported from, whether it is this project's package) for
    ``python``, or None if it has no spead2."""
    if not python.exists():
        return None
    try:
        proc = subprocess.run(
            [str(python), "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=60,
            env=clean_env(),
            cwd=tempfile.gettempdir(),
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    version, location, is_ours = proc.stdout.strip().splitlines()[-3:]
    return version, location, is_ours == "True"


def reference(args: argparse.Namespace) -> tuple[Interpreter | None, str]:
    """The reference interpreter, or None with the reason."""
    python = find_ref_python(args.ref_python)
    assert python is not None
    found = probe(python)
    if found is None:
        return None, f"no reference spead2 at {python} (make one with bench/setup.sh, or pass --ref-python)"
    version, location, is_ours = found
    if is_ours:
        return None, f"{python} imports this package ({location}), not the reference"
    return Interpreter("reference", str(python), version, location, clean_env()), ""


def ours() -> Interpreter:
    return Interpreter("aiospead2", sys.executable, spead2.__version__, spead2.__file__, None)


# ---------------------------------------------------------------- harness


def run_harness(script: Path, args: list[str]) -> int:
    command = [sys.executable, str(script), *args]
    print("$ " + " ".join(command), flush=True)
    return subprocess.run(command, cwd=script.parent).returncode


# ---------------------------------------------------------------- built-in decode benchmark

#: Runs under any implementation of the receive API (ours or the reference).
WORKER = r"""
import asyncio, json, sys, time
import spead2, spead2.recv
path, reps, warmup, api = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
with open(path, "rb") as f:
    data = f.read()

def configs():
    return spead2.recv.StreamConfig(), spead2.recv.RingStreamConfig()

def blocking():
    stream = spead2.recv.Stream(spead2.ThreadPool(), *configs())
    wall, cpu = time.perf_counter(), time.process_time()
    stream.add_buffer_reader(data)
    n = 0
    for heap in stream:
        n += 1
    return time.perf_counter() - wall, time.process_time() - cpu, n

async def coro():
    import spead2.recv.asyncio
    stream = spead2.recv.asyncio.Stream(spead2.ThreadPool(), *configs())
    wall, cpu = time.perf_counter(), time.process_time()
    stream.add_buffer_reader(data)
    n = 0
    async for heap in stream:
        n += 1
    return time.perf_counter() - wall, time.process_time() - cpu, n

def once():
    return blocking() if api == "blocking" else asyncio.run(coro())

for _ in range(warmup):
    once()
print(json.dumps([once() for _ in range(reps)]))
"""


def make_buffer(path: Path, total: int, heap_size: int, packet_size: int) -> tuple[int, int, int]:
    """Writes ``total`` bytes' worth of heaps of one uint8 item; returns (heaps, packets, bytes)."""
    import numpy as np

    import spead2.send

    group = spead2.send.ItemGroup(flavour=spead2.Flavour(4, 64, 48, 0))
    group.add_item(
        0x1000, "data", "payload", (heap_size,), np.uint8, value=np.arange(heap_size, dtype=np.uint8)
    )
    n_heaps = max(1, total // heap_size)
    packets = 0
    size = 0
    with open(path, "wb") as f:
        for cnt in range(1, n_heaps + 1):
            heap = group.get_heap(descriptors="stale", data="all")
            for packet in spead2.send.PacketGenerator(heap, cnt, packet_size):
                f.write(packet)
                packets += 1
                size += len(packet)
    return n_heaps, packets, size


def run_worker(interp: Interpreter, path: Path, reps: int, warmup: int, api: str) -> list[list[float]]:
    proc = subprocess.run(
        [interp.python, "-c", WORKER, str(path), str(reps), str(warmup), api],
        capture_output=True,
        text=True,
        timeout=600,
        env=interp.env,
        cwd=tempfile.gettempdir() if interp.env is not None else None,
    )
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ToolError(f"the {interp.label} decode worker failed: {tail}")
    result: list[list[float]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def builtin_decode(args: argparse.Namespace, interps: list[Interpreter]) -> int:
    heap_sizes = [int(x) for x in args.heap_sizes.split(",")]
    packet_sizes = [int(x) for x in args.packet_sizes.split(",")]
    total = args.total_mib << 20
    header = (
        f"{'heap':>9} {'packet':>6}  {'implementation':<14} {'GB/s':>7} {'heaps/s':>9} "
        f"{'Mpkt/s':>7} {'cpu':>5} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    status = 0
    with tempfile.TemporaryDirectory(prefix="spead2-bench-") as tmp:
        for heap_size in heap_sizes:
            for packet_size in packet_sizes:
                path = Path(tmp) / f"{heap_size}-{packet_size}.bin"
                n_heaps, n_packets, n_bytes = make_buffer(path, total, heap_size, packet_size)
                results: dict[str, list[list[float]]] = {i.label: [] for i in interps}
                for _ in range(args.rounds):
                    for interp in interps:
                        results[interp.label] += run_worker(interp, path, args.reps, args.warmup, args.api)
                base: float | None = None
                for interp in interps:
                    runs = results[interp.label]
                    wall = statistics.median(r[0] for r in runs)
                    cpu = statistics.median(r[1] / r[0] for r in runs)
                    counts = {int(r[2]) for r in runs}
                    gbs = n_bytes / wall / 1e9
                    base = base or gbs
                    note = "" if counts == {n_heaps} else f"  WARNING: {sorted(counts)} heaps, not {n_heaps}"
                    if note:
                        status = 1
                    print(
                        f"{_cli.size(heap_size):>9} {packet_size:>6}  {interp.label:<14} {gbs:7.2f} "
                        f"{n_heaps / wall:9.0f} {n_packets / wall / 1e6:7.2f} {cpu:5.2f} "
                        f"{gbs / base:6.2f}{note}"
                    )
    return status


# ---------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = _cli.Parser(
        prog=PROG,
        description="Receive benchmarks: this package beside the reference spead2 (if installed).",
        epilog="Arguments after -- are passed to the harness script unchanged, e.g. "
        "spead2_bench udp -- --packet-sizes 1472 --reps 1",
    )
    parser.add_argument("benchmark", nargs="?", choices=["decode", "udp", "all"], default="decode")
    parser.add_argument("--ref-python", metavar="PY", help="interpreter of a venv with the reference spead2")
    parser.add_argument("--bench-dir", metavar="DIR", help="directory of the benchmark harness scripts")
    parser.add_argument(
        "--builtin",
        action="store_true",
        help="decode: use the built-in benchmark even if the harness is found",
    )
    group = parser.add_argument_group("built-in decode benchmark")
    group.add_argument("--api", choices=["blocking", "asyncio"], default="blocking")
    group.add_argument(
        "--total-mib", type=_cli.positive_int, default=64, metavar="MIB", help="buffer size [64]"
    )
    group.add_argument("--heap-sizes", default="65536,1048576", metavar="LIST", help="[65536,1048576]")
    group.add_argument("--packet-sizes", default="1472,9000", metavar="LIST", help="[1472,9000]")
    group.add_argument(
        "--reps", type=_cli.positive_int, default=5, metavar="N", help="timed decodes per process [5]"
    )
    group.add_argument(
        "--warmup", type=_cli.non_negative_int, default=1, metavar="N", help="untimed decodes [1]"
    )
    group.add_argument(
        "--rounds", type=_cli.positive_int, default=1, metavar="N", help="processes per interpreter [1]"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    parser = build_parser()
    args = parser.parse_args(argv)
    for option in ("heap_sizes", "packet_sizes"):
        try:
            values = [int(x) for x in getattr(args, option).split(",")]
        except ValueError:
            parser.error(f"--{option.replace('_', '-')} must be a comma-separated list of integers")
        if not values or min(values) <= 0:
            parser.error(f"--{option.replace('_', '-')} must be positive")
    try:
        return run(args, extra)
    except ToolError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def run(args: argparse.Namespace, extra: list[str]) -> int:
    bench_dir, looked = find_bench_dir(args.bench_dir)
    ref, why_no_ref = reference(args)
    mine = ours()
    print(f"runs: aiospead2 {mine.version} ({mine.location}) under {mine.python}")
    if ref is not None:
        print(f"runs: reference spead2 {ref.version} ({ref.location}) under {ref.python}")
    else:
        print(f"note: {why_no_ref}: our figures only")
    if bench_dir is None:
        print("note: benchmark harness not found (looked in: " + ", ".join(map(str, looked)) + ")")
    else:
        print(f"harness: {bench_dir}")
    status = 0
    if args.benchmark in ("decode", "all"):
        print("\n== decode (add_buffer_reader, no sockets) ==", flush=True)
        if bench_dir is not None and ref is not None and not args.builtin:
            status |= run_harness(
                bench_dir / "buffer_decode.py",
                ["--ref-python", ref.python, "--mine-python", mine.python, *extra],
            )
        else:
            if extra:
                raise ToolError("arguments after -- are for the harness, which is not in use")
            print("built-in decode benchmark (buffer from this package's encoder)", flush=True)
            status |= builtin_decode(args, [i for i in (ref, mine) if i is not None])
    if args.benchmark in ("udp", "all"):
        print("\n== udp (lossless loopback rate, CPU per packet) ==", flush=True)
        if bench_dir is None or ref is None:
            missing = "the harness (udp_lossless.py)" if bench_dir is None else "the reference spead2"
            raise ToolError(
                f"the UDP benchmark needs {missing}: its sender is the reference spead2 "
                "(see bench/README.md; --bench-dir, --ref-python)"
            )
        status |= run_harness(
            bench_dir / "udp_lossless.py", ["--ref-python", ref.python, "--mine-python", mine.python, *extra]
        )
    return status


if __name__ == "__main__":
    sys.exit(main())
