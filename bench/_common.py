"""What the comparison scripts of bench/ share: finding (or creating) the reference's venv, starting
processes of either implementation with their CPU time measured, the reference's sender, and
printing figures with ratios.

Both implementations import as ``spead2``, so each runs in a process of its own: ours under
``--mine-python`` (default: the interpreter running the script), the reference under
``--ref-python`` (default: ``tests/interop/refvenv.py`` finds ``$SPEAD2_REF_PYTHON``,
``$SPEAD2_REF_VENV`` or ``~/.cache/spead2-ref-venv``, and creates that venv from PyPI if it is
missing).  CPU time is the rusage of the child process (all its threads).
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
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "interop"))
import refvenv  # noqa: E402


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ref-python", help="the reference's interpreter [found or created by refvenv.py]")
    parser.add_argument(
        "--mine-python", default=sys.executable, help="this project's interpreter [%(default)s]"
    )
    parser.add_argument("--pin", action="store_true", help="sender on CPU 0, the measured process on CPU 1")


def reference_python(explicit: str | None) -> str:
    if explicit:
        refvenv.probe(explicit)
        return explicit
    try:
        python, _ = refvenv.reference_python()
    except refvenv.Unavailable as exc:
        sys.exit(f"no reference spead2: {exc}")
    return str(python)


def reference_with(explicit: str | None, packages: dict[str, str]) -> str:
    """The reference's interpreter, with ``packages`` (module: pip requirement) installed into its
    venv where missing (refvenv.ensure_modules)."""
    python = reference_python(explicit)
    try:
        refvenv.ensure_modules(python, packages)
    except refvenv.Unavailable as exc:
        sys.exit(f"the reference's venv cannot be completed: {exc}")
    return python


def reference_for(receiver: str, explicit: str | None) -> str:
    """The reference's interpreter for these receivers: a chunk receiver needs numba and scipy."""
    if receiver == "chunk":
        return reference_with(explicit, {"numba": "numba", "scipy": "scipy"})
    return reference_python(explicit)


def add_worker_options(parser: argparse.ArgumentParser, reps: int = 3) -> None:
    """--cpus, --reps and --rounds of the scripts that run a worker per implementation and round."""
    parser.add_argument(
        "--cpus", type=int, default=0, help="pin the measured processes to the first N CPUs [unpinned]"
    )
    parser.add_argument("--reps", type=int, default=reps, help="timed runs per process (the best counts)")
    parser.add_argument("--rounds", type=int, default=3, help="processes per implementation (the median)")


def cpus_prefix(cpus: int) -> list[str]:
    """taskset to the first ``cpus`` CPUs; nothing for 0."""
    return ["taskset", "-c", ",".join(str(c) for c in range(cpus))] if cpus else []


def describe_cpus(cpus: int) -> str:
    return f"pinned to {cpus} CPU(s)" if cpus else "unpinned"


def run_worker(python: str, mine: str, code: str, *args: str, cpus: int = 0, timeout: float = 900) -> dict:
    """Runs ``python -c code args...`` (pinned with ``cpus``); returns its last JSON line."""
    proc = subprocess.run(
        cpus_prefix(cpus) + command(python, mine, "-c", code, *args),
        capture_output=True,
        text=True,
        env=env_for(python, mine),
        cwd=tempfile.gettempdir(),
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{python}: exit {proc.returncode}: {proc.stderr[-2000:]}")
    return last_json(proc.stdout.splitlines())


def env_for(python: str, mine: str) -> dict[str, str] | None:
    """The environment of a child: ours inherits; the reference gets no PYTHONPATH."""
    return None if python == mine else refvenv.clean_env()


def command(python: str, mine: str, *args: str) -> list[str]:
    return [python, *args] if python == mine else refvenv.command(python, *args)


def pinned(cmd: list[str], cpu: int | None) -> list[str]:
    return ["taskset", "-c", str(cpu), *cmd] if cpu is not None else cmd


@dataclass
class Child:
    """A child process whose stdout and stderr lines are collected, and whose CPU time is read
    when it ends (os.wait4)."""

    cmd: list[str]
    env: dict[str, str] | None = None
    stdin: bool = False  # a pipe to the child's stdin (tell())
    proc: subprocess.Popen[str] = field(init=False)
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)
    cpu: float = 0.0  # seconds, from mark() (or the start) to the end
    _start_cpu: float = 0.0

    def __post_init__(self) -> None:
        self.proc = subprocess.Popen(
            self.cmd,
            stdin=subprocess.PIPE if self.stdin else None,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
            cwd=tempfile.gettempdir(),
        )
        self._cond = threading.Condition()
        self._threads = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read(self, pipe: object, lines: list[str]) -> None:
        for line in pipe:  # type: ignore[attr-defined]
            with self._cond:
                lines.append(line)
                self._cond.notify_all()

    def wait_for(self, text: str, timeout: float = 60, mark: bool = True) -> None:
        """Waits for a line containing ``text``, then starts the CPU count (:meth:`mark`)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not any(text in line for line in self.out + self.err):
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise RuntimeError(f"{self.cmd[0]}: no {text!r}: {''.join(self.err)[-2000:]}")
                self._cond.wait(min(left, 0.5))
        if mark:
            self.mark()

    def tell(self, *commands: dict[str, object], close: bool = False) -> None:
        """Writes each command as a JSON line to the child's stdin (then closes it if asked)."""
        assert self.proc.stdin is not None
        for obj in commands:
            self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()
        if close:
            self.proc.stdin.close()

    def mark(self) -> None:
        """Starts the CPU count here (after start-up: interpreter, imports, sockets)."""
        self._start_cpu = self._cpu_now()

    def cpu_so_far(self) -> float:
        """CPU seconds (all threads) since :meth:`mark`, the child still running."""
        return self._cpu_now() - self._start_cpu

    def _cpu_now(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def finish(self, timeout: float = 120) -> int:
        """Waits for the end; returns the exit status and records the CPU time."""
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                self.proc.kill()
                pid, status, usage = os.wait4(self.proc.pid, 0)
                break
            time.sleep(0.02)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.cpu = usage.ru_utime + usage.ru_stime - self._start_cpu
        for thread in self._threads:
            thread.join(5)
        return self.proc.returncode


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def send_reference(
    ref: str, port: int, heaps: int, heap_size: int, packet: int, rate_gbps: float, cpu: int | None
) -> float:
    """Runs the reference's spead2_send.py to 127.0.0.1:port; returns its elapsed seconds."""
    script = str(Path(ref).parent / "spead2_send.py")
    args = ["--heaps", str(heaps), "--heap-size", str(heap_size), "--packet", str(packet), "--log", "ERROR"]
    if rate_gbps:
        args += ["--rate", str(rate_gbps)]
    start = time.monotonic()
    proc = subprocess.run(
        pinned(refvenv.command(ref, script, *args, f"127.0.0.1:{port}"), cpu),
        capture_output=True,
        text=True,
        env=refvenv.clean_env(),
        cwd=tempfile.gettempdir(),
        timeout=600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the reference sender failed: {proc.stderr[-2000:]}")
    return time.monotonic() - start


# A receiver for either implementation: a blocking stream on one UDP port until the sender's
# stop heap; prints a JSON line of counts, and of the process's CPU seconds from "ready" to the
# stop (without the interpreter's exit, which costs each implementation differently and would
# weigh on short trials).  The reference's and ours take the same code.
RECEIVER = r"""
import json, sys, time
import spead2, spead2.recv
port, heap_size = int(sys.argv[1]), int(sys.argv[2])
config = spead2.recv.StreamConfig(max_heaps=4)
config.memory_allocator = spead2.MemoryPool(heap_size, heap_size + 4096, 12, 8)
stream = spead2.recv.Stream(spead2.ThreadPool(), config, spead2.recv.RingStreamConfig(heaps=8))
stream.add_udp_reader(port, bind_hostname="127.0.0.1")
print("ready", flush=True)
start = time.process_time()
heaps = 0
for heap in stream:
    heaps += 1
cpu = time.process_time() - start
stats = stream.stats
print(json.dumps({"heaps": heaps, "packets": stats["packets"], "version": spead2.__version__, "cpu": cpu,
                  "incomplete": stats["incomplete_heaps_evicted"] + stats["incomplete_heaps_flushed"]}))
"""


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: Sequence[float], digits: int = 2) -> str:
    """median [min-max]"""
    return f"{median(values):.{digits}f} [{min(values):.{digits}f}-{max(values):.{digits}f}]"


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("  ".join(f"{h:>{w}}" for h, w in zip(headers, widths, strict=True)))
    for row in rows:
        print("  ".join(f"{v:>{w}}" for v, w in zip(row, widths, strict=True)))


def last_json(lines: list[str]) -> dict[str, object]:
    for line in reversed(lines):
        if line.startswith("{"):
            return dict(json.loads(line))
    raise RuntimeError("no JSON result line")
