"""spead2_bench: the reference's network benchmark (master and agent) and its control protocol.

Both directions against the reference on loopback: our master drives the reference's agent, and
the reference's master (its own code, run in its venv) drives our agent.  Without the reference,
the agent is driven by hand with the ``start`` command a reference master sent (recorded from one
on loopback), and with heaps from our demo sender or the reference's spead2_send.py.  The master
needs ``spead2.send``; its tests skip without it.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from test_tools_recv import TIMEOUT, ToolProcess, free_port

from spead2.tools import _benchmaster, bench, demo

# What the reference's master (spead2_bench.py master --heap-size 65536 127.0.0.1:9200) sent.
REFERENCE_START: dict[str, Any] = {
    "cmd": "start",
    "args": {
        "log": "INFO", "quiet": False, "heap_size": 65536, "multicast": None, "pyspead": False,
        "addr_bits": 40, "burst": 65536, "burst_rate_ratio": 1.05, "max_heaps": 4, "rate_method": "AUTO",
        "ttl": None, "send_buffer": None, "send_bind": None, "send_ibv": False, "send_ibv_vector": 0,
        "send_ibv_max_poll": 10, "send-affinity": None, "send-threads": 1, "memcpy_nt": False,
        "concurrent_heaps": 4, "substreams": 1, "ring_heaps": 4, "mem_max_free": 12, "mem_initial": 8,
        "packet": None, "recv_buffer": None, "recv_bind": None, "recv_ibv": False, "recv_ibv_vector": 0,
        "recv_ibv_max_poll": 10, "recv-affinity": None, "recv-threads": 1, "endpoint": "127.0.0.1:9200",
    },
    "protocol": {"tcp": False, "pyspead": False},
    "receiver": {
        "buffer": 8388608, "bind": None, "ibv": False, "ibv_vector": 0, "threads": 1, "affinity": None,
        "memcpy_nt": False, "concurrent_heaps": 4, "substreams": 1, "ring_heaps": 4, "mem_pool": True,
        "mem_lower": 65536, "mem_upper": 66560, "mem_max_free": 12, "mem_initial": 8, "packet": 9200,
        "ibv_max_poll": 10,
    },
}  # fmt: skip


def start_for(port: int) -> bytes:
    command = json.loads(json.dumps(REFERENCE_START))
    command["args"]["endpoint"] = f"127.0.0.1:{port}"
    return json.dumps(command).encode() + b"\n"


class Control:
    """A master's control connection, by hand."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.file = self.sock.makefile("rb")

    def send(self, line: bytes) -> bytes:
        self.sock.sendall(line)
        return self.file.readline().strip()

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def free_port_both() -> int:
    """A port free for TCP and UDP on 127.0.0.1 (the agent uses the same number for both)."""
    for _ in range(50):
        port = free_port(socket.SOCK_STREAM)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise AssertionError("no port free for both TCP and UDP")


@pytest.fixture
def agent() -> Any:
    port = free_port_both()
    tool = ToolProcess("spead2.tools.bench", ["agent", str(port)])
    tool.wait_for_stderr("agent waiting for a master")
    yield port
    tool.close()


def test_agent_counts_heaps_between_start_and_stop(agent: int) -> None:
    control = Control(agent)
    try:
        assert control.send(start_for(agent)) == b"ready"
        demo.DemoSender(agent, n_heaps=5, rate=200, stop=False).run()
        assert json.loads(control.send(b'{"cmd": "stop"}\n')) == {"received_heaps": 5}
        # A second measurement on the same connection, then one on a new connection.
        assert control.send(start_for(agent)) == b"ready"
        assert json.loads(control.send(b'{"cmd": "stop"}\n')) == {"received_heaps": 0}
    finally:
        control.close()
    control = Control(agent)
    try:
        assert control.send(start_for(agent)) == b"ready"
        demo.DemoSender(agent, n_heaps=2, rate=200, stop=False).run()
        assert json.loads(control.send(b'{"cmd": "stop"}\n')) == {"received_heaps": 2}
    finally:
        control.close()


def test_agent_ends_the_connection_on_exit(agent: int) -> None:
    control = Control(agent)
    try:
        assert control.send(start_for(agent)) == b"ready"
        assert control.send(b'{"cmd": "exit"}\n') == b""  # closed
    finally:
        control.close()
    control = Control(agent)
    try:  # the measurement ended with it: a new one counts from zero
        assert control.send(start_for(agent)) == b"ready"
        assert json.loads(control.send(b'{"cmd": "stop"}\n')) == {"received_heaps": 0}
    finally:
        control.close()


def test_agent_closes_on_garbage_and_keeps_serving(agent: int) -> None:
    for garbage in (b"hello\n", b'{"cmd": "dance"}\n', b"[1, 2]\n"):
        control = Control(agent)
        try:
            assert control.send(garbage) == b""  # closed, not crashed
        finally:
            control.close()
    control = Control(agent)
    try:
        assert control.send(start_for(agent)) == b"ready"
    finally:
        control.close()


@pytest.mark.interop
def test_agent_receives_the_reference_sender(agent: int, reference: Path) -> None:
    import refvenv

    control = Control(agent)
    try:
        assert control.send(start_for(agent)) == b"ready"
        sender = Path(reference).parent / "spead2_send.py"
        args = ["--heaps", "20", "--heap-size", "65536", "--packet", "9200", "--rate", "0.5"]
        proc = subprocess.run(
            refvenv.command(reference, str(sender), *args, f"127.0.0.1:{agent}"),
            capture_output=True, text=True, timeout=TIMEOUT, env=refvenv.clean_env(), cwd="/",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        # 20 data heaps, the descriptor heap it starts with; its end heap stops no stream here.
        received = json.loads(control.send(b'{"cmd": "stop"}\n'))["received_heaps"]
        assert 20 <= received <= 21
    finally:
        control.close()


def test_master_start_command_has_the_reference_fields() -> None:
    args = bench.parse_args(["master", "--heap-size", "65536", "127.0.0.1:9200"])
    command = _benchmaster.start_command(args)
    assert command == REFERENCE_START


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["master", "nohost"], "not HOST:PORT"),
        (["master", "--send-ibv", "127.0.0.1:1"], "ibverbs is not supported"),
        (["agent", "70000"], "port out of range"),
        (["nothing"], "invalid choice"),
    ],
)
def test_bad_arguments(argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        bench.parse_args(argv)
    assert info.value.code == 2
    assert fragment in capsys.readouterr().err


def _has_send() -> bool:
    try:
        import spead2.send.asyncio  # noqa: F401
    except ImportError:
        return False
    return True


needs_send = pytest.mark.skipif(not _has_send(), reason="the master needs spead2.send")
QUICK = ["--heap-size", "65536", "--measure-bytes", "4000000", "--precision", "0.3", "--passes", "2"]
GBPS = r"\d+\.\d{3} Gbps"


def check_master_output(stdout: str, quiet: bool) -> None:
    """The lines the reference's master prints: ``Send rate`` before a bisection (with --quiet
    too), a line per rate unless --quiet, and the result (only the number with --quiet)."""
    *lines, last = stdout.splitlines()
    step = rf"Rate: {GBPS} \({GBPS} actual\): (GOOD|BAD)"
    allowed = [rf"Send rate: {GBPS}"] if quiet else ["Limited by send speed", rf"Send rate: {GBPS}", step]
    assert all(any(re.fullmatch(p, line) for p in allowed) for line in lines), stdout
    if lines and lines[0].startswith("Send rate"):
        assert quiet or len(lines) > 1, stdout  # it bisected
    if quiet:
        assert float(last) >= 0, stdout
    else:
        assert re.fullmatch(rf"Sustainable rate: {GBPS}", last), stdout


@needs_send
def test_our_master_drives_our_agent(agent: int) -> None:
    proc = subprocess.run(
        [*bench_command(), "master", *QUICK, f"127.0.0.1:{agent}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    check_master_output(proc.stdout, quiet=False)


@needs_send
@pytest.mark.interop
def test_our_master_drives_the_reference_agent(reference: Path) -> None:
    import refvenv

    port = free_port_both()
    script = Path(reference).parent / "spead2_bench.py"
    agent = subprocess.Popen(
        refvenv.command(reference, str(script), "agent", str(port)),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=refvenv.clean_env(), cwd="/",
    )  # fmt: skip
    try:
        proc = None
        for _ in range(100):  # the reference's agent prints nothing when it listens: retry the connection
            proc = subprocess.run(
                [*bench_command(), "master", *QUICK, "--quiet", f"127.0.0.1:{port}"],
                capture_output=True,
                text=True,
                timeout=120,
            )
            if "cannot reach the agent" not in proc.stderr:
                break
        assert proc is not None and proc.returncode == 0, proc and proc.stderr
        check_master_output(proc.stdout, quiet=True)
    finally:
        agent.kill()
        agent.communicate()


# The reference's master, unchanged but for the volume of one measurement: it sends 1 GB per
# measurement (a warm-up and five passes, more when it bisects), minutes on a loaded machine; the
# test shrinks that to argv[1] bytes.  The wire protocol and the rest of its logic are its own.
REFERENCE_MASTER = r"""
import sys
import spead2.tools.bench_asyncio as reference
volume = int(sys.argv.pop(1))
measure_once = reference.measure_connection_once

async def smaller(args, protocol, sender, receiver, rate, num_heaps, required_heaps):
    heaps = max(2, volume // args.heap_size)
    return await measure_once(args, protocol, sender, receiver, rate, heaps, min(required_heaps, heaps - 1))

reference.measure_connection_once = smaller
sys.argv[0] = "spead2_bench.py"
reference.main()
"""


@pytest.mark.interop
@pytest.mark.parametrize("quiet", [False, True], ids=["verbose", "quiet"])
def test_the_reference_master_drives_our_agent(agent: int, reference: Path, quiet: bool) -> None:
    import refvenv

    argv = ["4000000", "--log", "DEBUG", "master", "--heap-size", "65536", f"127.0.0.1:{agent}"]
    argv[4:4] = ["--quiet"] if quiet else []
    proc = subprocess.run(
        refvenv.command(reference, "-c", REFERENCE_MASTER, *argv),
        capture_output=True, text=True, timeout=120, env=refvenv.clean_env(), cwd="/",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    check_master_output(proc.stdout, quiet)  # the lines ours prints are the same
    assert float(proc.stdout.split()[-1 if quiet else -2]) > 0, proc.stdout
    # Its debug lines: "Received N/M heaps in T seconds, ..." for each measurement (a warm-up and
    # at least five passes); each got heaps from our agent's count.
    counts = [
        line.split("Received ", 1)[1].split()[0] for line in proc.stderr.splitlines() if "Received " in line
    ]
    assert len(counts) >= 6, proc.stderr[-3000:]
    assert all(int(count.split("/")[0]) > 0 for count in counts), counts


def bench_command() -> list[str]:
    import sys

    return [sys.executable, "-m", "spead2.tools.bench"]


def test_parse_keeps_reference_dests() -> None:
    args = bench.parse_args(["master", "--send-threads", "2", "--recv-affinity", "0,1", "[::1]:5"])
    assert isinstance(args, argparse.Namespace)
    assert getattr(args, "send-threads") == 2 and getattr(args, "recv-affinity") == [0, 1]
    assert (args.host, args.port) == ("::1", 5)
